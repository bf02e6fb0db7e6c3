"""Decoding images once, to uint8 RGB at the training size, before training starts.

A broken file is found before the first epoch, never in the middle of one. The
decoded split lives in RAM (one array that TensorFlow reads in place), in a
reusable memory-mapped file (`cache`), or nowhere (`data.cache: none`: checked
once, decoded again each epoch).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from animalcnn.config import DataConfig
from animalcnn.data import cache
from animalcnn.data.discovery import Split

# TensorFlow uses host memory in place only at this alignment (Eigen's); else it copies.
TENSOR_ALIGNMENT = 64


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


def decode(split: Split, cfg: DataConfig, progress: Progress | None = None) -> Images:
    """Decode a split once: to RAM, to a reusable memory-mapped file (data.cache: disk), or
    (data.cache: none) only to check every file before training.

    Files that fail are left out of the rows and listed in `Images.bad`.
    """
    n, size = len(split), cfg.img_size
    array: np.ndarray | None
    if cfg.cache == "disk":

        def build(out: np.ndarray) -> list[tuple[int, str]]:
            return _decode_into(out, split.paths, size, progress)

        array, failures, reused = cache.load_or_build(split.paths, size, cfg.cache_dir, build)
        if reused and progress is not None:
            progress(n)
    else:
        array = aligned_zeros((n, size, size, 3)) if cfg.cache == "memory" else None
        failures = _decode_into(array, split.paths, size, progress)
    keep = np.ones(n, dtype=bool)
    keep[[i for i, _ in failures]] = False
    bad = [BadFile(split.paths[i], reason) for i, reason in failures]
    return Images(array, np.flatnonzero(keep), split.labels[keep], split.paths, size, bad)
