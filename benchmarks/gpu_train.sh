#!/usr/bin/env bash
# End-to-end training speed on a GPU machine that has JAX and PyTorch but no TensorFlow
# and no network: `animalcnn train configs/resnet.yaml` through the CLI, input pipeline
# included, at 100x100, batch 258, mixed precision auto, deterministic off, once per
# backend; prints steady-state images/s from each run's history.csv. Prints figures,
# asserts nothing.
#
# Here, first: `make gpu-wheels` (Keras and the few packages that machine lacks, as
# wheels in .whl/). Then run this script there with .whl carried, from the project root:
#   bash benchmarks/gpu_train.sh
# Settings by environment: BACKENDS (jax torch), PER_CLASS (2600 images per class, about
# the seed's 45 steps of 258), SIZE (100), EPOCHS (4), DATA (a folder to generate into),
# OUT (where the run folders go).
set -euo pipefail
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
export PYTHONUNBUFFERED=1
BACKENDS=${BACKENDS:-jax torch}
PER_CLASS=${PER_CLASS:-2600}
SIZE=${SIZE:-100}
EPOCHS=${EPOCHS:-4}
DATA=${DATA:-/tmp/gpu-data/shapes}
OUT=${OUT:-/tmp/gpu-runs}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || true

if [ ! -d "$DATA/train" ]; then
  python3 - "$DATA" "$PER_CLASS" <<'EOF'
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from animalcnn.data.synthetic import SHAPES, make_dataset

root, per_class = Path(sys.argv[1]), int(sys.argv[2])
test = max(per_class // 10, 2)
with ProcessPoolExecutor() as pool:  # one class per process: the folders do not overlap
    jobs = [pool.submit(make_dataset, root, per_class, test, 0, 128, i, [shape])
            for i, shape in enumerate(SHAPES)]
    for job in jobs:
        job.result()
print(f"generated {5 * (per_class + test):,} images in {root}")
EOF
fi

for backend in $BACKENDS; do
  echo "== $backend"
  python3 -m animalcnn train configs/resnet.yaml --runs-dir "$OUT/$backend" \
    --set "data.dir=$DATA" --set "data.img_size=$SIZE" --set data.batch_size=258 \
    --set "training.backend=$backend" --set training.mixed_precision=auto \
    --set training.deterministic=false --set "training.epochs=$EPOCHS" \
    --set "training.val_patience=$((EPOCHS + 1))" --set output.tensorboard=false || true
  python3 - "$OUT/$backend" <<'EOF'
import csv
import json
import statistics
import sys
from pathlib import Path

for run in sorted(Path(sys.argv[1]).iterdir()):
    metrics = json.loads((run / "metrics.json").read_text())
    rows = list(csv.DictReader((run / "history.csv").open()))
    seconds = [float(r["seconds"]) for r in rows]
    steady = statistics.median(seconds[1:]) if len(seconds) > 1 else float("nan")
    n = metrics["images"]["train"]
    print(f"{metrics['backend']}: {metrics['device']}, {metrics['precision']}, "
          f"XLA {metrics['jit_compile']}, {n:,} training images; first epoch "
          f"{seconds[0]:.1f} s, steady {steady:.2f} s/epoch (validation included): "
          f"{n / steady:,.0f} img/s; status {metrics['status']}")
EOF
done
