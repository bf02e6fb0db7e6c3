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


FIRST_COLUMNS = ("file", "predicted", "confidence")  # then p_<class> ..., error
CSV_MARK = ",".join(FIRST_COLUMNS).encode()  # how a predictions CSV's header begins


def predict(run: RunFolder, paths: list[Path], tta: Tta = "none") -> pd.DataFrame:
    """One row per file: predicted class, confidence and one probability per class (with
    `tta`, averaged over views of it); a file that cannot be read gets its reason in
    `error` and no prediction."""
    from animalcnn.data.decoding import decode
    from animalcnn.data.discovery import Split
    from animalcnn.evaluation.evaluate import reading_config
    from animalcnn.evaluation.inference import probabilities

    cfg = run.config()
    classes = run.metrics().get("classes") or []
    files = expand_paths(paths)
    model = run.best_model()
    images = decode(Split(files, np.zeros(len(files), np.int32)), reading_config(cfg))
    why = {b.path: b.reason for b in images.bad}
    probs = np.zeros((len(files), len(classes)))
    probs[images.rows] = probabilities(model, images, cfg.data.batch_size, tta)
    rows = []
    for i, path in enumerate(files):
        row: dict[str, object] = {"file": str(path)}
        if path in why:
            row.update(predicted=None, confidence=None, error=why[path])
        else:
            row.update(predicted=classes[int(probs[i].argmax())], confidence=float(probs[i].max()))
            row.update({f"p_{c}": float(p) for c, p in zip(classes, probs[i], strict=True)})
            row["error"] = None
        rows.append(row)
    columns = [*FIRST_COLUMNS, *(f"p_{c}" for c in classes), "error"]
    return pd.DataFrame(rows, columns=columns)
