"""Labelling new images with a trained run (such as the dataset's unlabeled inf/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from animalcnn.data.decoding import Images, try_load
from animalcnn.data.files import IMAGE_SUFFIXES, list_images
from animalcnn.errors import DataError
from animalcnn.run_folder import RunFolder


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


def predict(run: RunFolder, paths: list[Path]) -> pd.DataFrame:
    """One row per file: predicted class, confidence and one probability per class;
    a file that cannot be read gets its reason in `error` and no prediction."""
    from animalcnn.evaluation.evaluate import load_best
    from animalcnn.training.compiling import eval_batches

    cfg = run.config()
    classes = run.metrics().get("classes") or []
    files = expand_paths(paths)
    model = load_best(run)
    size = cfg.data.img_size
    decoded = [try_load(f, size) for f in files]
    ok = [i for i, d in enumerate(decoded) if not isinstance(d, str)]
    probs = np.zeros((len(files), len(classes)))
    if ok:
        array = np.stack([decoded[i] for i in ok])
        images = Images(array, np.arange(len(ok)), np.zeros(len(ok), np.int32), [], size)
        probs[ok] = model.predict(eval_batches(images, cfg.data.batch_size), verbose=0)
    rows = []
    for i, (path, d) in enumerate(zip(files, decoded, strict=True)):
        row: dict[str, object] = {"file": str(path)}
        if isinstance(d, str):
            row.update(predicted=None, confidence=None, error=d)
        else:
            row.update(predicted=classes[int(probs[i].argmax())], confidence=float(probs[i].max()))
            row.update({f"p_{c}": float(p) for c, p in zip(classes, probs[i], strict=True)})
            row["error"] = None
        rows.append(row)
    columns = ["file", "predicted", "confidence", *(f"p_{c}" for c in classes), "error"]
    return pd.DataFrame(rows, columns=columns)
