"""Scoring a run's best checkpoint on a labelled split (the test split by default)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from animalcnn.config import DataConfig, ExperimentConfig
from animalcnn.console import print_warning, progress_bar
from animalcnn.data.decoding import Images, decode
from animalcnn.data.discovery import Split, read_split
from animalcnn.data.files import file_digest
from animalcnn.errors import RunFolderError
from animalcnn.evaluation.gradcam import heatmaps
from animalcnn.evaluation.inference import Tta, probabilities
from animalcnn.evaluation.interpret import DEFAULT_ERRORS, most_confused, top_errors
from animalcnn.evaluation.scoring import score
from animalcnn.figures.charts import confusion_chart, write_png
from animalcnn.figures.gallery import Caption, write_gallery
from animalcnn.run_folder import (
    CONFUSION_PNG,
    ERRORS_PNG,
    EVALUATION,
    MODEL,
    OTHER_EVALUATIONS,
    TEST_FILES,
    Evaluation,
    RunFolder,
    significant,
)

if TYPE_CHECKING:
    import keras


@dataclass
class Scored:
    """What `evaluate` scored (the record it wrote) and the files it wrote."""

    evaluation: Evaluation
    written: list[Path]


def warn_unfinished(run: RunFolder, doing: str) -> str:
    """The run's status, with a warning when it never completed: its best checkpoint so far
    is what gets used."""
    status = run.status()
    if status != "completed":
        print_warning(f"{run.path} is {status}: {doing} its best checkpoint so far")
    return status


def reading_config(cfg: ExperimentConfig) -> DataConfig:
    """How to decode images for a run that may be someone else's: its image size and batch,
    but decoded in memory, so its config decides nothing about where files are written."""
    return cfg.data.model_copy(update={"cache": "memory", "cache_dir": DataConfig().cache_dir})


def held_out(run: RunFolder) -> Split:
    """The test files held out of the training images when the run was trained."""
    root = run.config().data.dir
    record = run.held_out_test()
    if record is None:
        raise RunFolderError(f"{run.file(TEST_FILES)}: missing")
    paths = [root / f for f in record.files]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise RunFolderError(f"{run.file(TEST_FILES)}: {missing[0]} is gone")
    return Split(paths, np.asarray(record.labels, dtype=np.int32))


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


def _gallery(
    model: keras.Model, images: Images, mistakes: list[dict], path: Path, title: str, explain: bool
) -> None:
    """The mistakes gallery: each mistake's image, captioned, its Grad-CAM over it when
    `explain`."""
    tiles = images.batch(np.array([e["index"] for e in mistakes], dtype=np.int64))
    heats = heatmaps(model, tiles.astype(np.float32))[0] if explain and len(tiles) else None
    captions = [
        Caption(e["true"], e["predicted"], e["confidence"], e["true_probability"], e["loss"])
        for e in mistakes
    ]
    write_gallery(tiles, captions, path, title, heats)


def _outputs(run: RunFolder, other: Path | None) -> tuple[Path, Path, Path]:
    """Where an evaluation goes (its JSON, confusion matrix and mistakes gallery): the
    run's own files for its own test split, `evaluations/<name>*` for another folder."""
    if other is None:
        return run.file(EVALUATION), run.file(CONFUSION_PNG), run.file(ERRORS_PNG)
    stem = run.file(OTHER_EVALUATIONS) / other_data_name(other)
    return (
        stem.with_suffix(".json"),
        stem.with_name(f"{stem.name}_confusion.png"),
        stem.with_name(f"{stem.name}_errors.png"),
    )


def evaluate(
    run: RunFolder,
    data: Path | None = None,
    errors: int = DEFAULT_ERRORS,
    explain: bool = False,
    tta: Tta = "none",
) -> Scored:
    """Score the best checkpoint and return the record (and the files written), written
    beside the checkpoint it belongs to: the run's own test split to `evaluation.json`
    (with `confusion.png` and the mistakes gallery `errors.png`), another data folder to
    `evaluations/<name>.json` (and its PNGs), never replacing the run's own result.
    `errors` tiles in the gallery, `explain` draws each one's Grad-CAM over it; `tta`
    averages over views of each image."""
    cfg = run.config()
    metrics = run.metrics()
    status = warn_unfinished(run, "scoring")
    if data is None and run.file(TEST_FILES).exists():
        folder, classes, split = cfg.data.dir, metrics.classes, held_out(run)
        root, shown = folder, f"{folder} (its held-out test files)"
    else:
        folder = test_folder(run, data)
        classes, split = read_split(folder, metrics.classes)
        root, shown = folder.parent, str(folder)
    model = run.best_model()
    with progress_bar(f"decoding {folder}", len(split)) as advance:
        images = decode(split, reading_config(cfg), advance)
    for b in images.bad:
        print_warning(f"skipped {b}")
    probs = probabilities(model, images, cfg.data.batch_size, tta)
    result = score(images.labels, probs, classes)
    paths = [images.paths[r] for r in images.rows]
    mistakes = top_errors(images.labels, probs, classes, paths, root, errors)
    best = metrics.best
    result.update(
        data=shown,
        own_test_split=data is None,
        tta=tta,
        evaluated=datetime.now().isoformat(timespec="seconds"),
        run_status=status,
        checkpoint={
            "epoch": best.epoch if best else None,
            "phase": best.phase if best else None,
            "sha256": file_digest(run.file(MODEL)),
        },
        train_accuracy=best.accuracy if best else None,
        skipped_files=[str(b) for b in images.bad],
        top_errors=[{k: v for k, v in e.items() if k != "index"} for e in mistakes],
        most_confused=most_confused(result["confusion_matrix"], classes),
    )
    json_path, confusion_png, errors_png = _outputs(run, None if data is None else folder)
    record = run.write_evaluation(str(json_path.relative_to(run.path)), significant(result))
    title = f"{run.name} on {folder.name}"
    write_png(confusion_chart(record.classes, record.confusion_matrix, title), confusion_png)
    _gallery(model, images, mistakes, errors_png, f"{title}: most confident mistakes", explain)
    return Scored(record, [json_path, confusion_png, errors_png])
