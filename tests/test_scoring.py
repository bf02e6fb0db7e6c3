"""Scores computed from predictions, checked against hand-worked numbers."""

import numpy as np
import pytest

from animalcnn.evaluation.scoring import score


def test_scores_by_hand():
    labels = np.array([0, 0, 1, 1, 2])
    probs = np.array(
        [[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.3, 0.6, 0.1], [0.5, 0.0, 0.5]]
    )
    s = score(labels, probs, ["a", "b", "c"])
    assert s["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert s["accuracy"] == pytest.approx(0.6)
    assert s["per_class"]["b"] == {"precision": 0.6667, "recall": 1.0, "f1": 0.8, "support": 2}
    assert s["per_class"]["c"]["f1"] == 0.0
    expected = -np.mean(np.log([0.9, 0.2, 0.8, 0.6, 0.5]))
    assert s["loss"] == pytest.approx(expected)
