"""Finding a dataset's splits and classes, and holding out the validation set.

Layouts: `<dir>/<train_split>/<class>/*` with `<dir>/<test_split>/<class>/*` (the
notebook's), `<dir>/<train_split>/` alone, or `<dir>/<class>/*` (class folders at
the top, as `image_dataset_from_directory` reads them). Without a test split, one is
held out of the training images (`data.test_fraction`, seeded, stratified), and the
run folder records exactly which files (`test_files.json`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from animalcnn.config import DataConfig
from animalcnn.data.files import is_hidden, links_back, list_images
from animalcnn.errors import DataError


@dataclass
class Split:
    """Image files with their integer labels (indices into the class list)."""

    paths: list[Path]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)

    def select(self, keep: np.ndarray) -> Split:
        return Split([p for p, k in zip(self.paths, keep, strict=True) if k], self.labels[keep])


def class_names(split_dir: Path) -> list[str]:
    """Sorted class folder names of a split; one-line errors when there are none. A link
    back into the dataset is not a class (`data check` reports it)."""
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: folder not found (expected one folder per class)")
    names = sorted(
        p.name
        for p in split_dir.iterdir()
        if p.is_dir() and not is_hidden(p) and not links_back(p, split_dir.parent)
    )
    if not names:
        raise DataError(f"{split_dir}: no class folders in it")
    return names


def read_split(split_dir: Path, classes: list[str] | None = None) -> tuple[list[str], Split]:
    """The labelled images of one split; `classes` (if given) must match its folders."""
    found = class_names(split_dir)
    if classes is not None and found != classes:
        missing = sorted(set(classes) - set(found))
        extra = sorted(set(found) - set(classes))
        parts = [f"missing {missing}" if missing else "", f"extra {extra}" if extra else ""]
        raise DataError(
            f"{split_dir}: classes differ from the training split: "
            + ", ".join(p for p in parts if p)
        )
    paths: list[Path] = []
    labels: list[int] = []
    for i, name in enumerate(found):
        files = list_images(split_dir / name)
        if not files:
            raise DataError(f"{split_dir / name}: class {name!r} has no images")
        paths += files
        labels += [i] * len(files)
    return found, Split(paths, np.asarray(labels, dtype=np.int32))


def train_val_split(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Stratified, seeded hold-out: each class gives `fraction` of its images to validation."""
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(split), dtype=bool)
    for label in np.unique(split.labels):
        idx = np.flatnonzero(split.labels == label)
        n_val = min(len(idx) - 1, max(1, round(len(idx) * fraction)))
        is_val[rng.permutation(idx)[:n_val]] = True
    return split.select(~is_val), split.select(is_val)


@dataclass
class Dataset:
    """A dataset folder split three ways, with its class names."""

    classes: list[str]
    train: Split
    val: Split
    test: Split
    held_out: bool  # the test split was held out of the training images
    notes: list[str] = field(default_factory=list)  # what a user should know of the split


# The test hold-out draws from its own seed, apart from the validation hold-out's.
HELD_OUT_SEED = 0x7E57


def training_folder(cfg: DataConfig) -> Path:
    """Where the labelled training images are: `<dir>/<train_split>`, or `<dir>` itself
    when it holds the class folders directly."""
    split = cfg.dir / cfg.train_split
    return split if split.is_dir() else cfg.dir


def layout(cfg: DataConfig) -> str:
    """What `discover` finds in `data.dir`, in words."""
    folder = training_folder(cfg)
    if folder == cfg.dir:
        return (
            f"class folders at the top: the training images; a test split of "
            f"{cfg.test_fraction:.0%} is held out"
        )
    if (cfg.dir / cfg.test_split).is_dir():
        return f"split folders: {cfg.train_split}/ to train, {cfg.test_split}/ to test"
    return f"{cfg.train_split}/ alone: a test split of {cfg.test_fraction:.0%} is held out of it"


def check_data_dir(cfg: DataConfig, path: Path) -> None:
    """A missing data folder, said before any backend is imported, with the ways on
    (`path`: the config or sweep file that names it)."""
    if not cfg.dir.is_dir():
        raise DataError(
            f"{path}: data.dir: {cfg.dir}: folder not found; get the course's dataset "
            "with `animalcnn data download`, or name yours with --set data.dir=DIR"
        )


def discover(cfg: DataConfig, seed: int) -> Dataset:
    """Find the splits of `cfg.dir`: training, validation (held out of training) and
    test (its own folder, or held out of training when there is none)."""
    root = cfg.dir
    if not root.is_dir():
        raise DataError(f"data.dir: {root}: folder not found")
    folder = training_folder(cfg)
    classes, full = read_split(folder)
    if len(classes) < 2:
        raise DataError(
            f"{folder}: one class ({classes[0]!r}); a classifier needs two or more class folders"
        )
    test_dir = root / cfg.test_split
    held_out = folder == root or not test_dir.is_dir()
    if held_out:
        full, test = train_val_split(full, cfg.test_fraction, seed + HELD_OUT_SEED)
    else:
        _, test = read_split(test_dir, classes)
    train, val = train_val_split(full, cfg.val_fraction, seed)
    if len(val) == 0 or len(full) < 2:
        raise DataError(f"{folder}: too few images to hold out a validation set")
    notes = []
    for what, split in (("validation", val), *((("test", test),) if held_out else ())):
        missing = [c for i, c in enumerate(classes) if not (split.labels == i).any()]
        if missing:
            notes.append(
                f"{folder}: class(es) {', '.join(missing)} have too few images to give "
                f"any to the {what} split: their {what} scores will be missing"
            )
    return Dataset(classes, train, val, test, held_out, notes)


def class_count(cfg: DataConfig, default: int) -> int:
    """The number of class folders in the training split, or `default` without a dataset."""
    try:
        return len(class_names(training_folder(cfg)))
    except DataError:
        return default
