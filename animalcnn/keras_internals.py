"""Every use of private Keras and TensorFlow API in animalcnn, in one place.

Tested with Keras 3.15 and TensorFlow 2.21 (`pyproject.toml` pins that range). On
import it checks that each private name it relies on exists, so an upgrade that
removes one fails at once, naming it, rather than half-way through a run.

- `pin_inference_mode`: a nested model's recorded `training=False` (layer
  `_call_context_args`), which Keras 3 otherwise overrides with `fit`'s
  `training=True` (keras-team/keras#20285).
- `adapt_multi_worker`: `fit` under `MultiWorkerMirroredStrategy`
  (`Model._maybe_symbolic_build`, `Model._symbolic_build`).
- `callback_counters` / `restore_callback_counters`: the EarlyStopping and
  ReduceLROnPlateau counters a resumed run carries on with (undocumented attributes).
- `disable_op_determinism`: TensorFlow has no public switch back.
- `failed_download`: the file named in Keras's message when a weights download fails.
- `outer_output`: a nested model's output in the model that calls it (`_inbound_nodes`;
  its public `output` is the nested model's own).
"""

from __future__ import annotations

import re
from typing import Any

import keras
import tensorflow as tf
from keras import tree
from tensorflow.python.framework import config as _tf_config

TESTED_WITH = "Keras 3.15, TensorFlow 2.21"

# The callback attributes that carry a counter from one epoch to the next.
COUNTERS: dict[type, tuple[str, ...]] = {
    keras.callbacks.EarlyStopping: ("wait", "best", "best_epoch"),
    keras.callbacks.ReduceLROnPlateau: ("wait", "best", "cooldown_counter"),
}


def _require(owner: object, name: str) -> None:
    if not hasattr(owner, name):
        what = getattr(owner, "__name__", type(owner).__name__)
        raise ImportError(
            f"animalcnn relies on {what}.{name}, which Keras {keras.__version__} / "
            f"TensorFlow {tf.__version__} lack; it was tested with {TESTED_WITH}"
        )


def _check() -> None:
    for name in ("_maybe_symbolic_build", "_symbolic_build"):
        _require(keras.Model, name)
    _require(keras.layers.Dense(1), "_call_context_args")
    _require(keras.layers.Dense(1), "_inbound_nodes")
    for cls, names in COUNTERS.items():
        callback = cls()
        callback.on_train_begin()  # where Keras sets them
        for name in names:
            _require(callback, name)
    _require(_tf_config, "disable_op_determinism")


_check()


def pin_inference_mode(layer: keras.Layer) -> None:
    """Make a nested model keep the `training=False` it was called with.

    Keras 3's functional models pass the outer `training` flag to every layer that
    takes one, overriding the value recorded for the nested model, so an unfrozen
    backbone's BatchNormalization would train. A layer without `training` among its
    call-context arguments keeps the recorded value. Not saved with the model.
    """
    layer._call_context_args = set(layer._call_context_args) - {"training"}


def adapt_multi_worker(model: keras.Model, strategy: tf.distribute.Strategy) -> None:
    """Let `model.fit` and `model.evaluate` run under a multi-worker `strategy`.

    Keras 3.15's TensorFlow trainer stops there twice: before the first step it
    reduces a whole `(images, labels)` batch with `strategy.reduce` only to learn
    its shapes (the collective reduce rejects it), so we build from this worker's
    local batch; and every step reduces its logs with `reduce("MEAN", v, axis=0)`,
    which fails on scalars, so our steps return each log as a one-element vector.
    Both replace methods on the instance only: loading the model again undoes them.
    """
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


def callback_counters(callback: keras.callbacks.Callback) -> dict[str, float]:
    """The counters of an EarlyStopping or ReduceLROnPlateau callback, as numbers."""
    return {name: float(getattr(callback, name)) for name in COUNTERS[type(callback)]}


def restore_callback_counters(callback: keras.callbacks.Callback, values: dict[str, Any]) -> None:
    """Put saved counters back (after the callback's `on_train_begin` reset them)."""
    for name, value in values.items():
        setattr(callback, name, value if name == "best" else int(value))


def set_op_determinism(on: bool) -> None:
    """Deterministic ops on or off, process-wide (`train a.yaml b.yaml` may differ)."""
    if on:
        tf.config.experimental.enable_op_determinism()
    else:
        _tf_config.disable_op_determinism()


def failed_download(exc: Exception) -> str | None:
    """The file name when `exc` is Keras's failed download of a weights file, else None."""
    url = re.search(r"URL fetch failure on (\S+?):? ", str(exc))
    return url.group(1).rsplit("/", 1)[-1] if url else None


def outer_output(layer: keras.Layer) -> keras.KerasTensor:
    """`layer`'s output where its model calls it: for a nested model (a backbone) that is
    its last call's output, not the output of its own graph."""
    if not isinstance(layer, keras.Model):
        return layer.output
    return layer._inbound_nodes[-1].output_tensors[0]
