"""Dataset layouts: class folders at the top, or a training split alone, get a held-out
test split that the run records and `evaluate` scores exactly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .conftest import write_config


@pytest.fixture
def flat(dataset: Path, tmp_path: Path) -> Path:
    """The shared dataset's training images as class folders at the top."""
    return Path(shutil.copytree(dataset / "train", tmp_path / "flat"))


@pytest.fixture
def train_only(dataset: Path, tmp_path: Path) -> Path:
    root = tmp_path / "train-only"
    shutil.copytree(dataset / "train", root / "train")
    return root


def test_data_check_recognises_the_layout(cli, flat: Path, train_only: Path, dataset: Path):
    code, out, err = cli("data", "check", flat)
    assert code == 0, err
    assert "layout: class folders at the top: the training images; a test split of 15%" in out
    assert "(top level)" in out and "(unlabeled)" not in out
    code, out, _ = cli("data", "check", train_only)
    assert code == 0 and "layout: train/ alone: a test split of 15% is held out" in out
    code, out, _ = cli("data", "check", dataset)
    assert code == 0 and "layout: split folders: train/ to train, val/ to test" in out


@pytest.mark.parametrize("layout", ["flat", "train_only"])
def test_held_out_test_files_are_recorded_never_trained_on_and_scored(
    cli, request, tmp_path: Path, layout: str
):
    from animalcnn.data.discovery import discover
    from animalcnn.models.configs import load_config

    root = request.getfixturevalue(layout)
    config = write_config(
        tmp_path / "held.yaml",
        root,
        tmp_path / "runs",
        training={"epochs": 1},
        data={"test_fraction": 0.25},
    )
    code, _, err = cli("train", config)
    assert code == 0, err
    (run,) = (tmp_path / "runs").iterdir()
    record = json.loads((run / "test_files.json").read_text())
    assert len(record["files"]) == 5 * 4  # 25 % of each class's 16
    cfg = load_config(config)
    ds = discover(cfg.data, cfg.seed)
    trained = {str(p.relative_to(root)) for p in ds.train.paths + ds.val.paths}
    assert not trained & set(record["files"])
    assert len(trained) + len(record["files"]) == 80
    code, out, err = cli("evaluate", run)
    assert code == 0, err
    ev = json.loads((run / "evaluation.json").read_text())
    assert ev["images"] == 20 and ev["data"] == f"{root} (its held-out test files)"
    for e in ev["top_errors"]:
        assert e["file"] in record["files"]
    (run / "test_files.json").write_text(json.dumps({**record, "labels": record["labels"][1:]}))
    code, _, err = cli("evaluate", run)
    assert code != 0 and f"{run / 'test_files.json'}: damaged" in err.strip()
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_class_too_small_to_split_is_named(flat: Path):
    from animalcnn.config import DataConfig
    from animalcnn.data.discovery import discover

    for extra in sorted((flat / "cross").iterdir())[1:]:
        extra.unlink()  # one image left: none for validation or test
    dataset = discover(DataConfig(dir=flat), seed=7)
    assert dataset.notes == [
        f"{flat}: class(es) cross have too few images to give any to the validation split: "
        "their validation scores will be missing",
        f"{flat}: class(es) cross have too few images to give any to the test split: "
        "their test scores will be missing",
    ]
