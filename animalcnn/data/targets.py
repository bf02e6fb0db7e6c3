"""What a batch's labels become before the loss: class indices (the notebook's recipe), or
one-hot rows when the loss smooths them or MixUp/CutMix blend them.

Mixing runs on the formed batch, in NumPy, for every backend (TensorFlow's `tf.data`
calls it through `tf.numpy_function`). Its random draws come from (seed, epoch, step)
alone, so a resumed run mixes exactly the batches an uninterrupted one would, with no
random state to save.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from animalcnn.config.schema import CutMix, MixUp, TrainingConfig

MIX_STREAM = 0x6D6978  # keeps the mixing draws apart from the shuffling ones


@dataclass(frozen=True)
class Targets:
    """One-hot targets over `num_classes`, mixed in training by one of `mixes` per batch."""

    num_classes: int
    mixes: tuple[MixUp | CutMix, ...] = ()

    @classmethod
    def of(cls, training: TrainingConfig, num_classes: int) -> Targets | None:
        """The config's targets; None where plain class indices serve (the default)."""
        if not training.soft_labels:
            return None
        return cls(num_classes, tuple(training.batch_augmentation))

    def one_hot(self, labels: np.ndarray) -> np.ndarray:
        return np.eye(self.num_classes, dtype=np.float32)[labels]

    def training(
        self, images: np.ndarray, labels: np.ndarray, seed: int, epoch: int, step: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The batch at (epoch, step) with one-hot labels, mixed if the recipe says so."""
        y = self.one_hot(labels)
        if not self.mixes:
            return images, y
        rng = np.random.default_rng((seed, MIX_STREAM, epoch, step))
        return mix_batch(images, y, self.mixes, rng)


def mix_batch(
    x: np.ndarray, y: np.ndarray, mixes: Sequence[MixUp | CutMix], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One of `mixes`, drawn uniformly, applied with its probability: each image is paired
    with another of the batch (a random permutation) and the labels follow the share of
    pixels each contributes (as timm's `Mixup`)."""
    spec = mixes[int(rng.integers(len(mixes)))]
    if rng.random() >= spec.prob or len(x) < 2:
        return x, y
    lam = float(rng.beta(spec.alpha, spec.alpha))
    partner = rng.permutation(len(x))
    if spec.type == "mixup":
        mixed = lam * x + (1.0 - lam) * x[partner]
    else:
        mixed, lam = _cutmix(x, partner, lam, rng)
    return mixed.astype(x.dtype, copy=False), (lam * y + (1.0 - lam) * y[partner]).astype(y.dtype)


def _cutmix(
    x: np.ndarray, partner: np.ndarray, lam: float, rng: np.random.Generator
) -> tuple[np.ndarray, float]:
    """Paste a box of area about (1 - lam) from each partner; lam is then the share of the
    image the box left (the box is clipped at the border)."""
    h, w = x.shape[1:3]
    cut = np.sqrt(1.0 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    mixed = x.copy()
    mixed[:, y0:y1, x0:x1] = x[partner, y0:y1, x0:x1]
    return mixed, 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
