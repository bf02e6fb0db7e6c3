"""Starting a run from another run's weights (`model.init_from`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import numpy as np

from .conftest import write_config


def _weights(path: Path) -> list[np.ndarray]:
    return keras.saving.load_model(path, compile=False).get_weights()


def test_a_run_begins_where_its_source_ended(cli, trained_run: Path, dataset, tmp_path):
    config = write_config(
        tmp_path / "more.yaml",
        dataset,
        tmp_path / "runs",
        model={"arch": "simple", "params": {"activation": "relu"}, "init_from": str(trained_run)},
        training={"epochs": 1, "learning_rate": 1e-12},  # (next to) no change: the start shows
    )
    code, out, err = cli("train", config)
    assert code == 0, err
    assert f"starting from {trained_run}: 3 layers' weights" in out
    (run,) = (tmp_path / "runs").iterdir()
    for a, b in zip(
        _weights(run / "model.keras"), _weights(trained_run / "model.keras"), strict=True
    ):
        np.testing.assert_allclose(a, b, atol=1e-6)
    metrics = json.loads((run / "metrics.json").read_text())
    from animalcnn.data.files import file_digest

    best = json.loads((trained_run / "metrics.json").read_text())["best"]["epoch"]
    assert metrics["init_from"] == {
        "run": str(trained_run),
        "checkpoint": {
            "epoch": best,
            "sha256": file_digest(trained_run / "model.keras"),
            "run_status": "completed",
        },
        "classes_match": True,
        "layers_copied": 3,
        "layers_fresh": [],
    }


def test_a_classifier_for_other_classes_starts_fresh(cli, trained_run, dataset, tmp_path):
    four = Path(shutil.copytree(dataset, tmp_path / "four"))
    for split in ("train", "val"):
        shutil.rmtree(four / split / "triangle")
    config = write_config(
        tmp_path / "four.yaml",
        four,
        tmp_path / "runs",
        model={"arch": "simple", "params": {"activation": "relu"}, "init_from": str(trained_run)},
        training={"epochs": 1, "learning_rate": 1e-12},
    )
    code, out, err = cli("train", config)
    assert code == 0, err
    assert "2 layers' weights; left fresh: predictions (its classes [" in out
    (run,) = (tmp_path / "runs").iterdir()
    source = keras.saving.load_model(trained_run / "model.keras", compile=False)
    model = keras.saving.load_model(run / "model.keras", compile=False)
    np.testing.assert_allclose(
        model.get_layer("conv1").get_weights()[0],
        source.get_layer("conv1").get_weights()[0],
        atol=1e-6,
    )
    assert model.get_layer("predictions").output.shape[-1] == 4


def test_nothing_in_common_is_one_line_before_any_run_folder(cli, trained_run, dataset, tmp_path):
    config = write_config(
        tmp_path / "mid.yaml",
        dataset,
        tmp_path / "runs",
        model={"arch": "mid", "params": {"filters": [8]}, "init_from": str(trained_run)},
    )
    code, _, err = cli("train", config)
    assert code == 2 and err.strip() == (
        f"error: model.init_from: {trained_run}: none of its layers matches this model's by "
        "name and shape"
    )
    assert not (tmp_path / "runs").exists()
    config = write_config(
        tmp_path / "none.yaml", dataset, tmp_path / "runs", model={"init_from": str(tmp_path)}
    )
    code, _, err = cli("train", config)
    assert code == 2 and f"model.init_from: {tmp_path}: not a run folder" in err


def test_a_classifier_for_as_many_other_classes_starts_fresh(cli, trained_run, dataset, tmp_path):
    renamed = Path(shutil.copytree(dataset, tmp_path / "renamed"))
    for split in ("train", "val"):
        (renamed / split / "circle").rename(renamed / split / "zebra")  # 5 classes, new order
    config = write_config(
        tmp_path / "renamed.yaml",
        renamed,
        tmp_path / "runs",
        model={"arch": "simple", "params": {"activation": "relu"}, "init_from": str(trained_run)},
        training={"epochs": 1, "learning_rate": 1e-12},
    )
    code, out, err = cli("train", config)
    assert code == 0, err
    assert "left fresh: predictions (its classes ['circle', " in out.replace("\n", "")
    (run,) = (tmp_path / "runs").iterdir()
    assert json.loads((run / "metrics.json").read_text())["init_from"]["classes_match"] is False
    ours = keras.saving.load_model(run / "model.keras", compile=False)
    source = keras.saving.load_model(trained_run / "model.keras", compile=False)
    assert not np.allclose(
        ours.get_layer("predictions").get_weights()[0],
        source.get_layer("predictions").get_weights()[0],
        atol=1e-3,
    )


def test_a_source_still_training_is_warned_of(cli, run_copy, dataset, tmp_path):
    from animalcnn.run_folder import this_process

    metrics = json.loads((run_copy / "metrics.json").read_text())
    metrics.update(status="running", process=this_process())  # alive: this very process
    (run_copy / "metrics.json").write_text(json.dumps(metrics))
    config = write_config(
        tmp_path / "live.yaml",
        dataset,
        tmp_path / "runs",
        model={"arch": "simple", "params": {"activation": "relu"}, "init_from": str(run_copy)},
        training={"epochs": 1},
    )
    code, _, err = cli("train", config)
    assert code == 0, err
    assert f"warning: model.init_from: {run_copy} is still training" in err.replace("\n", "")
