"""Atomic file writes: every file the project writes appears whole or not at all.

Each writer gets its own temporary file beside the target (so two writers never
share one); the file is flushed to the disk (`fsync`) and then renamed into place,
and the rename itself is flushed, so "whole or not at all" holds through a power
loss too. On any failure the temporary file goes.

A path the user names (`--csv`, `--report`, `--out`) may hold a file of theirs: it is
replaced only when its first bytes carry the mark our writer leaves (a CSV's header,
the report's title, a PNG's `Software` text), else refused in one line.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from animalcnn.errors import UserError

HEAD_BYTES = 4096  # where a mark is looked for
PNG_METADATA = {"Software": "animalcnn"}  # every figure we write carries it ...
PNG_MARK = b"Software\x00animalcnn"  # ... as this text chunk, ahead of the pixels


@contextmanager
def atomic_path(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A fresh temporary path beside `path` to write to; renamed to `path` on success.

    `suffix` is for writers that insist on one (Keras wants `.keras`, numpy `.npy`). The
    file gets the mode the user's umask gives new files (a temporary file is private).
    A `path` that is a folder is refused before anything is written.
    """
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder; name a file", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write `data` (text as UTF-8) to `path` atomically."""
    with atomic_path(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")


def check_replaceable(path: Path, mark: bytes, what: str, option: str = "") -> None:
    """Refuse, in one line, a target that holds something animalcnn did not write: it
    may be new, or a plain file whose first bytes carry `mark` (one of ours, written
    before). Call it before any work, so nothing is half done."""
    if not path.exists() and not path.is_symlink():
        return
    if path.is_file() and not path.is_symlink():
        with path.open("rb") as f:
            if mark in f.read(HEAD_BYTES):
                return
    named = f"{option} {path}" if option else str(path)
    if path.is_dir() and not path.is_symlink():
        raise UserError(f"{named}: is a folder; name a file")
    kind = "a link" if path.is_symlink() else "a file"
    raise UserError(
        f"{named}: {kind} that is not {what} animalcnn wrote; it is left as it "
        "is (name a new path, or remove it yourself)"
    )


def _fsync(path: Path) -> None:
    """Flush a file's (or a folder's entries') data to the disk; where a system cannot
    open a folder for that (Windows), the rename stands as it is."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (IsADirectoryError, PermissionError):
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF):  # a folder that cannot be synced
            raise
    finally:
        os.close(fd)


def _umask() -> int:
    """The process's umask (reading it means setting it; it is put straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
