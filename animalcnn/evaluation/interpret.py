"""What a model gets wrong: its most confident mistakes and the classes it confuses
(numpy only, from the labels and predicted probabilities of a scored split)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_ERRORS = 16  # tiles in the mistakes gallery


def top_errors(
    labels: np.ndarray,
    probs: np.ndarray,
    classes: list[str],
    paths: list[Path],
    root: Path,
    n: int = DEFAULT_ERRORS,
) -> list[dict[str, Any]]:
    """The `n` misclassified images the model was surest of, most confident first: `file`
    (relative to `root`), `true`, `predicted`, `confidence` (the predicted class's
    probability), `true_probability`, `loss` (its cross-entropy, -ln of the true class's
    probability), and `index` into the split."""
    predicted = probs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    order = wrong[np.argsort(-probs[wrong, predicted[wrong]], kind="stable")][:n]
    return [
        {
            "file": str(Path(paths[i]).relative_to(root)),
            "true": classes[int(labels[i])],
            "predicted": classes[int(predicted[i])],
            "confidence": round(float(probs[i, predicted[i]]), 4),
            "true_probability": round(float(probs[i, labels[i]]), 4),
            "loss": round(float(-np.log(max(float(probs[i, labels[i]]), 1e-7))), 4),
            "index": int(i),
        }
        for i in order
    ]


def most_confused(confusion: list[list[int]], classes: list[str], n: int = 5) -> list[dict]:
    """The off-diagonal cells of a confusion matrix, largest first: `true`, `predicted`,
    `count` (fastai's `most_confused`)."""
    matrix = np.asarray(confusion)
    cells = [
        (int(matrix[i, j]), i, j)
        for i in range(len(classes))
        for j in range(len(classes))
        if i != j and matrix[i, j] > 0
    ]
    cells.sort(key=lambda c: (-c[0], c[1], c[2]))
    return [{"true": classes[i], "predicted": classes[j], "count": c} for c, i, j in cells[:n]]
