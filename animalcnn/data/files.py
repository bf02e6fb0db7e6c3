"""Which files a dataset folder holds: the one list of image suffixes and the one walker."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

# Image suffixes training reads, and the format (as PIL names it) each one promises.
IMAGE_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".bmp": "BMP",
    ".gif": "GIF",
    ".webp": "WEBP",
}
IMAGE_SUFFIXES = frozenset(IMAGE_FORMATS)


def is_hidden(path: Path) -> bool:
    return path.name.startswith(".")


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def links_back(path: Path, root: Path) -> bool:
    """Whether `path` is a link to a folder that holds `root` or lies inside it: following
    it would read the dataset again (as a duplicate class, or forever)."""
    if not path.is_symlink():
        return False
    target, top = path.resolve(), root.resolve()
    return target == top or top.is_relative_to(target) or target.is_relative_to(top)


def walk_files(folder: Path, recursive: bool = True) -> Iterator[Path]:
    """Every file below `folder` in sorted order, hidden files and folders left out."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        yield from (Path(root) / f for f in sorted(files) if not f.startswith("."))


def list_images(folder: Path) -> list[Path]:
    """Image files below `folder` (recursively), sorted."""
    return sorted(p for p in walk_files(folder) if is_image(p))


def file_digest(path: Path) -> str:
    """SHA-256 of a file, read in chunks (a checkpoint or a cache can be large)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()
