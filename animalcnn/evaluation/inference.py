"""The one inference path: decoded images in, class probabilities out, through the
backend's batch source. `evaluate`, `predict` and `serve` all come here, so a file gets
the same numbers from each."""

from __future__ import annotations

import keras
import numpy as np

from animalcnn.data.decoding import Images


def in_memory(array: np.ndarray) -> Images:
    """Decoded images (n, size, size, 3) as an unlabelled split."""
    n = len(array)
    return Images(array, np.arange(n), np.zeros(n, np.int32), [], array.shape[1])


def probabilities(model: keras.Model, images: Images, batch_size: int) -> np.ndarray:
    """Each image's class probabilities (float64), in the split's order."""
    from animalcnn.training.compiling import eval_batches

    if not len(images):
        return np.zeros((0, model.output_shape[-1]))
    probs = model.predict(eval_batches(images, batch_size), verbose=0)
    return np.asarray(probs, dtype=np.float64)
