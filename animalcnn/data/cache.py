"""The disk cache of decoded images (`data.cache: disk`): one memory-mapped uint8 file per
set of files and image size, reused by later runs on the same files.

Runs sharing the cache at once (in parallel, or the workers of one cluster) each
decode into their own temporary file; the metadata lands before the array, and
the array's rename is atomic, so a reader finds both whole or neither.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from animalcnn.atomic import atomic_path, atomic_write

Failures = list[tuple[int, str]]


def cache_key(paths: list[Path], size: int) -> str:
    """Names the files (by path, size and modification time) and the image size."""
    h = hashlib.sha256(str(size).encode())
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
    reused = npy.exists() and meta.exists()
    if reused:
        failures = [(int(i), str(r)) for i, r in json.loads(meta.read_text())["failures"]]
    else:
        with atomic_path(npy, suffix=".tmp.npy") as tmp:
            out = np.lib.format.open_memmap(tmp, "w+", np.uint8, (len(paths), size, size, 3))
            failures = build(out)
            out.flush()
            del out
            atomic_write(meta, json.dumps({"failures": failures}))  # before the array
    return np.load(npy, mmap_mode="r"), failures, reused
