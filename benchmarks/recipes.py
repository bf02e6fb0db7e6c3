"""Accuracy per minute: training recipes given the same wall-clock budget. Prints figures
and writes a figure; asserts nothing.

Three entrants, each `animalcnn train` in a fresh process on DATA (its train split to
train and validate, its test split scored after every epoch, off the clock):

  seed    configs/mid.yaml (the notebook's recipe) at 64 px
  today   the best that the notebook's options allow (mid, flip + translation,
          batch 64: the winner of configs/sweeps/today.yaml)
  fast    configs/fast.yaml

With `--networks`, each seed network's two recipes at the same budget instead: the
notebook's (`configs/NET.yaml` at 64 px) against ours (`configs/recipes/NET.yaml`).

Each trains until its own schedule ends, it early-stops, or the budget runs out (the
budget counts training and validation, not the test scoring). Usage:

  python benchmarks/recipes.py DATA                       # 10-minute budget each
  python benchmarks/recipes.py DATA --budget 300 --out docs/figures/recipes.png
  python benchmarks/recipes.py DATA --seed 7              # the same, another seed
  python benchmarks/recipes.py DATA --seeds 42 7 --out docs/figures/recipes.png  # both
  python benchmarks/recipes.py DATA --networks simple resnet
  # fast.yaml again at both seeds, the other entrants' curves kept from the JSON:
  python benchmarks/recipes.py DATA --seeds 42 7 --entrants fast --keep --out FIG.png
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TODAY = [
    "data.batch_size=64",
    "model.augmentation=[{type: flip}, {type: translation, factor: 0.1}]",
]
ENTRANTS = ("seed", "today", "fast")
NETWORKS = ("simple", "mid", "resnet", "inception", "resnet_aug")  # the seed's own networks


def _overrides(
    entrant: str, data: Path, size: int, runs: Path, seed: int
) -> tuple[Path, list[str]]:
    """The config and overrides of an entrant: `seed`, `today`, `fast`, or a network's
    `NET:2019` (the notebook's config) and `NET:ours` (its modern recipe)."""
    common = [
        f"data.dir={data}",
        f"output.runs_dir={runs}",
        "output.tensorboard=false",
        f"seed={seed}",
    ]
    network, _, recipe = entrant.partition(":")
    if entrant == "fast":
        return ROOT / "configs/fast.yaml", common
    if recipe == "ours":
        return ROOT / f"configs/recipes/{network}.yaml", common
    base = [f"data.img_size={size}", "training.epochs=1000", *common]  # stopped by the budget
    if recipe == "2019":
        return ROOT / f"configs/{network}.yaml", base
    return ROOT / "configs/mid.yaml", base + (TODAY if entrant == "today" else [])


def _child(args: argparse.Namespace) -> None:
    """Train one entrant here; print its curve (seconds, test accuracy per epoch)."""
    import keras
    import numpy as np

    from animalcnn import backends
    from animalcnn.data.decoding import decode
    from animalcnn.data.discovery import read_split
    from animalcnn.evaluation.inference import probabilities
    from animalcnn.models.configs import load_config
    from animalcnn.training.session import TrainingFailed, start

    config, overrides = _overrides(args.entrant, args.data, args.size, Path(args.runs), args.seed)
    cfg = load_config(config, overrides)
    backends.activate(backends.choose(cfg.training.backend))
    classes, split = read_split(cfg.data.dir / cfg.data.test_split)
    test = decode(split, cfg.data)
    budget = args.budget

    class Probe(keras.callbacks.Callback):
        """Scores the test split after each epoch (EMA weights where the recipe keeps
        them: they are in the model at this point) and stops at the budget."""

        def __init__(self) -> None:
            super().__init__()
            self.clock, self.curve = 0.0, []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.clock += time.perf_counter() - self.start
            probs = probabilities(self.model, test, cfg.data.batch_size)
            accuracy = float(np.mean(probs.argmax(axis=1) == test.labels))
            self.curve.append((round(self.clock, 2), accuracy))
            print(
                f"{args.entrant}: epoch {epoch + 1} at {self.clock:.0f}s test {accuracy:.4f}",
                file=sys.stderr,
                flush=True,
            )
            if self.clock >= budget:
                self.model.stop_training = True

    probe = Probe()
    try:
        start(cfg, callbacks=[probe])
    except TrainingFailed as exc:  # an interrupted or failed run still has its curve
        print(f"{args.entrant}: {exc.status}: {exc.reason}", file=sys.stderr)
    print("RESULT " + json.dumps({"curve": probe.curve, "test_images": len(test)}), flush=True)


def _spawn(entrant: str, args: argparse.Namespace) -> dict:
    runs = tempfile.mkdtemp(prefix=f"recipes-{entrant}-")
    cmd = [
        sys.executable,
        __file__,
        str(args.data),
        "--child",
        "--entrant",
        entrant,
        "--budget",
        str(args.budget),
        "--size",
        str(args.size),
        "--runs",
        runs,
        "--seed",
        str(args.seed),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=os.environ)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise SystemExit(f"{entrant} failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def _first_reaching(curve: list[tuple[float, float]], target: float) -> float | None:
    return next((t for t, acc in curve if acc >= target - 1e-9), None)


COLOURS = {"seed": "#7f7f7f", "today": "#1f77b4", "fast": "#d62728"}  # an entrant's colour
LABELS = {
    "seed": "notebook's recipe",
    "today": "best of the notebook's options",
    "fast": "fast.yaml",
}


def _figure(results: dict[str, dict], out: Path, budget: float) -> None:
    """Test accuracy against seconds, an entrant a colour; a second seed dashed."""
    from animalcnn.figures.charts import Chart, Panel, Series, write_png

    first_seed = next(iter(results)).partition(", ")[2]
    series = []
    for name, r in results.items():
        entrant, _, seed = name.partition(", ")
        series.append(
            Series(
                f"{LABELS.get(entrant, entrant)}, {seed}",
                [t for t, _ in r["curve"]],
                [a for _, a in r["curve"]],
                colour=COLOURS.get(entrant),
                dashed=seed != first_seed,
            )
        )
    panel = Panel(
        "", "seconds of training (validation included)", "test accuracy", series, percent="y"
    )
    write_png(Chart(f"Test accuracy against time, {budget:.0f} s budget each", [panel]), out)


def _networks(args: argparse.Namespace) -> None:
    """Each network's notebook recipe against its modern one, at the same budget."""
    print()
    print("| network | recipe | epochs | seconds | final test acc | best test acc |")
    print("|---|---|---|---|---|---|")
    for network in args.networks:
        finals = []
        for recipe in ("2019", "ours"):
            curve = _spawn(f"{network}:{recipe}", args)["curve"]
            finals.append(curve[-1][1])
            print(
                f"| {network} | {recipe} | {len(curve)} | {curve[-1][0]:.0f} | "
                f"{curve[-1][1]:.2%} | {max(a for _, a in curve):.2%} |",
                flush=True,
            )
        print(f"| {network} | ours - 2019 | | | {100 * (finals[1] - finals[0]):+.1f} points | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="dataset root (train/ and a test split)")
    parser.add_argument("--budget", type=float, default=600, help="seconds per entrant")
    parser.add_argument(
        "--size", type=int, default=64, help="image size of the notebook's configs (seed, today)"
    )
    parser.add_argument("--entrants", nargs="+", choices=ENTRANTS, default=list(ENTRANTS))
    parser.add_argument(
        "--networks", nargs="+", choices=NETWORKS, help="each network's two recipes instead"
    )
    parser.add_argument("--seed", type=int, default=42, help="every entrant's config seed")
    parser.add_argument(
        "--seeds", type=int, nargs="+", help="the entrants once per seed (default: --seed)"
    )
    parser.add_argument("--out", type=Path, help="write the figure here (PNG)")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="take the entrants not run now from --out's curves (JSON), to rerun one",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--entrant", help=argparse.SUPPRESS)
    parser.add_argument("--runs", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    args.seeds = args.seeds or [args.seed]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores; data {args.data}; "
        f"budget {args.budget:.0f} s each; seeds {args.seeds}; the notebook's configs at "
        f"{args.size}px"
    )
    if args.networks:
        _networks(args)
        return
    curves = args.out.with_suffix(".json") if args.out else None
    if args.keep and (curves is None or not curves.is_file()):
        raise SystemExit("--keep takes the other entrants from --out's JSON: none found")
    earlier = json.loads(curves.read_text()) if args.keep else {}
    every: dict[str, dict] = {}
    for seed in args.seeds:
        args.seed = seed
        ran = {entrant: _spawn(entrant, args) for entrant in args.entrants}
        results = {
            e: ran[e] if e in ran else earlier[f"{e}, seed {seed}"]
            for e in ENTRANTS
            if e in ran or f"{e}, seed {seed}" in earlier
        }
        _table(results, seed)
        every.update({f"{name}, seed {seed}": r for name, r in results.items()})
    if args.out:
        _figure(every, args.out, args.budget)
        curves.write_text(json.dumps(every, indent=1) + "\n")
        print(f"\nwrote {args.out} and {curves} (the curves)")


def _table(results: dict[str, dict], seed: int) -> None:
    """One seed's entrants: epochs, seconds, test accuracy, and when each reaches the
    seed recipe's final accuracy."""
    seed_final = results["seed"]["curve"][-1][1] if "seed" in results else None
    seed_time = results["seed"]["curve"][-1][0] if "seed" in results else None
    print()
    print(
        "| recipe | seed | epochs | seconds | final test acc | best test acc | "
        "reaches seed's final acc at |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        curve = r["curve"]
        reach = _first_reaching(curve, seed_final) if seed_final is not None else None
        share = f" ({reach / seed_time:.0%} of seed's time)" if reach and seed_time else ""
        print(
            f"| {name} | {seed} | {len(curve)} | {curve[-1][0]:.0f} | {curve[-1][1]:.2%} | "
            f"{max(a for _, a in curve):.2%} | "
            f"{'never' if reach is None else f'{reach:.0f} s'}{share} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
