"""Starting a model from another model's weights (`model.init_from`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras


def copy_matching_weights(source: keras.Model, target: keras.Model) -> tuple[list[str], list[str]]:
    """Give each layer of `target` the weights of the `source` layer of the same name, where
    their shapes agree (a nested backbone is one layer). Returns the layers copied and the
    layers with weights left as they were (a classifier for other classes, say)."""
    by_name = {layer.name: layer for layer in source.layers}
    copied, fresh = [], []
    for layer in target.layers:
        if not layer.weights:
            continue
        other = by_name.get(layer.name)
        shapes = [tuple(w.shape) for w in layer.weights]
        if other is not None and [tuple(w.shape) for w in other.weights] == shapes:
            layer.set_weights(other.get_weights())
            copied.append(layer.name)
        else:
            fresh.append(layer.name)
    return copied, fresh
