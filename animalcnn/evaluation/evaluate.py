"""Scoring a run's best checkpoint on a labelled split (the test split by default)."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np

from animalcnn.config import DataConfig, ExperimentConfig
from animalcnn.console import print_warning, progress_bar
from animalcnn.data import pipeline
from animalcnn.data.decoding import decode
from animalcnn.data.discovery import read_split
from animalcnn.errors import RunFolderError
from animalcnn.evaluation.scoring import score
from animalcnn.reporting.charts import confusion_chart, write_png
from animalcnn.run_folder import CONFUSION_PNG, EVALUATION, MODEL, OTHER_EVALUATIONS, RunFolder


def load_best(run: RunFolder) -> keras.Model:
    """The run's best checkpoint, to predict with."""
    path = run.file(MODEL)
    if not path.is_file():
        raise RunFolderError(f"{run.path}: no {MODEL} (run status: {run.status()})")
    cfg = run.config()
    model = run.load_model(MODEL)
    expected = (None, cfg.data.img_size, cfg.data.img_size, 3)
    classes = run.metrics().get("classes") or []
    if tuple(model.input_shape) != expected or model.output_shape[-1] != len(classes):
        raise RunFolderError(
            f"{path}: takes {tuple(model.input_shape)} and gives {model.output_shape[-1]} "
            f"classes, but the run's config and metrics say {expected} and {len(classes)}"
        )
    return model


def reading_config(cfg: ExperimentConfig) -> DataConfig:
    """How to decode images for a run that may be someone else's: its image size and batch,
    but decoded in memory, so its config decides nothing about where files are written."""
    return cfg.data.model_copy(update={"cache": "memory", "cache_dir": DataConfig().cache_dir})


def test_folder(run: RunFolder, data: Path | None) -> Path:
    """The run's test split, or `data`: a dataset root holding that split, or a split itself."""
    cfg = run.config().data
    if data is None:
        return cfg.dir / cfg.test_split
    data = data.expanduser()
    return data / cfg.test_split if (data / cfg.test_split).is_dir() else data


def other_data_name(folder: Path) -> str:
    """The file stem for results on another data folder: its name and a short hash of
    its full path, so two folders of one name stay apart."""
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:8]
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", folder.name).strip("._") or "data"
    return f"{safe}-{digest}"


def evaluate(run: RunFolder, data: Path | None = None) -> dict[str, Any]:
    """Score the best checkpoint and return the result, written beside the checkpoint it
    belongs to: the run's own test split to `evaluation.json` (and `confusion.png`),
    another data folder to `evaluations/<name>.json` (and its PNG), never replacing the
    run's own result."""
    cfg = run.config()
    metrics = run.metrics()
    status = run.status()
    if status != "completed":
        print_warning(f"{run.path} is {status}: scoring its best checkpoint so far")
    folder = test_folder(run, data)
    classes, split = read_split(folder, metrics.get("classes"))
    model = load_best(run)
    with progress_bar(f"decoding {folder}", len(split)) as advance:
        images = decode(split, reading_config(cfg), advance)
    for b in images.bad:
        print_warning(f"skipped {b}")
    probs = model.predict(pipeline.eval_dataset(images, cfg.data.batch_size), verbose=0)
    result = score(images.labels, np.asarray(probs, dtype=np.float64), classes)
    best = metrics.get("best") or {}
    result.update(
        data=str(folder),
        own_test_split=data is None,
        evaluated=datetime.now().isoformat(timespec="seconds"),
        run_status=status,
        checkpoint={
            "epoch": best.get("epoch"),
            "phase": best.get("phase"),
            "sha256": file_digest(run.file(MODEL)),
        },
        train_accuracy=best.get("accuracy"),
        skipped_files=[str(b) for b in images.bad],
    )
    if data is None:
        json_path, png_path = run.file(EVALUATION), run.file(CONFUSION_PNG)
    else:
        name = other_data_name(folder)
        json_path = run.file(OTHER_EVALUATIONS) / f"{name}.json"
        png_path = run.file(OTHER_EVALUATIONS) / f"{name}_confusion.png"
    run.write_json(str(json_path.relative_to(run.path)), result)
    write_png(confusion_chart(result, f"{run.name} on {folder.name}"), png_path)
    result["written"] = str(json_path)
    return result


def file_digest(path: Path) -> str:
    """SHA-256 of a file, read in chunks (checkpoints can be hundreds of MB)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
