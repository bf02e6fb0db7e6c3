"""Grad-CAM: where in an image the evidence for a class lies (Selvaraju et al., 2017).

The feature map explained is found from the model, not named per network: the last
layer with a spatial (4-D) output among the convolutional building blocks, or a
nested backbone model (whose output is its last convolutional feature map). It runs
on any Keras backend: `keras.ops` for the arithmetic, the backend's own gradient
(`backends.<name>.gradient`) for d(score)/d(feature map).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from animalcnn import backends
from animalcnn.keras_internals import outer_output

SPATIAL_BLOCKS = (
    keras.layers.Conv2D,
    keras.layers.Activation,
    keras.layers.Add,
    keras.layers.Concatenate,
    keras.layers.BatchNormalization,
    keras.layers.ReLU,
    keras.Model,
)


def feature_layer(model: keras.Model) -> keras.Layer:
    """The last convolutional feature map's layer."""
    for layer in reversed(model.layers):
        if isinstance(layer, SPATIAL_BLOCKS) and len(outer_output(layer).shape) == 4:
            return layer
    raise ValueError(f"{model.name}: no convolutional feature map to explain")


def heatmaps(
    model: keras.Model, images: np.ndarray, class_index: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM of each image for `class_index` (default: the predicted class), as maps in
    [0, 1] at the image's size, and the model's probabilities.

    The score explained is the class's logit, before the softmax (the classifier is a
    softmax Dense layer), so that one class's evidence is not another's absence. The
    model is split at the feature map: `probe` up to it, `tail` from it to the logits."""
    layer, head = feature_layer(model), model.layers[-1]
    features_out = outer_output(layer)
    probe = keras.Model(model.input, features_out)
    tail = keras.Model(features_out, head.input)
    kernel, bias = (ops.cast(w, "float32") for w in head.weights)

    def logits_of(features):
        return ops.matmul(ops.cast(tail(features, training=False), "float32"), kernel) + bias

    features = ops.convert_to_numpy(ops.cast(probe(images, training=False), "float32"))
    logits = ops.convert_to_numpy(logits_of(features))
    probs = ops.convert_to_numpy(ops.softmax(logits, axis=-1))
    chosen = probs.argmax(axis=1) if class_index is None else np.asarray(class_index)
    mask = ops.convert_to_tensor(np.eye(logits.shape[1], dtype=np.float32)[chosen])
    grads = backends.module().gradient(lambda f: ops.multiply(logits_of(f), mask), features)
    weights = grads.mean(axis=(1, 2), keepdims=True)
    cam = np.maximum((weights * features).sum(axis=-1), 0)[..., None]
    cam = ops.convert_to_numpy(ops.image.resize(cam, images.shape[1:3], interpolation="bilinear"))
    cam = cam[..., 0]
    top = cam.reshape(len(cam), -1).max(axis=1).reshape(-1, 1, 1)
    return np.divide(cam, top, out=np.zeros_like(cam), where=top > 0), probs
