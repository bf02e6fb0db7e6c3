"""Scraped-data checks, broken files during training, and runs that fail."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from .conftest import write_config


@pytest.fixture
def broken(dataset: Path, tmp_path: Path) -> Path:
    """The shared dataset with the faults scraped folders have planted in it."""
    root = Path(shutil.copytree(dataset, tmp_path / "broken"))
    (root / "train/cross/page.jpg").write_text("<html><body>404</body></html>")
    (root / "train/circle/empty.png").write_bytes(b"")
    good = next((root / "train/circle").glob("*.jpg"))
    (root / "train/stripes/cut.jpg").write_bytes(good.read_bytes()[:150])
    (root / "train/circle/notes.txt").write_text("not an image")
    (root / "train/square/.DS_Store").write_bytes(b"\0")
    (root / "train/.ipynb_checkpoints").mkdir()
    png = next((root / "train/square").glob("*.png"))
    shutil.copy(png, root / "train/square/renamed.jpg")
    shutil.copy(png, root / "val/square/leaked.png")
    return root


def test_data_check_lists_every_problem(cli, broken: Path):
    code, out, err = cli("data", "check", broken)
    assert code == 1
    lines = err.strip().splitlines()
    assert (
        f"error: {broken}/train/cross/page.jpg: not an image (cannot identify the format)" in lines
    )
    assert f"error: {broken}/train/circle/empty.png: empty file" in lines
    assert any(
        line.startswith(f"error: {broken}/train/stripes/cut.jpg: cannot decode") for line in lines
    )
    assert (
        f"warning: {broken}/train/circle/notes.txt: not an image file (ignored by training)"
        in lines
    )
    assert f"warning: {broken}/train/square/renamed.jpg: PNG data with a .jpg extension" in lines
    assert any(
        "the same image is in the train and the val splits" in line and "leaked.png" in line
        for line in lines
    )
    assert len(lines) == 6  # hidden files and folders are not reported
    assert "3 errors and 3 warnings." in out
    assert "(unlabeled)" in out and "│ train │ circle" in out


def test_data_check_of_a_clean_folder_passes(cli, dataset: Path):
    code, out, err = cli("data", "check", dataset)
    assert code == 0 and err == "" and "No errors and no warnings. The dataset can be" in out


def test_training_leaves_broken_files_out_and_names_them(cli, broken: Path, tmp_path: Path):
    config = write_config(tmp_path / "b.yaml", broken, tmp_path / "runs", training={"epochs": 1})
    code, _, err = cli("train", config)
    assert code == 0, err
    for name in ("page.jpg", "empty.png", "cut.jpg"):
        assert f"warning: skipped {broken}" in err and name in err
    (run,) = (tmp_path / "runs").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert len(metrics["skipped_files"]) == 3
    assert metrics["images"]["train"] + metrics["images"]["val"] == 80 + 1  # + renamed.jpg


def test_strict_training_stops_before_any_run_folder(cli, broken: Path, tmp_path: Path):
    config = write_config(tmp_path / "s.yaml", broken, tmp_path / "runs")
    code, _, err = cli("train", config, "--set", "data.on_bad_file=fail")
    assert code == 2
    assert err.startswith(f"error: {broken}/train/")
    assert "(and 2 more); data.on_bad_file: skip leaves such files out" in err
    assert not (tmp_path / "runs").exists()


def test_nan_loss_fails_the_run(cli, dataset: Path, tmp_path: Path):
    config = write_config(
        tmp_path / "nan.yaml",
        dataset,
        tmp_path / "runs",
        training={"epochs": 3, "learning_rate": 1.0e12},
    )
    code, _, err = cli("train", config)
    assert code == 1 and "loss became NaN or infinite at epoch 1" in err
    (run,) = (tmp_path / "runs").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "NaN" in metrics["reason"]
    code, out, _ = cli("compare", run)
    assert code == 0 and "failed" in out


def test_compare_survives_half_written_folders(cli, trained_run: Path, tmp_path: Path):
    broken_json = Path(shutil.copytree(trained_run, tmp_path / "broken-json"))
    (broken_json / "metrics.json").write_text('{"status": "runn')
    only_config = tmp_path / "only-config"
    only_config.mkdir()
    (only_config / "config.yaml").write_text("name: x\n")
    csv = tmp_path / "c.csv"
    code, _, err = cli("compare", trained_run, broken_json, only_config, "--csv", csv)
    assert code == 0, err
    status = pd.read_csv(csv).set_index("run")["status"]
    assert status[trained_run.name] == "completed"
    assert status["broken-json"] == "damaged: unreadable (JSONDecodeError)"
    assert status["only-config"].startswith("damaged: not a run folder")
