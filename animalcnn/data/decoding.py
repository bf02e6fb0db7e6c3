"""Decoding images once, to uint8 RGB at the training size, before training starts.

A broken file is found before the first epoch, never in the middle of one. The
decoded split lives in RAM (one array that TensorFlow reads in place), in a
reusable memory-mapped file (`cache`), or nowhere (`data.cache: none`: checked
once, decoded again each epoch).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

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


# The largest image decoded, in pixels, and in bytes as PIL holds it decoded (its bit depth
# and channels: 1 byte a pixel for gray, 2 for 16-bit gray, 4 for colour, CMYK, 32-bit).
# PIL's own decompression-bomb limit is set to the first; an image above either is refused
# from its header, before decoding.
MAX_PIXELS = 50_000_000
MAX_DECODED_BYTES = 200_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)  # checked below
# Decoding threads at most: each holds one full-size image, so peak memory is bounded
# by this, not by the number of cores.
MAX_DECODE_THREADS = 8


class ImageTooLarge(ValueError):
    """An image whose header promises more pixels than MAX_PIXELS."""


def decoded_bytes(img: Image.Image) -> int:
    """What decoding `img` takes in memory, from its header: pixels times bytes a pixel."""
    return img.width * img.height * _BYTES_PER_PIXEL.get(img.mode, 4)


def load_image(source: Path | BinaryIO, size: int) -> np.ndarray:
    """One image (a file, or an open binary stream such as an upload) as uint8 RGB
    (size, size, 3): EXIF orientation applied; gray, palette, CMYK, alpha (on white)
    and 16-bit images converted; an animation's first frame."""
    with Image.open(source) as img:
        pixels = img.width * img.height
        if pixels > Image.MAX_IMAGE_PIXELS:
            raise ImageTooLarge(
                f"too large: {img.width}x{img.height} pixels (limit {Image.MAX_IMAGE_PIXELS:,})"
            )
        if img.format == "JPEG":  # decode at the smallest scale still >= size: faster
            img.draft("RGB", (size, size))
        if decoded_bytes(img) > MAX_DECODED_BYTES:
            raise ImageTooLarge(
                f"too large: {img.width}x{img.height} {img.mode} pixels take "
                f"{decoded_bytes(img):,} bytes decoded (limit {MAX_DECODED_BYTES:,})"
            )
        img.seek(0)
        img.load()
        img = ImageOps.exif_transpose(img)
        return resized_rgb(img, size)


def resized_rgb(img: Image.Image, size: int) -> np.ndarray:
    """`img` as uint8 RGB (size, size, 3): wide gray scaled to 8 bits, alpha on white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit (or wider) gray: scale to 8 bits, not clip (which turns it white); resized
        # first, so a large image never exists as floats
        if img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BILINEAR)
        values = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or values.max() > 255 else 255.0
        img = Image.fromarray(np.clip(values * (255.0 / top), 0, 255).round().astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.new("RGB", rgba.size, (255, 255, 255))
        img.paste(rgba, mask=rgba.getchannel("A"))
    else:
        img = img.convert("RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def try_load(source: Path | BinaryIO, size: int) -> np.ndarray | str:
    """The image (from a file or an open binary stream), or the reason it cannot be
    decoded; never an exception, whatever the bytes."""
    try:
        if isinstance(source, Path):
            empty = source.stat().st_size == 0
        else:
            empty = source.seek(0, os.SEEK_END) == 0
            source.seek(0)
        if empty:
            return "empty file"
        return load_image(source, size)
    except UnidentifiedImageError:
        return "not an image (cannot identify the format)"
    except ImageTooLarge as exc:
        return str(exc)
    except Image.DecompressionBombError as exc:  # far past the limit: PIL refuses at open
        return f"too large: {str(exc).splitlines()[0]}"
    except Exception as exc:  # a damaged file can make any decoder raise anything
        return f"cannot decode: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"


Progress = Callable[[int], None]


def _decode_into(
    out: np.ndarray | None, paths: list[Path], size: int, progress: Progress | None
) -> list[tuple[int, str]]:
    """Decode `paths` into `out` (or only check them) in parallel; returns the failures.

    Threads suffice: PIL releases the GIL while decoding and resizing.
    """
    failures = []
    workers = min(MAX_DECODE_THREADS, (os.cpu_count() or 1) + 2)
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
