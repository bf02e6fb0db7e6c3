"""The images a run trains on: found, split, decoded and checked before the first epoch,
so that a broken file stops a run before its run folder exists."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from animalcnn.config import ExperimentConfig
from animalcnn.console import print_warning, progress_bar
from animalcnn.data.decoding import Images, decode
from animalcnn.data.discovery import Dataset, discover
from animalcnn.errors import DataError


@dataclass
class TrainingData:
    dataset: Dataset
    train: Images
    val: Images


def load_training_data(cfg: ExperimentConfig) -> TrainingData:
    """Find, split and decode the training and validation images, checking every file."""
    dataset = discover(cfg.data, cfg.seed)
    for note in dataset.notes:
        print_warning(note)
    decoded = []
    for label, split in (("train", dataset.train), ("validation", dataset.val)):
        with progress_bar(f"decoding {label} images", len(split)) as advance:
            decoded.append(decode(split, cfg.data, advance))
    train, val = decoded
    bad = train.bad + val.bad
    if bad and cfg.data.on_bad_file == "fail":
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise DataError(f"{bad[0]}{more}; data.on_bad_file: skip leaves such files out")
    for b in bad:
        print_warning(f"skipped {b}")
    present = set(np.unique(train.labels))
    empty = [c for i, c in enumerate(dataset.classes) if i not in present]
    if empty:
        raise DataError(f"{cfg.data.dir}: no readable training images for class(es) {empty}")
    return TrainingData(dataset, train, val)
