"""The private Keras API animalcnn uses on every backend, in one place (what only
TensorFlow needs is in `backends.tensorflow`).

Tested with Keras 3.15 (`pyproject.toml` pins that range). Each private name is checked
where it is used (`require`), so an upgrade that removes one fails with a line naming
it, not with an AttributeError half-way through a run.

- `pin_inference_mode`: a nested model's recorded `training=False` (layer
  `_call_context_args`), which Keras 3 otherwise overrides with `fit`'s
  `training=True` (keras-team/keras#20285).
- `callback_counters` / `restore_callback_counters`: the EarlyStopping and
  ReduceLROnPlateau counters a resumed run carries on with (undocumented attributes).
- `failed_download`: the file named in Keras's message when a weights download fails.
- `outer_output`: a nested model's output in the model that calls it (`_inbound_nodes`;
  its public `output` is the nested model's own).
- `layers_without_xla`: the layers whose sublayers Keras cannot compile (`_flatten_layers`,
  as Keras's own `model_supports_jit` looks).
- `ema_swapped_in`: tell a new `SwapEMAWeights` that the model holds the averaged
  weights already (`_ema_weights_in_model`), as a run resumed mid-phase does.
- `scale_learning_rate`: step some variables at a fraction of the optimizer's rate
  (fastai's discriminative rates), through the optimizer's per-variable step
  (`update_step`, `_get_variable_index`) or, on PyTorch, its fused step over a list of
  variables (`_parallel_update_step`), called once per group.
"""

from __future__ import annotations

import re
from typing import Any

import keras

TESTED_WITH = "Keras 3.15"

# The callback attributes that carry a counter from one epoch to the next.
COUNTERS: dict[type, tuple[str, ...]] = {
    keras.callbacks.EarlyStopping: ("wait", "best", "best_epoch"),
    keras.callbacks.ReduceLROnPlateau: ("wait", "best", "cooldown_counter"),
}


def require(owner: object, name: str) -> None:
    """Fail in one line naming `owner.name` when this Keras (or backend) lacks it."""
    if not hasattr(owner, name):
        what = getattr(owner, "__name__", type(owner).__name__)
        raise ImportError(
            f"animalcnn relies on {what}.{name}, which Keras {keras.__version__} (on "
            f"{keras.backend.backend()}) lacks; it was tested with {TESTED_WITH}"
        )


def pin_inference_mode(layer: keras.Layer) -> None:
    """Make a nested model keep the `training=False` it was called with.

    Keras 3's functional models pass the outer `training` flag to every layer that
    takes one, overriding the value recorded for the nested model, so an unfrozen
    backbone's BatchNormalization would train. A layer without `training` among its
    call-context arguments keeps the recorded value. Not saved with the model.
    """
    require(layer, "_call_context_args")
    layer._call_context_args = set(layer._call_context_args) - {"training"}


def callback_counters(callback: keras.callbacks.Callback) -> dict[str, float]:
    """The counters of an EarlyStopping or ReduceLROnPlateau callback, as numbers."""
    for name in COUNTERS[type(callback)]:
        require(callback, name)
    return {name: float(getattr(callback, name)) for name in COUNTERS[type(callback)]}


def restore_callback_counters(callback: keras.callbacks.Callback, values: dict[str, Any]) -> None:
    """Put saved counters back (after the callback's `on_train_begin` reset them)."""
    for name, value in values.items():
        setattr(callback, name, value if name == "best" else int(value))


def failed_download(exc: Exception) -> str | None:
    """The file name when `exc` is Keras's failed download of a weights file, else None."""
    url = re.search(r"URL fetch failure on (\S+?):? ", str(exc))
    return url.group(1).rsplit("/", 1)[-1] if url else None


def outer_output(layer: keras.Layer) -> keras.KerasTensor:
    """`layer`'s output where its model calls it: for a nested model (a backbone) that is
    its last call's output, not the output of its own graph."""
    if not isinstance(layer, keras.Model):
        return layer.output
    require(layer, "_inbound_nodes")
    return layer._inbound_nodes[-1].output_tensors[0]


def ema_swapped_in(callback: keras.callbacks.SwapEMAWeights) -> None:
    """Mark the averaged weights as the ones in the model (a resumed run's checkpoint was
    saved with them swapped in), so the callback swaps the raw ones back first."""
    require(callback, "_ema_weights_in_model")
    callback._ema_weights_in_model = True


def layers_without_xla(model: keras.Model) -> list[str]:
    """The names of `model`'s layers that hold a layer Keras cannot compile with XLA (its
    random rotation, zoom, translation, and the RandAugment and AugMix built on them):
    with one of them, Keras trains the whole model without XLA."""
    require(model, "_flatten_layers")
    return [
        layer.name
        for layer in model.layers
        if not all(inner.supports_jit for inner in layer._flatten_layers())
    ]


def scale_learning_rate(
    optimizer: keras.optimizers.Optimizer, variables: list[Any], factor: float
) -> None:
    """Make `optimizer` step `variables` at `factor` times its learning rate (the others
    at the rate itself), whatever its kind and schedule. Keras has no per-variable rate,
    and a scaled gradient would not do it for Adam (its step is scale-free). The
    instance is changed, not its class, so it saves and loads as a plain Keras
    optimizer (a resumed run makes a new one and scales it again)."""
    require(optimizer, "_get_variable_index")
    slow: set[int] = set()  # the variables' indices, once the optimizer is built

    def slowed(variable: Any) -> bool:
        if not slow:
            slow.update(optimizer._get_variable_index(v) for v in variables)
        return optimizer._get_variable_index(variable) in slow

    if hasattr(optimizer, "_parallel_update_step"):  # PyTorch: one fused step per group
        fused = optimizer._parallel_update_step

        def parallel_update_step(grads: list, trainable: list, learning_rate: Any) -> None:
            for wanted, rate in ((True, learning_rate * factor), (False, learning_rate)):
                pairs = [
                    (g, v) for g, v in zip(grads, trainable, strict=True) if slowed(v) == wanted
                ]
                if pairs:
                    fused([g for g, _ in pairs], [v for _, v in pairs], rate)

        optimizer._parallel_update_step = parallel_update_step
        return
    require(optimizer, "update_step")
    step = optimizer.update_step

    def update_step(gradient: Any, variable: Any, learning_rate: Any) -> Any:
        rate = learning_rate * factor if slowed(variable) else learning_rate
        return step(gradient, variable, rate)

    optimizer.update_step = update_step
