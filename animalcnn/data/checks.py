"""`animalcnn data check`: what is in a dataset folder, and every file that is wrong.

Per split and class: image counts, formats, size range. Problems: files that do
not decode (errors: they would be left out of, or with `data.on_bad_file: fail`
stop, training), files that are not images, content that does not match the
extension, and the same image in the training and the test split (warnings).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from animalcnn.data.decoding import try_load
from animalcnn.data.discovery import class_names
from animalcnn.data.files import IMAGE_FORMATS, is_hidden, is_image, links_back, walk_files
from animalcnn.errors import DataError


@dataclass
class Problem:
    path: Path
    message: str
    error: bool  # True: the file cannot be used for training

    def __str__(self) -> str:
        return f"{'error' if self.error else 'warning'}: {self.path}: {self.message}"


@dataclass
class ClassStats:
    split: str
    name: str
    images: int = 0
    formats: Counter = field(default_factory=Counter)
    min_size: tuple[int, int] | None = None
    max_size: tuple[int, int] | None = None


@dataclass
class Report:
    classes: list[ClassStats]
    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.error]


@dataclass
class _FileInfo:
    path: Path
    format: str | None = None
    size: tuple[int, int] | None = None
    digest: str = ""
    problem: Problem | None = None


def _inspect(path: Path) -> _FileInfo:
    info = _FileInfo(path)
    if not is_image(path):
        info.problem = Problem(path, "not an image file (ignored by training)", error=False)
        return info
    try:
        info.digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:  # a dangling link, a link loop, no permission
        info.problem = Problem(path, f"cannot read: {exc.strerror or exc}", error=True)
        return info
    result = try_load(path, 8)
    if isinstance(result, str):
        info.problem = Problem(path, result, error=True)
        return info
    with Image.open(path) as img:
        info.format, info.size = img.format, img.size
    expected = IMAGE_FORMATS[path.suffix.lower()]
    if info.format != expected:
        info.problem = Problem(
            path, f"{info.format} data with a {path.suffix} extension", error=False
        )
    return info


TOP = "(top level)"  # the split name of class folders at the top of the dataset


def _splits(root: Path) -> list[tuple[str, list[str] | None]]:
    """The labelled splits (folders of class folders) and unlabeled ones (files only); class
    folders at the top are one labelled split, TOP."""
    splits: list[tuple[str, list[str] | None]] = []
    subs = sorted(
        p for p in root.iterdir() if p.is_dir() and not is_hidden(p) and not links_back(p, root)
    )
    for sub in subs:
        has_dirs = any(p.is_dir() and not is_hidden(p) for p in sub.iterdir())
        splits.append((sub.name, class_names(sub) if has_dirs else None))
    if len(subs) >= 2 and all(classes is None for _, classes in splits):
        return [(TOP, class_names(root))]
    if not splits:
        raise DataError(f"{root}: no split folders (expected train/ and val/)")
    return splits


def _links_back(root: Path) -> list[Path]:
    """Links to folders in the dataset or above it, in the root and in its split folders."""
    found = [p for p in sorted(root.iterdir()) if links_back(p, root)]
    for sub in sorted(root.iterdir()):
        if sub.is_dir() and not links_back(sub, root):
            found += [p for p in sorted(sub.iterdir()) if links_back(p, root)]
    return found


def check(root: Path, train_split: str = "train") -> Report:
    if not root.is_dir():
        raise DataError(f"{root}: folder not found")
    jobs: list[tuple[ClassStats, Path]] = []
    stats: list[ClassStats] = []
    problems = [
        Problem(link, "a link back into the dataset (not followed)", error=False)
        for link in _links_back(root)
    ]
    for split, classes in _splits(root):
        top = root if split == TOP else root / split
        for name in classes or ["(unlabeled)"]:
            folder = top / name if classes else top
            files = list(walk_files(folder, recursive=classes is not None))
            s = ClassStats(split, name)
            stats.append(s)
            jobs += [(s, f) for f in files]
    with ThreadPoolExecutor(min(32, (os.cpu_count() or 1) + 2)) as pool:
        infos = list(pool.map(lambda job: _inspect(job[1]), jobs))
    by_digest: dict[str, list[tuple[str, Path]]] = {}
    for (s, _), info in zip(jobs, infos, strict=True):
        if info.problem is not None:
            problems.append(info.problem)
        if info.size is None:
            continue
        s.images += 1
        s.formats[info.format] += 1
        s.min_size = min(s.min_size or info.size, info.size, key=lambda wh: wh[0] * wh[1])
        s.max_size = max(s.max_size or info.size, info.size, key=lambda wh: wh[0] * wh[1])
        by_digest.setdefault(info.digest, []).append((s.split, info.path))
    for s in stats:
        if s.images == 0 and s.name != "(unlabeled)":
            where = root if s.split == TOP else root / s.split
            problems.append(Problem(where / s.name, "no readable images", error=True))
    for copies in by_digest.values():
        splits = {split for split, _ in copies}
        if len(splits) > 1 and train_split in splits:
            others = ", ".join(str(p) for _, p in copies[1:])
            problems.append(
                Problem(
                    copies[0][1],
                    f"the same image is in the {' and the '.join(sorted(splits))} "
                    f"splits (a test image the model trained on); copies: {others}",
                    False,
                )
            )
    return Report(stats, problems)
