"""`animalcnn data download`: kagglehub's download, the layout check, the offline line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def test_a_download_is_copied_and_checked(cli, dataset: Path, tmp_path: Path, monkeypatch):
    import kagglehub

    cache = tmp_path / "kagglehub" / "animals" / "versions" / "1"
    shutil.copytree(dataset, cache / "animals")  # archives wrap the dataset in a folder
    asked = []
    monkeypatch.setattr(kagglehub, "dataset_download", lambda name: asked.append(name) or cache)
    code, out, err = cli("data", "download", "--to", tmp_path / "data")
    assert code == 0, err
    assert asked == ["antobenedetti/animals"]
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["inf", "train", "val"]
    assert "layout: split folders: train/ to train, val/ to test" in out
    assert "No errors and" in out
    code, _, err = cli("data", "download", "--to", tmp_path / "data")
    assert code == 2 and "already holds files" in err


def test_offline_the_download_stops_in_one_line_saying_what_to_do(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "animalcnn", "data", "download", "--to", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "KAGGLEHUB_CACHE": str(tmp_path / "cache"),
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "HTTP_PROXY": "http://127.0.0.1:9",
        },
    )
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert lines[0].startswith("error: antobenedetti/animals: could not download (")
    assert (
        "download it by hand from https://www.kaggle.com/datasets/antobenedetti/animals"
        in (lines[0])
    )
    assert not (tmp_path / "d").exists()


def test_a_folder_given_for_the_dataset_says_where_it_goes(cli, tmp_path: Path):
    code, _, err = cli("data", "download", tmp_path / "animals")
    assert code == 2 and err == (
        f"error: {tmp_path / 'animals'}: not a Kaggle dataset (owner/name, as "
        "antobenedetti/animals); the folder it goes to is --to DIR\n"
    )
    assert not (tmp_path / "animals").exists()
