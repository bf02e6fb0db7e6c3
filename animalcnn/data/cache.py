"""The disk cache of decoded images (`data.cache: disk`): one memory-mapped uint8 file per
set of files and image size, reused by later runs on the same files.

Runs sharing the cache at once (in parallel, or the workers of one cluster) each
decode into their own temporary file; the metadata (size and checksum) lands
before the array, and the array's rename is atomic. A reader checks both before
use: a damaged cache is decoded again, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from animalcnn.atomic import atomic_path, atomic_write
from animalcnn.console import print_warning
from animalcnn.data.files import file_digest

Failures = list[tuple[int, str]]


# Bumped when decoding changes what a file decodes to, so older caches are not reused.
DECODER_VERSION = 2


def cache_key(paths: list[Path], size: int) -> str:
    """Names the files (by path, size and modification time), the image size and the
    decoder's version."""
    h = hashlib.sha256(f"{DECODER_VERSION}|{size}".encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def load_or_build(
    paths: list[Path], size: int, cache_dir: Path, build: Callable[[np.ndarray], Failures]
) -> tuple[np.ndarray, Failures, bool]:
    """The cached array and decoding failures, `build`ing them into a new file when absent;
    the flag says whether an existing cache was reused."""
    base = cache_dir.expanduser() / cache_key(paths, size)
    npy, meta = base.with_suffix(".npy"), base.with_suffix(".json")
    shape = (len(paths), size, size, 3)
    if npy.exists() and meta.exists():
        problem, failures = _check(npy, meta, shape)
        if problem is None:
            return np.load(npy, mmap_mode="r"), failures, True
        print_warning(f"{npy}: {problem}; decoding the images again")
        npy.unlink(missing_ok=True)
    with atomic_path(npy, suffix=".tmp.npy") as tmp:
        out = np.lib.format.open_memmap(tmp, "w+", np.uint8, shape)
        _reserve(tmp)  # a full disk fails here, not as a SIGBUS while writing the map
        failures = build(out)
        out.flush()
        del out
        record = {"failures": failures, "bytes": tmp.stat().st_size, "sha256": file_digest(tmp)}
        atomic_write(meta, json.dumps(record))  # before the array
    return np.load(npy, mmap_mode="r"), failures, False


def _reserve(path: Path) -> None:
    """Allocate the whole (sparse) file now, so that running out of space is an error."""
    with path.open("r+b") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, path.stat().st_size)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(path)) from None


def _check(npy: Path, meta: Path, shape: tuple[int, ...]) -> tuple[str | None, Failures]:
    """What is wrong with a cache file (None: nothing), and its recorded failures."""
    try:
        record = json.loads(meta.read_text())
        failures = [(int(i), str(r)) for i, r in record["failures"]]
        if npy.stat().st_size != record["bytes"]:
            return f"damaged (size {npy.stat().st_size:,}, expected {record['bytes']:,})", []
        if file_digest(npy) != record["sha256"]:
            return "damaged (checksum mismatch)", []
        if np.load(npy, mmap_mode="r").shape != shape:
            return "damaged (wrong shape)", []
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"damaged ({type(exc).__name__})", []
    return None, failures
