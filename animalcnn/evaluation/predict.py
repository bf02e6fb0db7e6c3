"""Labelling new images with a trained run (such as the dataset's unlabeled inf/)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from animalcnn.data.files import IMAGE_SUFFIXES, list_images
from animalcnn.errors import DataError
from animalcnn.run_folder import RunFolder

if TYPE_CHECKING:
    from animalcnn.evaluation.inference import Tta


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files as given; folders as the image files below them; one-line errors for missing
    paths and for none at all."""
    files: list[Path] = []
    for path in paths:
        path = path.expanduser()
        if path.is_dir():
            files += list_images(path)
        elif path.exists():
            files.append(path)
        else:
            raise DataError(f"{path}: no such file or folder")
    seen: set[Path] = set()
    files = [f for f in files if not (f.resolve() in seen or seen.add(f.resolve()))]  # once each
    if not files:
        raise DataError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in the paths given")
    return files


def as_batch(pixels: np.ndarray, size: int) -> np.ndarray:
    """An image (height, width[, channels]) or a batch of them as the network reads images:
    uint8 RGB (n, size, size, 3), each converted and resized as a decoded file is."""
    from PIL import Image

    from animalcnn.data.decoding import resized_rgb

    single = pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[-1] in (1, 3, 4))
    batch = pixels[None] if single else pixels
    if batch.ndim not in (3, 4) or (batch.ndim == 4 and batch.shape[-1] not in (1, 3, 4)):
        raise DataError(
            f"an array of images: shape {pixels.shape} is not (height, width, "
            "channels) or (n, height, width, channels) with 1, 3 or 4 channels"
        )
    if batch.dtype != np.uint8:
        raise DataError(f"an array of images: {batch.dtype} pixels; give uint8 (0-255)")
    squeezed = [b[..., 0] if b.ndim == 3 and b.shape[-1] == 1 else b for b in batch]
    return np.stack([resized_rgb(Image.fromarray(b), size) for b in squeezed])


FIRST_COLUMNS = ("file", "predicted", "confidence")  # then p_<class> ..., error
CSV_MARK = ",".join(FIRST_COLUMNS).encode()  # how a predictions CSV's header begins


def predict(run: RunFolder, images: list[Path] | np.ndarray, tta: Tta = "none") -> pd.DataFrame:
    """One row per image (files, the image files of folders, or an array of pixels):
    predicted class, confidence and one probability per class (with `tta`, averaged over
    views of it); a file that cannot be read gets its reason in `error` and no
    prediction."""
    from animalcnn.data.decoding import decode
    from animalcnn.data.discovery import Split
    from animalcnn.evaluation.evaluate import reading_config
    from animalcnn.evaluation.inference import in_memory, probabilities

    cfg = run.config()
    classes = run.metrics().classes
    model = run.best_model()
    if isinstance(images, np.ndarray):
        decoded, why = in_memory(as_batch(images, cfg.data.img_size)), {}
        names = [f"array[{i}]" for i in range(len(decoded))]
    else:
        files = expand_paths(images)
        names = [str(f) for f in files]
        decoded = decode(Split(files, np.zeros(len(files), np.int32)), reading_config(cfg))
        index = {f: i for i, f in enumerate(files)}
        why = {index[b.path]: b.reason for b in decoded.bad}
    probs = np.zeros((len(names), len(classes)))
    probs[decoded.rows] = probabilities(model, decoded, cfg.data.batch_size, tta)
    rows = []
    for i, name in enumerate(names):
        row: dict[str, object] = {"file": name}
        if i in why:
            row.update(predicted=None, confidence=None, error=why[i])
        else:
            row.update(predicted=classes[int(probs[i].argmax())], confidence=float(probs[i].max()))
            row.update({f"p_{c}": float(p) for c, p in zip(classes, probs[i], strict=True)})
            row["error"] = None
        rows.append(row)
    columns = [*FIRST_COLUMNS, *(f"p_{c}" for c in classes), "error"]
    return pd.DataFrame(rows, columns=columns)
