"""TensorFlow: `tf.config` devices, `tf.distribute` strategies (mirrored on one machine,
multi-worker across machines), op determinism, and `tf.data` input (`data.pipeline`).

Also the private TensorFlow and Keras-trainer API only this backend needs, each name
checked where it is used (`keras_internals.require`).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from animalcnn.backends.runtime import (
    Runtime,
    choose_precision,
    cpu_flags,
    resolve,
)
from animalcnn.config import ExperimentConfig
from animalcnn.data.decoding import Images
from animalcnn.data.sharding import WHOLE, Share
from animalcnn.data.targets import Targets
from animalcnn.errors import ConfigError
from animalcnn.keras_internals import require

NAME = "tensorflow"


@functools.cache
def _multi_worker_strategy() -> tf.distribute.Strategy:
    """One per process: a second one's collectives collide with the first's
    (`train a.yaml b.yaml` on every worker)."""
    return tf.distribute.MultiWorkerMirroredStrategy()


def _strategy(cfg: ExperimentConfig, gpus: list) -> tf.distribute.Strategy:
    d = cfg.distribute
    if d.strategy == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise ConfigError(
                "distribute.strategy: multi_worker needs the TF_CONFIG environment variable "
                "(the cluster's addresses and this worker's task)"
            )
        return _multi_worker_strategy()
    mirrored = d.strategy == "mirrored" or (d.strategy == "auto" and len(gpus) > 1)
    if mirrored:
        devices = d.devices
        if devices is None and d.virtual_cpus and not gpus:
            devices = [dev.name for dev in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def set_op_determinism(on: bool) -> None:
    """Deterministic ops on or off, process-wide (`train a.yaml b.yaml` may differ);
    TensorFlow has no public switch back."""
    from tensorflow.python.framework import config as tf_config

    if on:
        tf.config.experimental.enable_op_determinism()
    else:
        require(tf_config, "disable_op_determinism")
        tf_config.disable_op_determinism()


def configure(cfg: ExperimentConfig) -> Runtime:
    """Apply the config's device, seed and precision settings; call before building the model."""
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        with contextlib.suppress(RuntimeError):  # already initialised in this process
            tf.config.experimental.set_memory_growth(gpu, True)
    if cfg.distribute.virtual_cpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        logical = [tf.config.LogicalDeviceConfiguration()] * cfg.distribute.virtual_cpus
        try:
            tf.config.set_logical_device_configuration(cpu, logical)
        except RuntimeError:
            raise ConfigError(
                "distribute.virtual_cpus: TensorFlow already started in this process; "
                "run this config in a process of its own"
            ) from None
    keras.utils.set_random_seed(cfg.seed)
    set_op_determinism(cfg.training.deterministic)
    precision = choose_precision(cfg.training.mixed_precision, bool(gpus), cpu_flags())
    keras.mixed_precision.set_global_policy(precision)
    strategy = _strategy(cfg, gpus)
    if gpus:
        details = [tf.config.experimental.get_device_details(g) for g in gpus]
        names = [d.get("device_name", g.name) for d, g in zip(details, gpus, strict=True)]
        device = f"GPU: {', '.join(names)}"
    else:
        device = f"CPU ({os.cpu_count()} cores)"
    replicas = strategy.num_replicas_in_sync
    if replicas > 1:
        device += f"; {type(strategy).__name__} over {replicas} replicas"
    jit = resolve(cfg.training.jit_compile, bool(gpus)) and not cfg.training.deterministic
    return Runtime(NAME, device, precision, jit, replicas, strategy.scope, strategy)


def training_batches(
    rt: Runtime,
    images: Images,
    batch_size: int,
    seed: int,
    first: int,
    last: int,
    targets: Targets | None = None,
    one_pass: bool = False,  # (tf.data runs the epochs as one stream either way)
) -> Any:
    from animalcnn.data import pipeline

    return pipeline.training_dataset(images, batch_size, seed, first, last, targets)


def eval_batches(
    images: Images, batch_size: int, targets: Targets | None = None, share: Share = WHOLE
) -> Any:
    """(`share` is always whole here: TensorFlow's strategies split batches themselves.)"""
    from animalcnn.data import pipeline

    return pipeline.eval_dataset(images, batch_size, targets)


def gradient(fn: Callable[[Any], Any], x: np.ndarray) -> np.ndarray:
    """d sum(fn(x)) / dx, with a tape that records every op (frozen layers' too)."""
    tensor = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(tensor)
        value = tf.reduce_sum(fn(tensor))
    return tape.gradient(value, tensor).numpy()


def adapt(model: keras.Model, rt: Runtime) -> None:
    """Let `model.fit` and `model.evaluate` run under a multi-worker strategy.

    Keras 3.15's TensorFlow trainer stops there twice: before the first step it
    reduces a whole `(images, labels)` batch with `strategy.reduce` only to learn
    its shapes (the collective reduce rejects it), so we build from this worker's
    local batch; and every step reduces its logs with `reduce("MEAN", v, axis=0)`,
    which fails on scalars, so our steps return each log as a one-element vector.
    Both replace methods on the instance only: loading the model again undoes them.
    (Private: `Model._maybe_symbolic_build`, `Model._symbolic_build`.)
    """
    strategy = rt.strategy
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    from keras import tree

    for name in ("_maybe_symbolic_build", "_symbolic_build"):
        require(model, name)

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
