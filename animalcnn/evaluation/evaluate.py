"""Scoring a run's best checkpoint on a labelled split (the test split by default)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np

from animalcnn.console import print_warning, progress_bar
from animalcnn.data import pipeline
from animalcnn.data.decoding import decode
from animalcnn.data.discovery import read_split
from animalcnn.errors import RunFolderError
from animalcnn.evaluation.scoring import score
from animalcnn.models import load_model
from animalcnn.reporting.charts import confusion_chart, write_png
from animalcnn.run_folder import CONFUSION_PNG, EVALUATION, MODEL, RunFolder


def load_best(run: RunFolder) -> keras.Model:
    """The run's best checkpoint, to predict with."""
    path = run.file(MODEL)
    if not path.is_file():
        status = run.metrics().get("status", "unknown")
        raise RunFolderError(f"{run.path}: no {MODEL} (run status: {status})")
    return load_model(path, run.config().model.arch)


def test_folder(run: RunFolder, data: Path | None) -> Path:
    """The run's test split, or `data`: a dataset root holding that split, or a split itself."""
    cfg = run.config().data
    if data is None:
        return cfg.dir / cfg.test_split
    data = data.expanduser()
    return data / cfg.test_split if (data / cfg.test_split).is_dir() else data


def evaluate(run: RunFolder, data: Path | None = None) -> dict[str, Any]:
    """Score the best checkpoint, write `evaluation.json` and return its contents."""
    cfg = run.config()
    metrics = run.metrics()
    folder = test_folder(run, data)
    classes, split = read_split(folder, metrics.get("classes"))
    model = load_best(run)
    with progress_bar(f"decoding {folder}", len(split)) as advance:
        images = decode(split, cfg.data, advance)
    for b in images.bad:
        print_warning(f"skipped {b}")
    probs = model.predict(pipeline.eval_dataset(images, cfg.data.batch_size), verbose=0)
    result = score(images.labels, np.asarray(probs, dtype=np.float64), classes)
    best = metrics.get("best") or {}
    result.update(
        data=str(folder),
        evaluated=datetime.now().isoformat(timespec="seconds"),
        train_accuracy=best.get("accuracy"),
        skipped_files=[str(b) for b in images.bad],
    )
    run.write_json(EVALUATION, result)
    write_png(confusion_chart(result, run.name), run.file(CONFUSION_PNG))
    return result
