"""Sweeps under faults: dead and interrupted trials, other hosts, changed sweep files,
bad storage, failing trials and oversized grids."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from .test_sweep import _sweep


@pytest.fixture
def tiny(tmp_path: Path, dataset: Path) -> Path:
    from .conftest import write_config

    return write_config(
        tmp_path / "tiny.yaml", dataset, tmp_path / "unused", training={"epochs": 2}
    )


LR = {"training.learning_rate": {"values": [0.002, 0.003]}}


def _study(path: Path, runs: Path):
    from animalcnn.sweep.spec import load_sweep
    from animalcnn.sweep.storage import open_study, storage_for

    spec = load_sweep(path)
    return spec, open_study(spec, storage_for(spec, runs / spec.name, None))


def test_an_interrupted_point_is_resumed_in_its_run_folder(cli, tmp_path, tiny, monkeypatch):
    from animalcnn.sweep import search

    path = _sweep(tmp_path, tiny, "again", parameters=LR)
    runs = tmp_path / "runs"
    real = search.PruneOnMetric.on_epoch_end

    def interrupt_first(self, epoch, logs=None):
        real(self, epoch, logs)
        if self.trial.number == 0 and epoch == 0:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C after epoch 1 of the first trial

    monkeypatch.setattr(search.PruneOnMetric, "on_epoch_end", interrupt_first)
    code, _, _ = cli("sweep", path, "--runs-dir", runs)
    assert code == 130
    (interrupted,) = [
        p for p in (runs / "again").iterdir() if p.is_dir() and p.name != "animalcnn-assets"
    ]
    assert yaml.safe_load((interrupted / "metrics.json").read_text())["status"] == "interrupted"
    monkeypatch.setattr(search.PruneOnMetric, "on_epoch_end", real)
    code, out, err = cli("sweep", path, "--runs-dir", runs)
    assert code == 0, err
    assert f"resuming {interrupted}" in out.replace("\n", "")
    table = pd.read_csv(runs / "again" / "sweep.csv")
    assert sorted(table["state"]) == ["complete", "complete", "failed"]
    resumed = table[(table["state"] == "complete") & (table["run"] == str(interrupted))]
    assert len(resumed) == 1 and resumed["training.learning_rate"].item() == 0.002
    metrics = yaml.safe_load((interrupted / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs_run"] == 2


def test_a_run_finished_by_hand_reaches_the_study(cli, tmp_path, tiny):
    from optuna.trial import TrialState

    from animalcnn.sweep.search import Sweep, trial_config
    from animalcnn.training.session import TrainingFailed, start

    from .test_precision import InterruptAfter

    path = _sweep(tmp_path, tiny, "byhand", parameters=LR)
    runs = tmp_path / "runs"
    spec, study = _study(path, runs)
    sweep = Sweep(spec, study, runs / "byhand")
    trial, _ = sweep.take()
    params = {
        "training.learning_rate": trial.suggest_categorical(
            "training.learning_rate", [0.002, 0.003]
        )
    }
    cfg = trial_config(spec, params, trial.number, runs / "byhand")
    with pytest.raises(TrainingFailed):  # stopped; the sweep process died with it
        start(cfg, [InterruptAfter(1)], lambda r: sweep._record_run(trial, r, params))
    study.tell(trial, state=TrialState.FAIL)
    (run,) = [p for p in (runs / "byhand").iterdir() if p.is_dir() and p.name != "animalcnn-assets"]
    assert cli("train", "--resume", run)[0] == 0  # finished by hand
    code, out, err = cli("sweep", path, "--runs-dir", runs)
    assert code == 0, err
    assert "recorded (its run had finished)" in out.replace("\n", "")
    table = pd.read_csv(runs / "byhand" / "sweep.csv")
    assert (table["state"] == "complete").sum() == 2
    assert str(run) in table[table["state"] == "complete"]["run"].tolist()


def test_a_sweep_whose_trials_all_fail_exits_nonzero(cli, tmp_path, tiny):
    path = _sweep(tmp_path, tiny, "broken", parameters={"model.params.bogus": {"values": [1, 2]}})
    code, out, err = cli("sweep", path, "--runs-dir", tmp_path / "runs")
    assert code == 1
    assert "error: sweep broken: 2 grid point(s) have no value: model.params.bogus=1; " in err
    assert "error: sweep broken: no trial completed" in err
    assert "Traceback" not in out + err


def test_a_changed_sweep_file_is_refused_until_a_new_study(cli, tmp_path, tiny):
    runs = tmp_path / "runs"
    one = {"training.learning_rate": {"values": [0.002]}}
    path = _sweep(tmp_path, tiny, "edit", parameters=one)
    assert cli("sweep", path, "--runs-dir", runs)[0] == 0
    _sweep(tmp_path, tiny, "edit", parameters={"training.learning_rate": {"values": [0.003]}})
    code, out, err = cli("sweep", path, "--runs-dir", runs)
    assert code == 2 and "trial" not in out
    assert err.strip() == (
        "error: sweep edit: its study was made with other parameters; give "
        "the sweep a new name, or pass --new-study to start it again"
    )
    _sweep(tmp_path, tiny, "edit", parameters=one, metric="val_loss")
    code, _, err = cli("sweep", path, "--runs-dir", runs)
    assert code == 2 and "made with other metric, direction;" in err
    code, out, err = cli("sweep", path, "--runs-dir", runs, "--new-study")
    assert code == 0, err
    table = pd.read_csv(runs / "edit" / "sweep.csv")
    assert table["trial"].tolist() == [0] and table["value"].item() < 5  # a loss, new study
    assert (
        len([p for p in (runs / "edit").iterdir() if p.is_dir() and p.name != "animalcnn-assets"])
        == 2
    )  # old run kept


@pytest.mark.parametrize(
    ("storage", "expected"),
    [
        ("notadb://x", "--storage notadb://x: cannot be opened ("),
        ("sqlite:////no/such/folder/s.db", "--storage sqlite:////no/such/folder/s.db: cannot be"),
        ("postgresql://u@127.0.0.1:1/db", "--storage postgresql://u@127.0.0.1:1/db: cannot be"),
        (None, "sweep.journal: cannot be opened ("),
    ],
)
def test_bad_storage_is_one_line(cli, tmp_path, tiny, storage, expected):
    path = _sweep(tmp_path, tiny, "store", parameters=LR)
    if storage is None:
        (tmp_path / "runs" / "store").mkdir(parents=True)
        (tmp_path / "runs" / "store" / "sweep.journal").write_bytes(b'{"op_code": 0, broken\n\x00')
    args = ["--storage", storage] if storage else []
    code, out, err = cli("sweep", path, "--runs-dir", tmp_path / "runs", *args)
    assert code == 2 and expected in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in out + err


def test_a_grid_past_the_cap_is_refused_before_anything(cli, tmp_path, tiny):
    values = {"values": list(range(1, 401))}
    grid = {"seed": values, "data.batch_size": values, "training.epochs": values}
    path = _sweep(tmp_path, tiny, "huge", parameters=grid)
    code, _, err = cli("sweep", path, "--runs-dir", tmp_path / "runs")
    assert code == 2 and "the grid has 64,000,000 points, more than the 10,000" in err
    assert not (tmp_path / "runs").exists()


def test_on_the_journal_another_hosts_trial_is_judged_by_its_run_folders_heartbeat(tmp_path, tiny):
    from optuna.trial import TrialState

    from animalcnn.sweep.search import requeue_dead

    _, study = _study(_sweep(tmp_path, tiny, "hosts", parameters=LR), tmp_path / "runs")
    trial = study.ask()
    trial.suggest_categorical("training.learning_rate", [0.002])
    trial.set_user_attr("process", {"host": "elsewhere", "pid": os.getpid(), "start": 1.0})
    assert requeue_dead(study, on_database=False) == 0  # no run folder yet: not ours to judge
    run = tmp_path / "elsewhere-run"
    run.mkdir()
    (run / "heartbeat").touch()
    trial.set_user_attr("run", str(run))
    assert requeue_dead(study, on_database=False) == 0  # the pid means nothing; beat fresh
    os.utime(run / "heartbeat", (time.time() - 600, time.time() - 600))
    assert requeue_dead(study, on_database=False) == 1
    failed, queued = study.get_trials()
    assert failed.state == TrialState.FAIL and queued.state == TrialState.WAITING
    assert queued.params == {"training.learning_rate": 0.002}
    assert queued.user_attrs["run"] == str(run)  # so the point resumes its run folder


def test_a_point_being_suggested_elsewhere_is_not_queued_again(tmp_path, tiny):
    """Another process takes the next trial while the first is still suggesting its point's
    values (outside the lock): the half-suggested point counts as taken."""
    from animalcnn.sweep.search import Sweep

    grid = {**LR, "data.batch_size": {"values": [8, 16]}}
    runs = tmp_path / "runs"
    spec, study = _study(_sweep(tmp_path, tiny, "midway", parameters=grid), runs)
    first, _ = Sweep(spec, study, runs / spec.name).take()
    first.suggest_categorical("training.learning_rate", [0.002, 0.003])  # one of two so far
    second, _ = Sweep(spec, study, runs / spec.name).take()
    assert len(study.get_trials()) == 4  # the grid's points, none twice
    assert second.number == 1 and first.number == 0


@pytest.mark.parametrize("queued_again", [False, True])
def test_a_trial_failed_by_another_process_still_records_its_value(
    cli, tmp_path, tiny, monkeypatch, queued_again
):
    from optuna.trial import TrialState

    from animalcnn.sweep import search
    from animalcnn.sweep.storage import REQUEUE

    path = _sweep(
        tmp_path, tiny, "wrong", parameters={"training.learning_rate": {"values": [0.002]}}
    )
    real = search.PruneOnMetric.on_epoch_end

    def failed_elsewhere(self, epoch, logs=None):
        if epoch == 0:  # another host takes this trial for dead (and queues its point)
            study = self.trial.study
            study.tell(self.trial.number, state=TrialState.FAIL)
            if queued_again:
                REQUEUE(study, study.trials[self.trial.number])
        real(self, epoch, logs)

    monkeypatch.setattr(search.PruneOnMetric, "on_epoch_end", failed_elsewhere)
    code, out, err = cli("sweep", path, "--runs-dir", tmp_path / "runs")
    assert code == 0, err
    recorded = "trial 1, which had queued its point again" if queued_again else "a new trial"
    assert f"another process had marked it failed: its result is recorded as {recorded}" in (
        out.replace("\n", "")
    )
    table = pd.read_csv(tmp_path / "runs" / "wrong" / "sweep.csv")
    assert table["state"].tolist() == ["failed", "complete"]  # the point never ran twice
    assert table["run"].nunique() == 1  # one run folder, its result kept


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root")
def test_two_hosts_finish_a_grid_on_one_storage(tmp_path, tiny):
    """A second host, simulated with its own UTS namespace and hostname, shares the
    journal: neither fails the other's live trials."""
    grid = {
        "training.learning_rate": {"values": [0.002, 0.003]},
        "data.batch_size": {"values": [8, 16]},
    }
    path = _sweep(tmp_path, tiny, "twohosts", parameters=grid)
    runs = tmp_path / "runs"
    sweep = [sys.executable, "-m", "animalcnn", "sweep", str(path), "--runs-dir", str(runs)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    other = f"{socket.gethostname()}-other"
    procs = [
        subprocess.Popen(sweep, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env),
        subprocess.Popen(
            ["unshare", "--uts", "sh", "-c", f'hostname {other} && exec "$@"', "-", *sweep],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        ),
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=400)
        assert proc.returncode in (0, 1), err  # 1: the other host's point still ran at the end
        assert "Traceback" not in out + err and "marked failed" not in err, err
    table = pd.read_csv(runs / "twohosts" / "sweep.csv")
    assert sorted(table["state"]) == ["complete"] * 4, table
    hosts = {
        yaml.safe_load(Path(r, "metrics.json").read_text())["process"]["host"] for r in table["run"]
    }
    assert hosts == {socket.gethostname(), other}


def test_compare_on_a_sweep_whose_trials_all_failed(cli, tmp_path, tiny, trained_run):
    path = _sweep(tmp_path, tiny, "allfail", parameters={"model.params.bogus": {"values": [1]}})
    assert cli("sweep", path, "--runs-dir", tmp_path / "runs")[0] == 1
    folder = tmp_path / "runs" / "allfail"
    code, _, err = cli("compare", folder)
    assert code == 2 and err.strip() == (
        f"error: {folder}: a sweep with no trial run folders (every trial failed before "
        "training; sweep.csv says why)"
    )
    code, out, err = cli("compare", folder, trained_run)
    assert code == 0 and "damaged" not in out and f"warning: {folder}: a sweep with" in err


def test_new_study_never_deletes_a_study_it_did_not_make(cli, tmp_path, tiny):
    import optuna

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    optuna.create_study(study_name="theirs", storage=url).enqueue_trial({"x": 1})
    path = _sweep(tmp_path, tiny, "theirs", parameters=LR)
    code, _, err = cli(
        "sweep", path, "--runs-dir", tmp_path / "runs", "--storage", url, "--new-study"
    )
    assert code == 2 and err.strip() == (
        "error: --new-study: the study theirs in this storage was not made by animalcnn "
        "sweep; it is left as it is (give the sweep a new name)"
    )
    code, _, err = cli("sweep", path, "--runs-dir", tmp_path / "runs", "--storage", url)
    assert code == 2 and "the study of that name in this storage was not made by" in err
    assert len(optuna.load_study(study_name="theirs", storage=url).trials) == 1
