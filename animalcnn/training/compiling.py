"""The one way a model is compiled to train: the config's loss, the metric, the runtime's
scope and XLA setting, and whatever its backend must adapt (multi-worker TensorFlow).
Training and the learning-rate finder both come here, so they cannot drift apart."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import keras

from animalcnn import backends
from animalcnn.backends.runtime import Runtime
from animalcnn.config.schema import TrainingConfig
from animalcnn.console import print_warning
from animalcnn.data.targets import Targets
from animalcnn.keras_internals import layers_without_xla
from animalcnn.training.optimizers import loss


def compile_for_training(
    model: keras.Model,
    rt: Runtime,
    training: TrainingConfig,
    optimizer: Callable[[], keras.optimizers.Optimizer],
) -> None:
    """Compile `model` to train with the config's loss; the optimizer is made (by calling
    `optimizer`) inside the runtime's scope, where its variables must live."""
    with rt.scope(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Model doesn't support `jit_compile=True`")
        # Weighted: validation split over devices pads with rows weighted 0 (`Share`).
        model.compile(
            optimizer=optimizer(),
            loss=loss(training),
            weighted_metrics=["accuracy"],
            jit_compile=rt.jit_compile,
        )
    backends.module(rt.backend).adapt(model, rt)
    if rt.jit_compile and not model.jit_compile:
        slower = ", each step op by op: many times slower" if rt.backend == "jax" else ""
        print_warning(
            f"XLA off: Keras cannot compile {', '.join(layers_without_xla(model))} "
            f"(jit_compile), so this model trains without XLA{slower}"
        )


def training_batches(
    rt: Runtime,
    images,
    batch_size: int,
    seed: int,
    first: int,
    last: int,
    targets: Targets | None = None,
    one_pass: bool = False,
):
    """The runtime's batch source for training epochs [first, last): one epoch per pass of
    `fit`, or with `one_pass` all of them in one (the learning-rate finder's)."""
    module = backends.module(rt.backend)
    return module.training_batches(rt, images, batch_size, seed, first, last, targets, one_pass)


def eval_batches(rt: Runtime, images, batch_size: int, targets: Targets | None = None):
    """The runtime's batch source for validation while training."""
    return backends.module(rt.backend).eval_batches(images, batch_size, targets, rt.share)
