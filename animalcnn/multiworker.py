"""Keras `fit` under `MultiWorkerMirroredStrategy`: two fixes Keras 3's TensorFlow trainer needs.

Keras 3.15's TensorFlow trainer has two bugs that stop `fit` on a multi-worker
cluster (MirroredStrategy on one machine is unaffected):

1. Before the first step it reduces a whole input batch with
   `strategy.reduce("MEAN", batch)` only to learn its shapes; the collective
   reduce rejects the nested `(images, labels)` batch. We build from this
   worker's local batch instead (same shapes).
2. Every train and test step reduces its logs with
   `strategy.reduce("MEAN", value, axis=0)`, which fails on the scalar loss and
   metrics. Our steps return each log as a one-element vector, which that
   reduce averages across workers back to a scalar.

Both fixes replace methods on the model instance (nothing is saved with it),
so they are undone by loading the model again. They override and call private
Keras methods (`_maybe_symbolic_build`, `_symbolic_build`): the two-worker tests
in tests/test_scale.py guard them across Keras upgrades.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import tensorflow as tf
from keras import tree

if TYPE_CHECKING:
    import keras


def adapt(model: keras.Model, strategy: tf.distribute.Strategy) -> None:
    """Let `model.fit` and `model.evaluate` run under a multi-worker `strategy`."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return

    def local(value):
        return strategy.experimental_local_results(value)[0]

    def symbolic_build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = tree.map_structure(local, next(it))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    def as_vectors(step):
        def vector_step(data):
            return {k: tf.reshape(v, [1]) for k, v in step(data).items()}

        return vector_step

    model._maybe_symbolic_build = symbolic_build
    model.train_step = as_vectors(type(model).train_step.__get__(model))
    model.test_step = as_vectors(type(model).test_step.__get__(model))
