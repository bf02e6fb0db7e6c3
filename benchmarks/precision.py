"""Precision benchmark: float32 against each mixed policy the device runs; prints figures.

For each config and image size it trains the same experiment once per policy (and
`--repeats` times over, alternating the order, since a machine's speed drifts),
each in a fresh `animalcnn train` process, then scores it with `animalcnn evaluate`.
It reports the steady-state epoch time (median of epochs 2..N, validation
included), training images/s and test accuracy, with the machine's CPU and flags.
Usage:

  python benchmarks/precision.py                                 # generated images
  python benchmarks/precision.py --data ~/animals --configs configs/mid.yaml --sizes 64
  python benchmarks/precision.py --policies off bfloat16 float16 --set training.jit_compile=on
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from animalcnn.backends.runtime import BF16_MATRIX_FLAGS, cpu_flags  # noqa: E402
from animalcnn.config.schema import TrainingConfig  # noqa: E402

# `training.mixed_precision`'s values, from the schema.
POLICIES = typing.get_args(TrainingConfig.model_fields["mixed_precision"].annotation)
# The CLI as a module: it runs wherever the package imports (an install or this checkout).
CLI = [sys.executable, "-m", "animalcnn"]


def machine() -> str:
    """CPU model, the flags that matter for 16-bit compute, and the cores this process has."""
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        line = next((ln for ln in cpuinfo.read_text().splitlines() if "model name" in ln), "")
        model = line.partition(":")[2].strip() or model
    wanted = {"avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile"}
    flags = " ".join(sorted(cpu_flags() & wanted)) or "none of avx2/avx512/amx"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {cores} cores; flags: {flags}; {platform.machine()}"


def default_policies() -> list[str]:
    """float32 and the mixed policies this device runs natively."""
    try:
        gpu = subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0
    except FileNotFoundError:
        gpu = False
    if gpu:
        return ["off", "float16", "bfloat16"]
    return ["off", "bfloat16"]


def run_once(args: argparse.Namespace, config: str, size: int, policy: str) -> dict:
    """Train and evaluate one experiment in fresh processes; its timing and accuracy."""
    runs = Path(tempfile.mkdtemp(prefix="bench-precision-"))
    sets = [
        f"data.dir={args.data}",
        f"data.img_size={size}",
        f"data.batch_size={args.batch}",
        f"training.epochs={args.epochs}",
        f"training.mixed_precision={policy}",
        "training.val_patience=1000",
        "training.lr_patience=1000",
        f"output.runs_dir={runs}",
        "output.tensorboard=false",
        *args.set,
    ]
    command = [*CLI, "train", config, *(x for s in sets for x in ("--set", s))]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{config} {size}px {policy} failed:\n{done.stderr[-3000:]}")
    (run,) = runs.iterdir()
    done = subprocess.run([*CLI, "evaluate", str(run)], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"evaluate {run} failed:\n{done.stderr[-3000:]}")
    metrics = json.loads((run / "metrics.json").read_text())
    evaluation = json.loads((run / "evaluation.json").read_text())
    import pandas as pd

    seconds = pd.read_csv(run / "history.csv")["seconds"].tolist()[1:]  # after compiling
    return {
        "seconds": seconds,
        "n_train": metrics["images"]["train"],
        "accuracy": evaluation["accuracy"],
        "test_images": evaluation["images"],
        "precision": metrics["precision"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="dataset root (default: generate one)")
    parser.add_argument("--images", type=int, default=2500, help="images to generate")
    parser.add_argument(
        "--configs",
        nargs="+",
        default=[str(ROOT / f"configs/{n}.yaml") for n in ("simple", "mid", "resnet")],
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 100])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=1, help="passes, in alternating order")
    parser.add_argument(
        "--policies",
        nargs="+",
        choices=POLICIES,
        help="training.mixed_precision values (default: off and what the device runs)",
    )
    parser.add_argument("--set", action="append", default=[], help="config override KEY=VALUE")
    args = parser.parse_args()
    policies = args.policies or default_policies()
    if args.data is None:
        from animalcnn.data.synthetic import make_dataset

        args.data = Path(tempfile.mkdtemp(prefix="bench-data-")) / "shapes"
        per_class = args.images // 5
        make_dataset(args.data, int(per_class * 0.8), per_class - int(per_class * 0.8), size=128)
        print(f"generated {args.images:,} JPEG/PNG images (128x128) in {args.data}")
    matrix = "yes" if cpu_flags() & BF16_MATRIX_FLAGS else "no"
    print(f"machine: {machine()}; bfloat16 matrix units: {matrix}")
    print(
        f"batch {args.batch}, {args.epochs} epochs (steady state: epochs 2-{args.epochs}), "
        f"{args.repeats} pass(es)\n"
    )
    print("| network | size | precision | s/epoch (median) | images/s | speed-up | test accuracy |")
    print("|---|---|---|---|---|---|---|")
    for config in args.configs:
        for size in args.sizes:
            results: dict[str, list[dict]] = {p: [] for p in policies}
            for repeat in range(args.repeats):
                for policy in policies if repeat % 2 == 0 else policies[::-1]:
                    results[policy].append(run_once(args, config, size, policy))
            median = {
                p: statistics.median(s for r in rs for s in r["seconds"])
                for p, rs in results.items()
            }
            for policy, rs in results.items():
                accuracy = statistics.mean(r["accuracy"] for r in rs)
                print(
                    f"| {Path(config).stem} | {size} | {rs[0]['precision']} | "
                    f"{median[policy]:.2f} | {rs[0]['n_train'] / median[policy]:,.0f} | "
                    f"{median[policies[0]] / median[policy]:.2f}x | "
                    f"{100 * accuracy:.1f}% of {rs[0]['test_images']} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
