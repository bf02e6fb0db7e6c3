"""Classification scores from predicted probabilities (numpy only)."""

from __future__ import annotations

from typing import Any

import numpy as np


def score(labels: np.ndarray, probs: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Accuracy, cross-entropy loss, per-class precision/recall/F1/support and the
    confusion matrix (rows: true class, columns: predicted, in `classes` order)."""
    k = len(classes)
    pred = probs.argmax(axis=1)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, pred), 1)
    eps = 1e-7
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], eps, 1.0))))
    per_class = {}
    for i, name in enumerate(classes):
        tp = int(confusion[i, i])
        predicted, support = int(confusion[:, i].sum()), int(confusion[i].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": support,
        }
    return {
        "accuracy": float(np.trace(confusion) / max(len(labels), 1)),
        "loss": loss,
        "classes": classes,
        "per_class": per_class,
        "confusion_matrix": confusion.tolist(),
        "images": int(len(labels)),
    }
