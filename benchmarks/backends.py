"""The same experiment on each Keras backend: prints figures, asserts nothing.

For each architecture, `animalcnn train` at one image size in float32 on each backend
(each run a fresh process, the backends in alternating order over the repeats), then
`animalcnn evaluate`: steady-state seconds per epoch (history.csv, epochs 2 on, best
and median over the repeats), images per second and test accuracy. Usage:

  python benchmarks/backends.py                             # 2,000 generated images
  python benchmarks/backends.py --data ~/animals --archs mid resnet --size 64 --epochs 4
  python benchmarks/backends.py --backends tensorflow jax   # (torch: make test-torch first)
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
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ["tensorflow", "jax", "torch"]


def _train(arch: str, backend: str, args: argparse.Namespace, runs: Path) -> Path:
    sets = [
        f"data.dir={args.data}",
        f"data.img_size={args.size}",
        f"data.batch_size={args.batch}",
        f"training.epochs={args.epochs}",
        f"training.val_patience={args.epochs + 1}",
        f"training.backend={backend}",
        "training.mixed_precision=off",
        "output.tensorboard=false",
        f"name={arch}-{backend}",
    ]
    cmd = [
        sys.executable,
        "-m",
        "animalcnn",
        "train",
        str(ROOT / "configs" / f"{arch}.yaml"),
        "--runs-dir",
        str(runs),
        *(a for s in sets for a in ("--set", s)),
    ]
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{arch} on {backend} failed:\n{done.stderr[-3000:]}")
    (run,) = sorted(runs.glob(f"{arch}-{backend}-*"))[-1:]
    done = subprocess.run(
        [sys.executable, "-m", "animalcnn", "evaluate", str(run)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    )
    if done.returncode != 0:
        raise SystemExit(f"evaluating {run} failed:\n{done.stderr[-3000:]}")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="dataset root (default: generate one)")
    parser.add_argument("--images", type=int, default=2000, help="images to generate")
    parser.add_argument("--archs", nargs="+", default=["mid", "resnet"])
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=BACKENDS)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if args.data is None:
        from animalcnn.data.synthetic import make_dataset

        args.data = Path(tempfile.mkdtemp(prefix="bench-data-")) / "shapes"
        per_class = args.images // 5
        make_dataset(args.data, int(per_class * 0.8), per_class - int(per_class * 0.8), size=96)
        print(f"generated {args.images:,} images in {args.data}")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(
        f"machine: {machine}; {args.size} px, batch {args.batch}, float32, {args.epochs} "
        f"epochs (steady state: epochs 2-{args.epochs}), {args.repeats} repeats"
    )
    print()
    print("| arch | backend | best s/epoch | median s/epoch | images/s (best) | test accuracy |")
    print("|---|---|---|---|---|---|")
    runs = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    for arch in args.archs:
        seconds: dict[str, list[float]] = {b: [] for b in args.backends}
        accuracy: dict[str, list[float]] = {b: [] for b in args.backends}
        n_train = 0
        for repeat in range(args.repeats):  # alternate the order: the machine's speed drifts
            for backend in args.backends if repeat % 2 == 0 else args.backends[::-1]:
                run = _train(arch, backend, args, runs)
                seconds[backend] += pd.read_csv(run / "history.csv")["seconds"].tolist()[1:]
                accuracy[backend].append(
                    json.loads((run / "evaluation.json").read_text())["accuracy"]
                )
                n_train = json.loads((run / "metrics.json").read_text())["images"]["train"]
        for backend in args.backends:
            best, median = min(seconds[backend]), statistics.median(seconds[backend])
            acc = statistics.mean(accuracy[backend])
            print(
                f"| {arch} | {backend} | {best:.2f} | {median:.2f} | {n_train / best:,.0f} | "
                f"{100 * acc:.1f}% |",
                flush=True,
            )


if __name__ == "__main__":
    main()
