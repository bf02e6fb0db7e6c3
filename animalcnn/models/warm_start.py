"""Starting a model from another model's weights (`model.init_from`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras


def classifier(model: keras.Model) -> str:
    """The name of the layer whose outputs are the classes (the last one with weights)."""
    return next(layer.name for layer in reversed(model.layers) if layer.weights)


def copy_matching_weights(
    source: keras.Model, target: keras.Model, keep_fresh: frozenset[str] = frozenset()
) -> tuple[list[str], list[str]]:
    """Give each layer of `target` the weights of the `source` layer of the same name, where
    their shapes agree (a nested backbone is one layer), except the layers named in
    `keep_fresh`. Returns the layers copied and the layers with weights left as they were
    (a classifier for other classes, say)."""
    by_name = {layer.name: layer for layer in source.layers}
    copied, fresh = [], []
    for layer in target.layers:
        if not layer.weights:
            continue
        other = None if layer.name in keep_fresh else by_name.get(layer.name)
        shapes = [tuple(w.shape) for w in layer.weights]
        if other is not None and [tuple(w.shape) for w in other.weights] == shapes:
            layer.set_weights(other.get_weights())
            copied.append(layer.name)
        else:
            fresh.append(layer.name)
    return copied, fresh
