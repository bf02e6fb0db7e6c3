"""Batches for the JAX and PyTorch backends, with no TensorFlow: a `keras.utils.PyDataset`
over the decoded uint8 images (`Images.batch`), prefetched by Keras's worker threads.

The order of epoch `e` is a permutation seeded by (seed, e), so a resumed run sees the
batches an uninterrupted one would. (TensorFlow keeps `tf.data`, `data.pipeline`.)

Where a batch is split over several devices (JAX's DataParallel), each process feeds its
own rows of it (`data.sharding`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import keras
import numpy as np

from animalcnn.data.decoding import Images
from animalcnn.data.sharding import WHOLE, Share
from animalcnn.data.targets import Targets

if TYPE_CHECKING:
    from animalcnn.backends.runtime import Runtime

WORKERS = 2  # threads that form the next batches while the model trains on this one


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order of the training images in epoch `epoch`."""
    return np.random.default_rng((seed, epoch)).permutation(n)


def steps_per_epoch(images: Images, batch_size: int, share: Share = WHOLE) -> int:
    """Training steps in an epoch: a last batch too short to split over the devices is
    left out (`Share.training`)."""
    whole, rest = divmod(len(images), batch_size)
    return whole + (rest >= share.devices)


class TrainingBatches(keras.utils.PyDataset):
    """Shuffled training batches, (float32 images, int32 labels, or one-hot rows mixed by
    `targets`), from epoch `first` on; `span` epochs of them make one pass of `fit` (the
    learning-rate finder runs several epochs' batches in one)."""

    def __init__(
        self,
        images: Images,
        batch_size: int,
        seed: int,
        first: int,
        span: int = 1,
        targets: Targets | None = None,
        share: Share = WHOLE,
    ) -> None:
        super().__init__(workers=WORKERS, use_multiprocessing=False, max_queue_size=8)
        self.images, self.batch_size, self.seed = images, batch_size, seed
        self.targets, self.share = targets, share
        self.epoch, self.span = first, span
        self.per_epoch = steps_per_epoch(images, batch_size, share)
        self._orders: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.per_epoch * self.span

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        epoch, step = divmod(index, self.per_epoch)
        epoch += self.epoch
        idx = self._order(epoch)[step * self.batch_size : (step + 1) * self.batch_size]
        idx = self.share.training(idx)
        x, y = self.images.batch(idx).astype(np.float32), self.images.labels[idx]
        return self.targets.training(x, y, self.seed, epoch, step) if self.targets else (x, y)

    def _order(self, epoch: int) -> np.ndarray:
        """Epoch `epoch`'s order, drawn once per epoch (not per batch: the worker threads
        ask for it at every step)."""
        if epoch not in self._orders:
            self._orders = {e: o for e, o in self._orders.items() if e >= self.epoch}
            self._orders[epoch] = epoch_order(len(self.images), self.seed, epoch)
        return self._orders[epoch]

    def on_epoch_end(self) -> None:
        self.epoch += self.span


class EvalBatches(keras.utils.PyDataset):
    """Batches in file order, for validation, evaluation and prediction; split over
    several devices (`share`), each comes with its rows' weights, 0 on the padding."""

    def __init__(
        self,
        images: Images,
        batch_size: int,
        targets: Targets | None = None,
        share: Share = WHOLE,
    ) -> None:
        super().__init__(workers=WORKERS, use_multiprocessing=False, max_queue_size=8)
        self.images, self.batch_size, self.targets = images, batch_size, targets
        self.share = share

    def __len__(self) -> int:
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, ...]:
        idx = np.arange(
            index * self.batch_size, min((index + 1) * self.batch_size, len(self.images))
        )
        split = self.share.devices > 1
        idx, weights = self.share.evaluation(idx) if split else (idx, None)
        x, y = self.images.batch(idx).astype(np.float32), self.images.labels[idx]
        batch = x, self.targets.one_hot(y) if self.targets else y
        return (*batch, weights) if split else batch


def training_batches(
    rt: Runtime,
    images: Images,
    batch_size: int,
    seed: int,
    first: int,
    last: int,
    targets: Targets | None = None,
    one_pass: bool = False,
) -> TrainingBatches:
    """The batch source of training epochs [first, last) (a runtime's, off TensorFlow):
    one epoch's batches per pass of `fit`, or with `one_pass` all of them in one."""
    span = last - first if one_pass else 1
    return TrainingBatches(
        images, batch_size, seed, first, span=span, targets=targets, share=rt.share
    )


def eval_batches(
    images: Images, batch_size: int, targets: Targets | None = None, share: Share = WHOLE
) -> EvalBatches:
    return EvalBatches(images, batch_size, targets, share)
