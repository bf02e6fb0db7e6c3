"""Fetching a dataset from Kaggle with `kagglehub` (credentials are kagglehub's business:
its environment variables or ~/.kaggle/kaggle.json)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from animalcnn.data.files import is_hidden
from animalcnn.errors import DataError

DEFAULT_DATASET = "antobenedetti/animals"  # the course's dataset
DEFAULT_TO = Path("data/animals")  # the configs' default data.dir
HANDLE = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*(/versions/\d+)?")  # Kaggle's


def _reason(exc: Exception) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if "Name or service not known" in text or "ConnectionError" in text or "resolve" in text:
        return "Kaggle cannot be reached (no network?)"
    if any(code in text for code in ("401", "403", "Unauthorized", "credentials")):
        return (
            "Kaggle refused the request: no or wrong credentials (KAGGLE_USERNAME and "
            "KAGGLE_KEY, or ~/.kaggle/kaggle.json)"
        )
    if "404" in text:
        return "no such dataset on Kaggle"
    return text.splitlines()[0][:200]


def _content_root(folder: Path) -> Path:
    """The dataset inside a download: archives often wrap it in one more folder."""
    while True:
        entries = [p for p in folder.iterdir() if not is_hidden(p)]
        if len(entries) == 1 and entries[0].is_dir():
            folder = entries[0]
        else:
            return folder


def download(dataset: str = DEFAULT_DATASET, to: Path = DEFAULT_TO) -> Path:
    """Download `dataset` (owner/name) and copy it into `to`; returns `to`."""
    if not HANDLE.fullmatch(dataset):  # a folder given where the handle goes, say
        raise DataError(
            f"{dataset}: not a Kaggle dataset (owner/name, as {DEFAULT_DATASET}); "
            "the folder it goes to is --to DIR"
        )
    to = to.expanduser()
    if to.exists() and any(to.iterdir()):
        raise DataError(f"{to}: already holds files; choose another folder with --to")
    try:
        import kagglehub
    except ImportError:
        raise DataError("kagglehub is not installed: pip install kagglehub") from None
    try:
        cached = Path(kagglehub.dataset_download(dataset))
    except Exception as exc:  # network, credentials, a wrong name: all come as exceptions
        raise DataError(
            f"{dataset}: could not download ({_reason(exc)}); download it by hand from "
            f"https://www.kaggle.com/datasets/{dataset} and unzip it into {to}"
        ) from None
    shutil.copytree(_content_root(cached), to, dirs_exist_ok=True)
    return to
