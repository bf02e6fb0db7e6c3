"""The one way a model is compiled to train: the loss, the metric, the runtime's scope
and XLA setting, and whatever its backend must adapt (multi-worker TensorFlow). Training
and the learning-rate finder both come here, so they cannot drift apart."""

from __future__ import annotations

from collections.abc import Callable

import keras

from animalcnn import backends
from animalcnn.backends.runtime import Runtime

LOSS = "sparse_categorical_crossentropy"  # integer labels, softmax outputs


def compile_for_training(
    model: keras.Model,
    rt: Runtime,
    optimizer: Callable[[], keras.optimizers.Optimizer] | keras.optimizers.Optimizer,
) -> None:
    """Compile `model` to train; a new optimizer is made (by calling `optimizer`) inside
    the runtime's distribution scope, where its variables must live."""
    with rt.scope():
        made = optimizer() if callable(optimizer) else optimizer
        model.compile(optimizer=made, loss=LOSS, metrics=["accuracy"],
                      jit_compile=rt.jit_compile)  # fmt: skip
    backends.module(rt.backend).adapt(model, rt)


def training_batches(rt: Runtime, images, batch_size: int, seed: int, first: int, last: int):
    """The runtime's batch source for training epochs [first, last)."""
    return backends.module(rt.backend).training_batches(rt, images, batch_size, seed, first, last)


def eval_batches(images, batch_size: int):
    """The backend's batch source for validation, evaluation and prediction."""
    return backends.module().eval_batches(images, batch_size)
