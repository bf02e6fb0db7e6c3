"""Interrupt and resume: the resumed run ends with the rows an uninterrupted one has."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from .conftest import write_config

EPOCHS = 8


def _config(tmp_path: Path, dataset: Path, name: str) -> Path:
    # Dropout and augmentation draw random numbers: their states must resume too.
    # lr_patience 1 makes the learning rate drop, so the plateau counter matters.
    return write_config(
        tmp_path / f"{name}.yaml",
        dataset,
        tmp_path / name,
        data={"img_size": 36},
        model={
            "arch": "mid",
            "params": {"filters": [8, 16], "dense": 16, "dropout": 0.3},
            "augmentation": [{"type": "flip"}, {"type": "rotation", "factor": 0.1}],
        },
        training={"epochs": EPOCHS, "learning_rate": 0.005, "lr_patience": 1, "val_patience": 50},
    )


def _history(runs_dir: Path) -> pd.DataFrame:
    (run,) = runs_dir.iterdir()
    return pd.read_csv(run / "history.csv").drop(columns="seconds")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, dataset: Path) -> pd.DataFrame:
    from typer.testing import CliRunner

    from animalcnn.cli import app

    tmp = tmp_path_factory.mktemp("whole")
    result = CliRunner().invoke(app, ["train", str(_config(tmp, dataset, "whole"))])
    assert result.exit_code == 0, result.stdout + result.stderr
    return _history(tmp / "whole")


def _train_until(config: Path, runs_dir: Path, sig: int) -> subprocess.CompletedProcess:
    """Start training in a subprocess and send `sig` once an epoch's state is saved."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "animalcnn", "train", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if list(runs_dir.glob("*/state.json")):
            proc.send_signal(sig)
            break
        time.sleep(0.02)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_each_stop_signal_stops_at_the_next_batch_and_a_second_at_once(sig: int):
    """SIGTERM (a pre-empted job) and SIGHUP (a closed terminal) take Ctrl-C's path: the
    first is a request kept until the next batch boundary, the second stops at once; the
    handlers before it are put back. (SIGINT and SIGKILL go end to end below.)"""
    import io

    from rich.console import Console

    from animalcnn.training.callbacks import StopOnSignal

    before = signal.getsignal(sig)
    out = io.StringIO()
    stop = StopOnSignal(Console(file=out, width=200))
    with stop.installed():
        stop.on_train_batch_end(0)  # nothing requested: training goes on
        os.kill(os.getpid(), sig)
        assert stop.requested == signal.Signals(sig).name
        with pytest.raises(KeyboardInterrupt):
            stop.on_train_batch_end(1)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), sig)
    assert signal.getsignal(sig) == before
    assert f"{signal.Signals(sig).name}: stopping (again to stop at once)" in out.getvalue()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupt_then_resume_matches_an_uninterrupted_run(
    cli, tmp_path: Path, dataset: Path, uninterrupted: pd.DataFrame, sig: int
):
    config = _config(tmp_path, dataset, "cut")
    done = _train_until(config, tmp_path / "cut", sig)
    (run,) = (tmp_path / "cut").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    if sig == signal.SIGKILL:  # no chance to say so: the file still reads running ...
        assert done.returncode == -signal.SIGKILL and metrics["status"] == "running"
        code, out, _ = cli("compare", run, "--csv", tmp_path / "c.csv")  # ... but it is not
        assert pd.read_csv(tmp_path / "c.csv")["status"][0] == "stopped"
        assert f"continue with: animalcnn train --resume {run}" in out
    else:
        assert done.returncode == 130, done.stderr
        assert "Traceback" not in done.stderr and "train --resume" in done.stderr
        assert metrics["status"] == "interrupted"
    cut_rows = len(json.loads((run / "state.json").read_text())["rows"])
    assert 1 <= cut_rows < EPOCHS
    assert (run / "last.keras").exists() and (run / "state.json").exists()

    code, out, err = cli("train", "--resume", run)
    assert code == 0, err
    assert f"after epoch {cut_rows}" in out
    resumed = pd.read_csv(run / "history.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(resumed, uninterrupted)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs_run"] == EPOCHS
    assert not (run / "last.keras").exists()  # the resume state goes once completed

    code, _, err = cli("train", "--resume", run)
    assert code == 2 and "already completed" in err
