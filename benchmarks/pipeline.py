"""Input-pipeline and start-up benchmark: prints figures, asserts nothing.

For one config and one image folder, at each image size, it times the steady-state
epochs (validation included) of the same model fed four ways, each in a fresh
process so its peak resident memory is its own:

  animalcnn   `animalcnn train` (decoded once, uint8 cache, batches gathered by index)
  in-memory   model.fit on pre-decoded numpy arrays (the limit to reach)
  notebook    keras.utils.image_dataset_from_directory, decoded again every epoch
  nb+cache    the same with .cache().prefetch()

then the CLI's start-up times. Usage:

  python benchmarks/pipeline.py                        # 5,000 generated JPEG/PNG files
  python benchmarks/pipeline.py --data ~/animals --sizes 64 100 --epochs 4
  python benchmarks/pipeline.py --config configs/resnet.yaml --sizes 100 \
      --set training.deterministic=false --set training.mixed_precision=on
  python benchmarks/pipeline.py --backend jax          # animalcnn vs in-memory on JAX

On JAX and PyTorch only `animalcnn` (its PyDataset over the decoded cache) and
`in-memory` run: the notebook's loaders are tf.data.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METHODS = ["animalcnn", "in-memory", "notebook", "nb+cache"]


def _config(args: argparse.Namespace, size: int, runs_dir: Path):
    from animalcnn.models.configs import load_config

    return load_config(
        Path(args.config),
        [
            f"data.dir={args.data}",
            f"data.img_size={size}",
            f"data.batch_size={args.batch}",
            f"training.epochs={args.epochs}",
            f"training.val_patience={args.epochs + 1}",
            f"output.runs_dir={runs_dir}",
            "output.tensorboard=false",
            f"training.backend={args.backend}",
            *args.set,
        ],
    )


class EpochTimer:
    """Wall time of each epoch, validation included (as history.csv's `seconds`)."""

    def __new__(cls):
        import keras

        class _Timer(keras.callbacks.Callback):
            def __init__(self) -> None:
                super().__init__()
                self.seconds: list[float] = []

            def on_epoch_begin(self, epoch, logs=None):
                self._start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.seconds.append(time.perf_counter() - self._start)

        return _Timer()


def measure(method: str, args: argparse.Namespace, size: int) -> dict:
    """Run one method in this process; return its per-epoch seconds and image count."""
    runs_dir = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    cfg = _config(args, size, runs_dir)
    if method == "animalcnn":
        import pandas as pd

        from animalcnn.training.session import start

        run = start(cfg)
        history = pd.read_csv(run.file("history.csv"))
        metrics = run.metrics()
        return {"seconds": history["seconds"].tolist(), "n_train": metrics["images"]["train"]}

    import keras

    from animalcnn.backends import runtime
    from animalcnn.models import build_model

    runtime.configure(cfg)
    timer = EpochTimer()
    compile_args = {"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}
    if method == "in-memory":
        from animalcnn.data.decoding import decode
        from animalcnn.data.discovery import discover

        ds = discover(cfg.data, cfg.seed)
        train_images, val_images = decode(ds.train, cfg.data), decode(ds.val, cfg.data)
        model = build_model(cfg, len(ds.classes))
        model.compile(keras.optimizers.Adam(cfg.training.learning_rate), **compile_args)
        model.fit(
            train_images.array,
            train_images.labels,
            batch_size=cfg.data.batch_size,
            epochs=cfg.training.epochs,
            validation_data=(val_images.array, val_images.labels),
            shuffle=True,
            callbacks=[timer],
            verbose=0,
        )
        return {"seconds": timer.seconds, "n_train": len(train_images)}
    train_ds, val_ds = keras.utils.image_dataset_from_directory(
        cfg.data.dir / cfg.data.train_split,
        validation_split=cfg.data.val_fraction,
        subset="both",
        seed=cfg.seed,
        image_size=(size, size),
        batch_size=cfg.data.batch_size,
        verbose=False,
    )
    classes, n_train = train_ds.class_names, len(train_ds.file_paths)
    if method == "nb+cache":
        import tensorflow as tf

        train_ds = train_ds.cache().prefetch(tf.data.AUTOTUNE)
        val_ds = val_ds.cache().prefetch(tf.data.AUTOTUNE)
    model = build_model(cfg, len(classes))
    model.compile(keras.optimizers.Adam(cfg.training.learning_rate), **compile_args)
    model.fit(
        train_ds, validation_data=val_ds, epochs=cfg.training.epochs, callbacks=[timer], verbose=0
    )
    return {"seconds": timer.seconds, "n_train": n_train}


def _child(args: argparse.Namespace) -> None:
    from animalcnn import backends

    backends.start(args.backend)
    result = measure(args.method, args, args.size)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result), flush=True)


def _spawn(method: str, args: argparse.Namespace, size: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--method",
        method,
        "--size",
        str(size),
        "--data",
        str(args.data),
        "--config",
        args.config,
        "--epochs",
        str(args.epochs),
        "--batch",
        str(args.batch),
        "--backend",
        args.backend,
        *(f"--set={s}" for s in args.set),
    ]
    env = {**os.environ, "KERAS_BACKEND": args.backend}
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"{method} at {size}px failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def _startup(args: list[str], repeats: int = 5) -> float:
    exe = Path(sys.executable).with_name("animalcnn")
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([str(exe), *args], capture_output=True, cwd=ROOT)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="dataset root (default: generate one)")
    parser.add_argument("--images", type=int, default=5000, help="images to generate")
    parser.add_argument("--config", default=str(ROOT / "configs/simple.yaml"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 100])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=258)
    parser.add_argument(
        "--repeats", type=int, default=2, help="passes over the methods, in alternating order"
    )
    parser.add_argument(
        "--set", action="append", default=[], help="config override KEY=VALUE (repeatable)"
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=METHODS,
        default=METHODS,
        help="methods to time (in-memory, the reference, always runs)",
    )
    parser.add_argument(
        "--backend",
        choices=["tensorflow", "jax", "torch"],
        default="tensorflow",
        help="the Keras backend (each method runs in a fresh process on it)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    if args.data is None:
        from animalcnn.data.synthetic import make_dataset

        args.data = Path(tempfile.mkdtemp(prefix="bench-data-")) / "shapes"
        per_class = args.images // 5
        make_dataset(args.data, int(per_class * 0.9), per_class - int(per_class * 0.9), size=128)
        print(f"generated {args.images:,} JPEG/PNG images (128x128) in {args.data}")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    if args.backend != "tensorflow":  # the notebook's loaders are tf.data
        args.methods = [m for m in args.methods if m in ("animalcnn", "in-memory")]
    print(
        f"machine: {machine}; backend {args.backend}; config {Path(args.config).name}, "
        f"batch {args.batch}, "
        f"{args.epochs} epochs (steady state: epochs 2-{args.epochs})"
    )
    print()
    print(
        "| size | method | best s/epoch | median s/epoch | images/s (best) | "
        "vs in-memory (best / median) | peak RSS MiB |"
    )
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        methods = [m for m in METHODS if m in args.methods or m == "in-memory"]
        epochs: dict[str, list[float]] = {m: [] for m in methods}
        runs: dict[str, dict] = {}
        for repeat in range(args.repeats):  # alternate the order: the machine's speed drifts
            for m in methods if repeat % 2 == 0 else methods[::-1]:
                runs[m] = _spawn(m, args, size)
                epochs[m] += runs[m]["seconds"][1:]  # steady state: after the first epoch
        best = {m: min(e) for m, e in epochs.items()}
        median = {m: statistics.median(e) for m, e in epochs.items()}
        for m, r in runs.items():
            print(
                f"| {size} | {m} | {best[m]:.2f} | {median[m]:.2f} | "
                f"{r['n_train'] / best[m]:,.0f} | {best['in-memory'] / best[m]:.3f} / "
                f"{median['in-memory'] / median[m]:.3f} | {r['peak_rss_mb']:,.0f} |",
                flush=True,
            )
    print()
    print("| command | start-up s (best of 5) |")
    print("|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / "bad.yaml"
        bad.write_text("training: {epochs: 0}\n")
        for label, argv in (
            ("animalcnn --help", ["--help"]),
            ("animalcnn compare runs/*", ["compare", str(ROOT / "runs")]),
            ("config error", ["train", str(bad)]),
            ("summary argument error", ["summary"]),
        ):
            print(f"| `{label}` | {_startup(argv):.2f} |")


if __name__ == "__main__":
    main()
