"""Grad-CAM: where in an image the evidence for a class lies (Selvaraju et al., 2017).

The feature map explained is found from the model, not named per network: the last
layer with a spatial (4-D) output among the convolutional building blocks, or a
nested backbone model (whose output is its last convolutional feature map).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from animalcnn.keras_internals import outer_output

SPATIAL_BLOCKS = (
    keras.layers.Conv2D, keras.layers.Activation, keras.layers.Add, keras.layers.Concatenate,
    keras.layers.BatchNormalization, keras.layers.ReLU, keras.Model,
)  # fmt: skip


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
    softmax Dense layer), so that one class's evidence is not another's absence."""
    layer, head = feature_layer(model), model.layers[-1]
    probe = keras.Model(model.inputs, [outer_output(layer), head.input])
    x = tf.convert_to_tensor(images, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)  # records every op, frozen layers' too
        features, penultimate = probe(x, training=False)
        kernel, bias = (tf.cast(w, tf.float32) for w in head.weights)
        logits = tf.matmul(tf.cast(penultimate, tf.float32), kernel) + bias
        probs = tf.nn.softmax(logits)
        chosen = tf.argmax(probs, axis=1) if class_index is None else class_index
        score = tf.gather(logits, chosen, axis=1, batch_dims=1)
    grads = tf.cast(tape.gradient(score, features), tf.float32)
    features = tf.cast(features, tf.float32)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))[..., None]
    cam = tf.image.resize(cam, images.shape[1:3], method="bilinear")[..., 0].numpy()
    top = cam.reshape(len(cam), -1).max(axis=1).reshape(-1, 1, 1)
    return np.divide(cam, top, out=np.zeros_like(cam), where=top > 0), probs.numpy()
