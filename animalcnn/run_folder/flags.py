"""Sanity flags: what is wrong with a run at a glance, each a short name with its reason,
computed from the run folder alone (no pandas, no TensorFlow) wherever the run is shown.

- chance: best validation accuracy within 2 points of 1/classes, or one class predicted
  for 95 % or more of the test images;
- diverged: a loss that became NaN, or rose to 10x its lowest;
- overfit: training accuracy more than 15 points above test accuracy;
- stale: the test figures belong to an earlier best checkpoint;
- not evaluated: no test figures yet.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass

from animalcnn.run_folder.folder import RunFolder
from animalcnn.run_folder.records import HISTORY, Evaluation, Metrics, TestResult

CHANCE_MARGIN = 0.02  # within 2 points of 1/classes
ONE_CLASS_SHARE = 0.95
DIVERGED_RISE = 10.0
OVERFIT_GAP = 0.15
CHANCE_HINT = "try a lower training.learning_rate (animalcnn lr-find CONFIG suggests one)"


@dataclass(frozen=True)
class Flag:
    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name} ({self.reason})"


def _losses(run: RunFolder) -> list[float]:
    """history.csv's training losses, NaN where missing or not a number."""
    path = run.file(HISTORY)
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "loss" not in rows[0] or "epoch" not in rows[0]:
        return []  # a damaged history: the commands that read it say so
    out = []
    for row in rows:
        try:
            out.append(float(row["loss"] or "nan"))
        except ValueError:
            out.append(math.nan)
    return out


def _one_class(evaluation: Evaluation, classes: list[str]) -> Flag | None:
    matrix = evaluation.confusion_matrix
    predicted = [sum(column) for column in zip(*matrix, strict=False)] if matrix else []
    total = sum(predicted)
    if not total:
        return None
    top = max(range(len(predicted)), key=predicted.__getitem__)
    share = predicted[top] / total
    if share < ONE_CLASS_SHARE:
        return None
    name = classes[top] if top < len(classes) else str(top)
    return Flag("chance", f"predicts one class ({name}) for {share:.0%} of the test images")


def flags(run: RunFolder, metrics: Metrics, test: TestResult, status: str) -> list[Flag]:
    """The run's flags, from its records: metrics, test result and status."""
    found: list[Flag] = []
    classes = metrics.classes
    best_val = metrics.best.val_accuracy if metrics.best else None
    if classes and best_val is not None and best_val <= 1 / len(classes) + CHANCE_MARGIN:
        found.append(
            Flag(
                "chance",
                f"best validation accuracy {best_val:.1%}, chance is {1 / len(classes):.1%}",
            )
        )
    elif test.evaluation is not None:
        one = _one_class(test.evaluation, classes)
        if one is not None:
            found.append(one)
    found += _diverged(run)
    gap = gap_to_test(metrics, test)
    if gap is not None and gap > OVERFIT_GAP:
        found.append(Flag("overfit", f"training accuracy {gap:.1%} above test accuracy"))
    if test.state == "stale":
        found.append(Flag("stale", f"scored epoch {test.epoch}, best is now {test.best_epoch}"))
    elif test.state == "none" and status == "completed":
        found.append(Flag("not evaluated", f"animalcnn evaluate {run.path}"))
    return found


def _diverged(run: RunFolder) -> list[Flag]:
    losses = _losses(run)
    finite = [v for v in losses if math.isfinite(v)]
    if len(finite) < len(losses):
        epoch = next(i for i, v in enumerate(losses, 1) if not math.isfinite(v))
        return [Flag("diverged", f"the loss became NaN or infinite at epoch {epoch}")]
    if finite:
        low_at = finite.index(min(finite))
        lowest, later = finite[low_at], max(finite[low_at:])
        if later >= DIVERGED_RISE * max(lowest, 1e-12):
            return [Flag("diverged", f"the loss rose from {lowest:.3g} to {later:.3g}")]
    return []


def gap_to_test(metrics: Metrics, test: TestResult) -> float | None:
    """Training accuracy at the best epoch minus test accuracy, where the run has both."""
    train = metrics.best.accuracy if metrics.best else None
    if train is None or test.evaluation is None:
        return None
    return train - test.evaluation.accuracy


def run_flags(run: RunFolder) -> list[Flag]:
    """The flags of a run folder, as `compare` shows them (each file read once)."""
    metrics = run.metrics()
    return flags(run, metrics, run.test_result(metrics), run.status())
