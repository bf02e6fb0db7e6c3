"""Model builders, registered by name (see `registry`), and loading saved models."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

# The built-in architectures register themselves when imported (they import Keras only
# when a builder runs), so the registry is full wherever `animalcnn.models` is used.
from animalcnn.models import custom, pretrained, registry  # noqa: F401
from animalcnn.models.spec import AUGMENTATION_PREFIX, ModelSpec

if TYPE_CHECKING:
    import keras

    from animalcnn.config import ExperimentConfig


def build_model(cfg: ExperimentConfig, num_classes: int) -> keras.Model:
    """The config's architecture, built for `num_classes` at `data.img_size`."""
    arch = registry.get(cfg.model.arch)
    return arch.build(ModelSpec.from_config(cfg, num_classes), cfg.model.options)


def load_model(path: Path, arch: str, compile: bool = False) -> keras.Model:
    """A saved model of architecture `arch`, ready to predict or (with `compile`, which
    restores the optimizer) to train on: the architecture's after-load step applied."""
    import keras

    model = keras.saving.load_model(path, compile=compile)
    after_load = registry.get(arch).after_load
    if after_load is not None:
        after_load(model)
    return model


def for_export(model: keras.Model) -> keras.Model:
    """The model as an exported artifact runs it: the same weights, computing in float32
    throughout, without the augmentation layers (identities at inference); itself where
    that changes nothing. TFLite's and ONNX Runtime's CPU kernels take no bfloat16 or
    float16, and ONNX Runtime refuses the random ops that an augmentation layer leaves in
    the traced graph."""
    layers = list(model._flatten_layers(include_self=False))
    if all(layer.dtype_policy.name == "float32" for layer in layers) and not any(
        layer.name.startswith(AUGMENTATION_PREFIX) for layer in model.layers
    ):
        return model
    config = _float32_policies(_without_augmentation(model.get_config()))
    copy = model.__class__.from_config(config)
    for layer in copy.layers:
        layer.set_weights(model.get_layer(layer.name).get_weights())
    return copy


def _without_augmentation(config: dict[str, Any]) -> dict[str, Any]:
    """A functional model's config with its augmentation layers left out, each layer
    that read one reading what it read."""
    source: dict[str, Any] = {}
    kept = []
    for layer in config["layers"]:
        if layer["name"].startswith(AUGMENTATION_PREFIX):
            history = layer["inbound_nodes"][0]["args"][0]["config"]["keras_history"]
            source[layer["name"]] = source.get(history[0], history)
        else:
            kept.append(layer)
    return {**config, "layers": _rewired(kept, source)}


def _rewired(node: Any, source: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "keras_history" in node and node["keras_history"][0] in source:
            return {**node, "keras_history": source[node["keras_history"][0]]}
        return {key: _rewired(value, source) for key, value in node.items()}
    if isinstance(node, list | tuple):
        return type(node)(_rewired(value, source) for value in node)
    return node


def _float32_policies(node: Any) -> Any:
    """A model config with every layer's dtype policy (nested models' too) float32."""
    if isinstance(node, dict):
        if node.get("class_name") == "DTypePolicy":
            return {**node, "config": {**node["config"], "name": "float32"}}
        return {key: _float32_policies(value) for key, value in node.items()}
    if isinstance(node, list | tuple):
        return type(node)(_float32_policies(value) for value in node)
    return node
