"""Labelling new images with a trained run (such as the dataset's unlabeled inf/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from rich.table import Table

from animalcnn.data import IMAGE_SUFFIXES, Images, list_images, try_load
from animalcnn.errors import DataError
from animalcnn.runs import RunFolder

SHOWN = 50  # rows printed; the CSV has them all


def _expand(paths: list[Path]) -> list[Path]:
    """Files as given; folders as the image files below them."""
    files: list[Path] = []
    for path in paths:
        path = path.expanduser()
        if path.is_dir():
            files += list_images(path)
        elif path.exists():
            files.append(path)
        else:
            raise DataError(f"{path}: no such file or folder")
    return files


def predict(run: RunFolder, paths: list[Path]) -> pd.DataFrame:
    """One row per file: predicted class, confidence and one probability per class;
    a file that cannot be read gets its reason in `error` and no prediction."""
    from animalcnn import pipeline
    from animalcnn.evaluation import load_model

    cfg = run.config()
    classes = run.metrics().get("classes") or []
    files = _expand(paths)
    if not files:
        raise DataError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in the paths given")
    model = load_model(run)
    size = cfg.data.img_size
    decoded = [try_load(f, size) for f in files]
    ok = [i for i, d in enumerate(decoded) if not isinstance(d, str)]
    probs = np.zeros((len(files), len(classes)))
    if ok:
        array = np.stack([decoded[i] for i in ok])
        images = Images(array, np.arange(len(ok)), np.zeros(len(ok), np.int32), [], size)
        probs[ok] = model.predict(pipeline.eval_dataset(images, cfg.data.batch_size), verbose=0)
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


def prediction_table(df: pd.DataFrame) -> Table:
    failed = int(df["error"].notna().sum())
    table = Table(
        title=f"{len(df):,} images, {failed} unreadable"
        + (f" (first {SHOWN} shown)" if len(df) > SHOWN else ""),
        header_style="bold",
    )
    for col in ("file", "predicted", "confidence"):
        table.add_column(col, justify="right" if col == "confidence" else "left")
    for _, r in df.head(SHOWN).iterrows():
        if r["error"] is not None and not pd.isna(r["error"]):
            table.add_row(r["file"], f"[red]{r['error']}[/]", "-")
        else:
            table.add_row(r["file"], r["predicted"], f"{r['confidence']:.3f}")
    return table
