"""The learning-rate range test (Smith, 2017; fastai's `lr_find`).

The config's model trains for at most MAX_STEPS batches while the learning rate grows
exponentially from MIN_LR to MAX_LR, stopping once the loss diverges. Three suggestions,
as fastai makes them: `valley` (in the longest stretch where the loss keeps falling, past
its first half: fastai's default, and ours), `steep` (where the smoothed loss falls
fastest before its minimum; a tenth of the minimum's rate when it hardly falls) and
`minimum/10` (the classic rule). Nothing is saved: no run folder, and the model is
thrown away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from animalcnn.atomic import PNG_MARK, atomic_write, check_replaceable
from animalcnn.backends.runtime import configure
from animalcnn.config import ExperimentConfig
from animalcnn.data.batches import steps_per_epoch
from animalcnn.data.loading import load_training_data
from animalcnn.data.targets import Targets
from animalcnn.figures.charts import lr_find_chart, write_png
from animalcnn.models import build_model
from animalcnn.training.compiling import compile_for_training, training_batches
from animalcnn.training.phases import phases, set_trainable

MIN_LR, MAX_LR = 1e-7, 10.0
MAX_STEPS = 100
DIVERGED = 4.0  # the smoothed loss this many times its minimum: stop
SMOOTHING = 0.9  # exponential moving average of the batch losses (bias-corrected)


@dataclass
class RangeTest:
    lrs: np.ndarray  # the learning rate of each batch run
    losses: np.ndarray  # the smoothed loss after it
    suggestions: dict[str, float]  # valley, steep, minimum/10

    @property
    def suggestion(self) -> float:
        return self.suggestions["valley"]

    @property
    def minimum(self) -> float:
        """The rate at the lowest loss."""
        return float(self.lrs[int(np.nanargmin(self.losses))])


# What each suggestion is, as the plot and the command say it.
RULES = {
    "valley": "past the first half of the longest fall",
    "steep": "where the loss falls fastest",
    "minimum/10": "a tenth of the lowest loss's rate",
}


class _Sweep(keras.callbacks.Callback):
    """Sets each batch's learning rate and records its smoothed loss; stops on divergence."""

    def __init__(self, lrs: np.ndarray) -> None:
        super().__init__()
        self.lrs = lrs
        self.smoothed: list[float] = []
        self._mean = self._ema = 0.0

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.model.optimizer.learning_rate.assign(float(self.lrs[batch]))

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        mean = float((logs or {}).get("loss", math.nan))  # Keras logs the mean so far
        loss = (batch + 1) * mean - batch * self._mean  # this batch's own loss
        self._mean = mean
        self._ema = SMOOTHING * self._ema + (1 - SMOOTHING) * loss
        self.smoothed.append(self._ema / (1 - SMOOTHING ** (batch + 1)))
        if not math.isfinite(self.smoothed[-1]) or self.smoothed[-1] > DIVERGED * min(
            self.smoothed
        ):
            self.model.stop_training = True


def range_test(cfg: ExperimentConfig) -> RangeTest:
    """Run the test on the config's model and training data."""
    rt = configure(cfg)
    data = load_training_data(cfg)
    with rt.scope():
        model = build_model(cfg, len(data.dataset.classes))
    first = phases(cfg)[0]
    set_trainable(model, first, cfg)
    compile_for_training(model, rt, cfg.training, lambda: keras.optimizers.Adam(MIN_LR))
    per_epoch = steps_per_epoch(data.train, cfg.data.batch_size, rt.share)
    steps = MAX_STEPS  # over several epochs of a small dataset
    epochs = math.ceil(steps / per_epoch)
    lrs = np.geomspace(MIN_LR, MAX_LR, steps)
    sweep = _Sweep(lrs)
    targets = Targets.of(cfg.training, len(data.dataset.classes))
    model.fit(
        training_batches(
            rt, data.train, cfg.data.batch_size, cfg.seed, 0, epochs, targets, one_pass=True
        ),
        steps_per_epoch=steps,
        epochs=1,
        callbacks=[sweep],
        shuffle=False,  # the dataset shuffles each epoch by its own seed
        verbose=0,
    )
    smoothed = np.array(sweep.smoothed)
    ran = lrs[: len(smoothed)]
    return RangeTest(ran, smoothed, suggestions(ran, smoothed))


CLEAR_DROP = 0.1  # the loss falls by this share of its start before its minimum


def suggest(lrs: np.ndarray, losses: np.ndarray) -> float:
    """Where the loss falls fastest (per decade) before its minimum; if it hardly falls,
    a tenth of the rate at its minimum (never below the sweep's first rate)."""
    finite = np.isfinite(losses)
    lrs, losses = lrs[finite], losses[finite]
    lowest = int(np.argmin(losses))
    if lowest >= 2 and losses[0] - losses[lowest] > CLEAR_DROP * abs(losses[0]):
        slope = np.gradient(losses[: lowest + 1], np.log10(lrs[: lowest + 1]))
        return float(lrs[int(np.argmin(slope))])
    return float(max(lrs[lowest] / 10, lrs[0]))


def valley(lrs: np.ndarray, losses: np.ndarray) -> float:
    """fastai's `valley`: the longest run of ever lower losses (not necessarily adjacent),
    and in it the point halfway through its middle third."""
    finite = np.isfinite(losses)
    lrs, losses = lrs[finite], losses[finite]
    n = len(losses)
    falling = np.ones(n, dtype=int)  # the longest fall ending at each point
    for i in range(1, n):
        lower = losses[:i] > losses[i]
        if lower.any():
            falling[i] = falling[:i][lower].max() + 1
    end = int(np.argmax(falling))
    start = end - int(falling[end]) + 1
    third = (end - start) / 3
    return float(lrs[start + int(third) + int(third / 2)])


def suggestions(lrs: np.ndarray, losses: np.ndarray) -> dict[str, float]:
    """fastai's three suggestions (`RULES`)."""
    finite = np.isfinite(losses)
    lowest = float(lrs[finite][int(np.argmin(losses[finite]))])
    return {
        "valley": valley(lrs, losses),
        "steep": suggest(lrs, losses),
        "minimum/10": max(lowest / 10, float(lrs[0])),
    }


CSV_NAME, PNG_NAME, CSV_HEADER = "lr_find.csv", "lr_find.png", "lr,loss"


def check_targets(out: Path) -> None:
    """Refuse, before the range test, an `lr_find.csv` or `lr_find.png` in `out` that is
    not one of ours (`--out` may name a folder of the user's)."""
    check_replaceable(out / CSV_NAME, f"{CSV_HEADER}\n".encode(), "a range test", "--out")
    check_replaceable(out / PNG_NAME, PNG_MARK, "a range test's figure", "--out")


def write(result: RangeTest, out: Path, title: str) -> list[Path]:
    """`lr_find.csv` (lr, loss) and `lr_find.png` in `out` (`check_targets` first)."""
    csv = out / CSV_NAME
    pairs = zip(result.lrs, result.losses, strict=True)
    lines = [CSV_HEADER, *(f"{lr:.6g},{loss:.6g}" for lr, loss in pairs)]
    atomic_write(csv, "\n".join(lines) + "\n")
    chart = lr_find_chart(
        result.lrs, result.losses, result.suggestions, result.minimum, RULES, title
    )
    png = write_png(chart, out / PNG_NAME)
    return [csv, png]
