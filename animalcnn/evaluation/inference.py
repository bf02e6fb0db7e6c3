"""The one inference path: decoded images in, class probabilities out, through the
backend's batch source. `evaluate`, `predict` and `serve` all come here, so a file gets
the same numbers from each.

Test-time augmentation averages the probabilities of several views of each image: the
image and its mirror image (`flip`), and four copies shifted by an eighth of the side
(`crops`, with the flip).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from animalcnn import backends
from animalcnn.config.schema import Tta
from animalcnn.data.decoding import Images

TTA_CHUNK = 1024  # images whose views are formed at once (each view is a uint8 copy)
SHIFT = 8  # crops: shifted by 1/SHIFT of the side, edges repeated


def in_memory(array: np.ndarray) -> Images:
    """Decoded images (n, size, size, 3) as an unlabelled split."""
    n = len(array)
    return Images(array, np.arange(n), np.zeros(n, np.int32), [], array.shape[1])


def _shifted(dy: int, dx: int) -> Callable[[np.ndarray], np.ndarray]:
    def view(x: np.ndarray) -> np.ndarray:
        size = x.shape[1]
        s = max(size // SHIFT, 1)
        padded = np.pad(x, ((0, 0), (s, s), (s, s), (0, 0)), mode="edge")
        y0, x0 = s + dy * s, s + dx * s
        return padded[:, y0 : y0 + size, x0 : x0 + size]

    return view


def views(tta: Tta) -> list[Callable[[np.ndarray], np.ndarray]]:
    """The views of a batch that `tta` averages over (the image itself first)."""
    same, mirror = (lambda x: x), (lambda x: x[:, :, ::-1])
    if tta == "none":
        return [same]
    if tta == "flip":
        return [same, mirror]
    return [same, mirror, *(_shifted(dy, dx) for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)))]


def probabilities(
    model: keras.Model,
    images: Images,
    batch_size: int,
    tta: Tta = "none",
    within_fit: bool = False,
) -> np.ndarray:
    """Each image's class probabilities (float64), in the split's order; with `tta`, the
    mean over its views. `within_fit` (a callback's call, while `fit` runs): the model is
    called batch by batch instead of through `predict`, which on JAX would hand the
    trainer's arrays to its own jitted step and free them (the EMA copies with them)."""
    if not len(images):
        return np.zeros((0, model.output_shape[-1]))
    if tta == "none" and not within_fit:  # straight from the split, no copy
        batches = backends.module().eval_batches(images, batch_size)
        return np.asarray(model.predict(batches, verbose=0), np.float64)
    chunks = []
    for start in range(0, len(images), TTA_CHUNK):
        pixels = images.batch(np.arange(start, min(start + TTA_CHUNK, len(images))))
        each = [
            _predict(model, np.ascontiguousarray(view(pixels)), batch_size, within_fit)
            for view in views(tta)
        ]
        chunks.append(np.mean(np.asarray(each, dtype=np.float64), axis=0))
    return np.concatenate(chunks)


def _predict(model: keras.Model, pixels: np.ndarray, batch_size: int, within_fit: bool) -> Any:
    if not within_fit:
        batches = backends.module().eval_batches(in_memory(pixels), batch_size)
        return model.predict(batches, verbose=0)
    return np.concatenate(
        [
            keras.ops.convert_to_numpy(
                model(pixels[i : i + batch_size].astype(np.float32), training=False)
            )
            for i in range(0, len(pixels), batch_size)
        ]
    )
