"""Sanity flags: a collapsed, diverged, overfit, stale or unevaluated run says so wherever
it is shown."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from animalcnn.run_folder import RunFolder
from animalcnn.run_folder.flags import run_flags

from .conftest import write_config


def _edit(path: Path, **values) -> None:
    data = json.loads(path.read_text())
    data.update(values)
    path.write_text(json.dumps(data))


def _names(run: Path) -> list[str]:
    return [f.name for f in run_flags(RunFolder.open(run))]


@pytest.fixture(scope="module")
def collapsed(tmp_path_factory, dataset: Path):
    """A run whose learning rate (1.0) is far too high: it predicts one class."""
    from typer.testing import CliRunner

    from animalcnn.cli import app

    tmp = tmp_path_factory.mktemp("collapsed")
    config = write_config(
        tmp / "high.yaml", dataset, tmp / "runs", training={"epochs": 2, "learning_rate": 1.0}
    )
    result = CliRunner().invoke(app, ["train", str(config)])
    assert result.exit_code == 0, result.stdout + result.stderr
    (run,) = (tmp / "runs").iterdir()
    return run, result.stdout + result.stderr


def test_a_collapsed_run_is_flagged_chance_everywhere(cli, collapsed, tmp_path):
    run, train_output = collapsed
    assert "chance (" in train_output and "animalcnn lr-find" in train_output
    code, out, err = cli("evaluate", run)
    assert code == 0 and "chance (" in out + err
    code, out, err = cli("compare", run, "--csv", tmp_path / "c.csv")
    assert code == 0 and "chance" in out
    assert pd.read_csv(tmp_path / "c.csv")["flags"][0].startswith("chance (")
    code, _, err = cli("compare", run, "--report", tmp_path / "r.html")
    assert code == 0, err
    assert "flags: chance (" in (tmp_path / "r.html").read_text()


def test_a_healthy_run_has_no_flags_once_evaluated(cli, run_copy: Path):
    assert _names(run_copy) in (["not evaluated"], ["chance", "not evaluated"])
    if "chance" in _names(run_copy):
        pytest.skip("the tiny shared run sits at chance on this machine's draws")
    assert cli("evaluate", run_copy)[0] == 0
    assert [n for n in _names(run_copy) if n != "overfit"] == []


def test_one_class_predicted_is_chance(cli, run_copy: Path):
    assert cli("evaluate", run_copy)[0] == 0
    ev = run_copy / "evaluation.json"
    k = len(json.loads(ev.read_text())["classes"])
    matrix = [[0] * k for _ in range(k)]
    for true in range(k):
        matrix[true][2] = 4  # every image predicted as the third class
    _edit(ev, confusion_matrix=matrix)
    _edit(
        run_copy / "metrics.json",
        best={**json.loads((run_copy / "metrics.json").read_text())["best"], "val_accuracy": 0.9},
    )
    (flag,) = [f for f in run_flags(RunFolder.open(run_copy)) if f.name == "chance"]
    assert flag.reason == "predicts one class (square) for 100% of the test images"


def test_nan_and_rising_losses_are_diverged(run_copy: Path):
    history = pd.read_csv(run_copy / "history.csv")
    history.loc[len(history) - 1, "loss"] = float("nan")
    history.to_csv(run_copy / "history.csv", index=False)
    (flag,) = [f for f in run_flags(RunFolder.open(run_copy)) if f.name == "diverged"]
    assert flag.reason == f"the loss became NaN or infinite at epoch {len(history)}"
    history["loss"] = [1.0] + [20.0] * (len(history) - 1)
    history.to_csv(run_copy / "history.csv", index=False)
    (flag,) = [f for f in run_flags(RunFolder.open(run_copy)) if f.name == "diverged"]
    assert flag.reason == "the loss rose from 1 to 20"


def test_overfit_stale_and_not_evaluated(cli, run_copy: Path):
    assert "not evaluated" in _names(run_copy)
    assert cli("evaluate", run_copy)[0] == 0
    accuracy = json.loads((run_copy / "evaluation.json").read_text())["accuracy"]
    metrics = json.loads((run_copy / "metrics.json").read_text())
    _edit(run_copy / "metrics.json", best={**metrics["best"], "accuracy": accuracy + 0.2})
    assert "overfit" in _names(run_copy)
    _edit(run_copy / "metrics.json", best_epoch=metrics["best_epoch"] + 3)
    assert "stale" in _names(run_copy) and "overfit" not in _names(run_copy)
