"""Finding, splitting and decoding the images of a dataset folder (no TensorFlow).

Layout: `<dir>/<train_split>/<class>/*` and `<dir>/<test_split>/<class>/*`.
Every image is decoded and resized once, to uint8 RGB, before training starts,
so a broken file is found before the first epoch, never in the middle of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from animalcnn.config import DataConfig
from animalcnn.errors import DataError
from animalcnn.runs import atomic_write

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}
# TensorFlow uses host memory in place only at this alignment (Eigen's); else it copies.
TENSOR_ALIGNMENT = 64


@dataclass
class Split:
    """Image files with their integer labels (indices into the class list)."""

    paths: list[Path]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)

    def select(self, keep: np.ndarray) -> Split:
        return Split([p for p, k in zip(self.paths, keep, strict=True) if k], self.labels[keep])


@dataclass
class BadFile:
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class Images:
    """A decoded split: rows `rows` of a uint8 (n, size, size, 3) array, in RAM or on disk.

    With `data.cache: none` there is no array and `batch` decodes the files each time.
    """

    array: np.ndarray | None
    rows: np.ndarray
    labels: np.ndarray
    paths: list[Path]
    size: int
    bad: list[BadFile] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, idx: np.ndarray) -> np.ndarray:
        """Images `idx` (positions among the good rows) as one uint8 batch."""
        rows = self.rows[idx]
        if self.array is not None:
            order = np.argsort(rows)  # sorted reads are sequential on a memory-mapped file
            out = np.empty((len(rows), *self.array.shape[1:]), np.uint8)
            out[order] = self.array[rows[order]]
            return out
        return np.stack([load_image(self.paths[r], self.size) for r in rows])


def is_hidden(path: Path) -> bool:
    return path.name.startswith(".")


def class_names(split_dir: Path) -> list[str]:
    """Sorted class folder names of a split; one-line errors when there are none."""
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: folder not found (expected one folder per class)")
    names = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not is_hidden(p))
    if not names:
        raise DataError(f"{split_dir}: no class folders in it")
    return names


def list_images(folder: Path) -> list[Path]:
    """Image files below `folder` (recursively), sorted, hidden files and folders left out."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [
            Path(root) / f
            for f in files
            if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES
        ]
    return sorted(found)


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
    test: Split | None


def discover(cfg: DataConfig, seed: int, need_test: bool = False) -> Dataset:
    """Find the splits of `cfg.dir`; the test split is optional unless `need_test`."""
    root = cfg.dir
    if not root.is_dir():
        raise DataError(f"data.dir: {root}: folder not found")
    classes, full = read_split(root / cfg.train_split)
    train, val = train_val_split(full, cfg.val_fraction, seed)
    if len(val) == 0:
        raise DataError(f"{root / cfg.train_split}: too few images to hold out a validation set")
    test_dir = root / cfg.test_split
    test = None
    if need_test or test_dir.exists():
        _, test = read_split(test_dir, classes)
    return Dataset(classes, train, val, test)


def load_image(path: Path, size: int) -> np.ndarray:
    """One image as uint8 RGB (size, size, 3); gray, palette and alpha images included."""
    with Image.open(path) as img:
        img.load()
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            img = Image.new("RGB", rgba.size, (255, 255, 255))
            img.paste(rgba, mask=rgba.getchannel("A"))
        else:
            img = img.convert("RGB")
        if img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(img, dtype=np.uint8)


def try_load(path: Path, size: int) -> np.ndarray | str:
    """The image, or the reason it cannot be decoded."""
    try:
        if path.stat().st_size == 0:
            return "empty file"
        return load_image(path, size)
    except UnidentifiedImageError:
        return "not an image (cannot identify the format)"
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return f"cannot decode: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"


Progress = Callable[[int], None]


def _decode_into(
    out: np.ndarray | None, paths: list[Path], size: int, progress: Progress | None
) -> list[tuple[int, str]]:
    """Decode `paths` into `out` (or only check them) in parallel; returns the failures.

    Threads suffice: PIL releases the GIL while decoding and resizing.
    """
    failures = []
    workers = min(32, (os.cpu_count() or 1) + 2)
    with ThreadPoolExecutor(workers) as pool:
        for i, result in enumerate(pool.map(lambda p: try_load(p, size), paths)):
            if isinstance(result, str):
                failures.append((i, result))
            elif out is not None:
                out[i] = result
            if progress is not None:
                progress(1)
    return failures


def aligned_zeros(shape: tuple[int, ...]) -> np.ndarray:
    """A zeroed uint8 array starting on a TENSOR_ALIGNMENT boundary, so the in-memory
    cache can become a tensor without a second copy (see `pipeline`)."""
    n = int(np.prod(shape))
    buffer = np.zeros(n + TENSOR_ALIGNMENT, np.uint8)
    start = -buffer.ctypes.data % TENSOR_ALIGNMENT
    return buffer[start : start + n].reshape(shape)


def _cache_key(paths: Iterable[Path], size: int) -> str:
    h = hashlib.sha256(str(size).encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def decode(split: Split, cfg: DataConfig, progress: Progress | None = None) -> Images:
    """Decode a split once: to RAM, to a reusable memory-mapped file (data.cache: disk), or
    (data.cache: none) only to check every file before training.

    Files that fail are left out of the rows and listed in `Images.bad`.
    """
    n, size = len(split), cfg.img_size
    array: np.ndarray | None
    if cfg.cache == "disk":
        cfg.cache_dir.mkdir(parents=True, exist_ok=True)
        base = cfg.cache_dir / _cache_key(split.paths, size)
        npy, meta = base.with_suffix(".npy"), base.with_suffix(".json")
        if npy.exists() and meta.exists():
            failures = [tuple(f) for f in json.loads(meta.read_text())["failures"]]
            if progress is not None:
                progress(n)
        else:
            # Runs sharing the cache (in parallel, or workers of one cluster) each write
            # their own file; the rename is atomic and the contents are the same.
            fd, tmp = tempfile.mkstemp(prefix=f"{base.name}.", suffix=".tmp.npy", dir=base.parent)
            os.close(fd)
            try:
                out = np.lib.format.open_memmap(tmp, "w+", np.uint8, (n, size, size, 3))
                failures = _decode_into(out, split.paths, size, progress)
                out.flush()
                del out
                atomic_write(meta, json.dumps({"failures": failures}))  # before the array
                os.replace(tmp, npy)
            finally:
                Path(tmp).unlink(missing_ok=True)
        array = np.load(npy, mmap_mode="r")
    else:
        array = aligned_zeros((n, size, size, 3)) if cfg.cache == "memory" else None
        failures = _decode_into(array, split.paths, size, progress)
    keep = np.ones(n, dtype=bool)
    keep[[i for i, _ in failures]] = False
    bad = [BadFile(split.paths[i], reason) for i, reason in failures]
    return Images(array, np.flatnonzero(keep), split.labels[keep], split.paths, size, bad)
