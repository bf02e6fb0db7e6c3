"""GPU benchmark: a config's network (the seed's ResNet at 100x100, batch 258, by
default) trained under float32 and each mixed policy, XLA on; prints figures.

It needs Keras and a GPU, not TensorFlow: the model is built by the same registered
builder `animalcnn train` uses, on whichever Keras backend is installed
(`KERAS_BACKEND`). On the JAX backend every step is compiled by XLA, which makes the
script usable on GPU machines where TensorFlow's CUDA build cannot be installed.

Each policy runs in a fresh process (Keras's dtype policy is process-wide) on random
images held in memory, so the figures are the model's arithmetic and the copy to the
GPU, not decoding: `--epochs` epochs of `--steps` steps (the seed ran 45 steps of 258
images), steady state = median of epochs 2..N; the first epoch includes compiling.
Usage:

  KERAS_BACKEND=jax python benchmarks/gpu.py
  python benchmarks/gpu.py --config configs/mid.yaml --set data.img_size=64 --policies off float16
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from animalcnn.backends.runtime import choose_precision, cpu_flags  # noqa: E402
from animalcnn.models.configs import load_config  # noqa: E402
from benchmarks.precision import POLICIES  # noqa: E402
from benchmarks.precision import machine as cpu_machine  # noqa: E402

NUM_CLASSES = 5  # the seed's classes; the figures do not depend on the labels


def child(args: argparse.Namespace) -> dict:
    """Train under one policy in this process; its timings as a dict."""
    import keras
    import numpy as np

    from animalcnn.models import build_model

    cfg = load_config(args.config, args.set)
    precision = choose_precision(args.child, True, cpu_flags())
    keras.utils.set_random_seed(cfg.seed)
    keras.mixed_precision.set_global_policy(precision)
    size, batch = cfg.data.img_size, cfg.data.batch_size
    model = build_model(cfg, NUM_CLASSES)
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.training.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=True,
    )
    rng = np.random.default_rng(cfg.seed)
    n = args.steps * batch
    x = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8).astype("float32")
    y = rng.integers(0, NUM_CLASSES, n).astype("int32")

    seconds: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            seconds.append(time.perf_counter() - self.start)
            print(f"  {precision} epoch {epoch + 1}: {seconds[-1]:.2f} s", file=sys.stderr)

    history = model.fit(
        x, y, batch_size=batch, epochs=args.epochs, shuffle=False, verbose=0, callbacks=[Clock()]
    )
    loss = history.history["loss"][-1]
    return {
        "precision": precision,
        "network": cfg.model.arch,
        "size": size,
        "batch": batch,
        "first_epoch_s": seconds[0],
        "epoch_s": statistics.median(seconds[1:]),
        "images_per_s": n / statistics.median(seconds[1:]),
        "final_loss": loss,
        "finite": math.isfinite(loss),
    }


def machine() -> str:
    """Keras backend and versions, the GPU, the CPU."""
    import keras

    backend = keras.backend.backend()
    try:
        gpu = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    except FileNotFoundError:
        gpu = ""
    return (
        f"Keras {keras.__version__} on {backend} {__import__(backend).__version__}; "
        f"GPU: {gpu or 'none seen'}; CPU: {cpu_machine()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs/resnet.yaml")
    parser.add_argument("--set", action="append", default=[], help="config override KEY=VALUE")
    parser.add_argument(
        "--policies",
        nargs="+",
        default=["off", "float16", "bfloat16"],
        choices=POLICIES,
        help="training.mixed_precision values",
    )
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=45, help="steps per epoch")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    cfg = load_config(args.config, args.set)
    size, batch = cfg.data.img_size, cfg.data.batch_size
    about = machine()
    print(f"machine: {about}")
    print(
        f"\n{cfg.model.arch} at {size}x{size}, batch {batch}, jit_compile on; {args.steps} steps "
        f"per epoch, steady state = median of epochs 2-{args.epochs}\n"
    )
    print("| precision | first epoch s | s/epoch | images/s | speed-up | final loss |")
    print("|---|---|---|---|---|---|", flush=True)
    results: list[dict] = []
    for policy in args.policies:
        command = [sys.executable, __file__, "--child", policy, "--config", str(args.config)]
        command += [f"--set={s}" for s in args.set]
        command += [f"--epochs={args.epochs}", f"--steps={args.steps}"]
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
        if done.returncode != 0:
            print(f"| {policy} | failed (exit {done.returncode}) |", flush=True)
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        results.append(r)
        speedup = results[0]["epoch_s"] / r["epoch_s"]
        print(
            f"| {r['precision']} | {r['first_epoch_s']:.1f} | {r['epoch_s']:.2f} | "
            f"{r['images_per_s']:,.0f} | {speedup:.2f}x | {r['final_loss']:.3f} |"
        )
        sys.stdout.flush()
        if args.json:  # after each policy: a run cut short keeps what it measured
            args.json.write_text(json.dumps({"machine": about, "results": results}, indent=1))
    if not results:
        raise SystemExit("no policy ran")


if __name__ == "__main__":
    main()
