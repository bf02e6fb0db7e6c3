"""tf.data input pipelines over decoded images (the TensorFlow backend's; JAX and PyTorch
use `data.batches`).

Images stay uint8 until a batch is formed (a quarter of a float32 copy), and
batches are gathered by index: from one in-memory tensor, from a memory-mapped
cache file, or by decoding the files (data.cache: none). The training order of
epoch `e` is a shuffle seeded by (seed, e), so a resumed run sees the same
batches an uninterrupted one would.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from animalcnn.data.decoding import TENSOR_ALIGNMENT, Images
from animalcnn.data.targets import Targets


def _options() -> tf.data.Options:
    # Batches are formed from indices before loading: across workers, shard the batches.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options


def _as_tensor(array: np.ndarray) -> tf.Tensor:
    """The array as a tensor, sharing its memory (DLPack) where TensorFlow can use it as
    is: `tf.constant` would hold the cache twice, and three times while copying."""
    if array.size and array.flags.c_contiguous and array.ctypes.data % TENSOR_ALIGNMENT == 0:
        return tf.experimental.dlpack.from_dlpack(array.__dlpack__())
    return tf.constant(array)


def _batch_loader(images: Images):
    """A function from a batch of indices to (float32 images, int32 labels)."""
    labels = tf.constant(images.labels)
    shape = (images.size, images.size, 3)
    if images.array is not None and not isinstance(images.array, np.memmap):
        table = _as_tensor(images.array)
        rows = tf.constant(images.rows)

        def fetch(idx):
            return tf.gather(table, tf.gather(rows, idx))
    else:

        def fetch(idx):
            batch = tf.numpy_function(images.batch, [idx], tf.uint8, stateful=False)
            return tf.ensure_shape(batch, (None, *shape))

    def load(idx):
        return tf.cast(fetch(idx), tf.float32), tf.gather(labels, idx)

    return load


def _one_hot(batches: tf.data.Dataset, targets: Targets | None) -> tf.data.Dataset:
    """The batches with what the loss takes: the labels as they are, or one-hot rows."""
    if targets is None:
        return batches
    return batches.map(lambda x, y: (x, tf.one_hot(y, targets.num_classes, dtype=tf.float32)))


def _mixer(targets: Targets, seed: int):
    """A map from a formed batch at (epoch, step) to `Targets.training`'s, in NumPy."""

    def mix(x, y, epoch, step):
        def run(x, y, epoch, step):
            return targets.training(x, y, seed, int(epoch), int(step))

        mixed = tf.numpy_function(run, [x, y, epoch, step], [tf.float32, tf.float32])
        return (
            tf.ensure_shape(mixed[0], x.shape),
            tf.ensure_shape(mixed[1], (None, targets.num_classes)),
        )

    return mix


def training_dataset(
    images: Images,
    batch_size: int,
    seed: int,
    first_epoch: int,
    last_epoch: int,
    targets: Targets | None = None,
) -> tf.data.Dataset:
    """Batches for epochs [first_epoch, last_epoch), each epoch shuffled by its own seed.

    Pass `steps_per_epoch` to `fit`: the stream runs on across epochs.
    """
    n = len(images)
    load = _batch_loader(images)
    mixing = targets is not None and bool(targets.mixes)

    def epoch_order(epoch):
        epoch_seed = tf.cast(seed, tf.int64) * 100_003 + epoch
        batches = tf.data.Dataset.range(n).shuffle(n, seed=epoch_seed).batch(batch_size)
        if not mixing:
            return batches
        return batches.enumerate().map(lambda step, idx: (idx, epoch, step))  # mixing draws

    indices = tf.data.Dataset.range(first_epoch, last_epoch).flat_map(epoch_order)
    if mixing:
        loaded = indices.map(
            lambda idx, epoch, step: (*load(idx), epoch, step), num_parallel_calls=tf.data.AUTOTUNE
        )
        loaded = loaded.map(_mixer(targets, seed), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        loaded = _one_hot(indices.map(load, num_parallel_calls=tf.data.AUTOTUNE), targets)
    return loaded.prefetch(tf.data.AUTOTUNE).with_options(_options())


def eval_dataset(
    images: Images, batch_size: int, targets: Targets | None = None
) -> tf.data.Dataset:
    """Batches in file order, for validation, evaluation and prediction."""
    indices = tf.data.Dataset.range(len(images)).batch(batch_size)
    loaded = indices.map(_batch_loader(images), num_parallel_calls=tf.data.AUTOTUNE)
    return _one_hot(loaded, targets).prefetch(tf.data.AUTOTUNE).with_options(_options())
