"""Sweeps on a real PostgreSQL server, as users run them across machines: the driver the
extra installs, every process started at once joining the study on an empty database,
every grid point completed once by two hosts of two processes (one host's clock 30 s
ahead), a host killed mid-trial and its point resumed by another after the grace
period, the server restarted and stopped mid-sweep, the sweep reported from the
database alone, and one-line errors that keep the password out."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState

from animalcnn.errors import UserError

from .conftest import write_config
from .support.postgres import PASSWORD, postgres

pytestmark = pytest.mark.slow

# `python -c HOST sweep ...`: the CLI as a host runs it, its clock SKEW seconds ahead,
# killed (SIGKILL) at the end of epoch KILL_AT, or pausing SLOW seconds after each epoch.
HOST = """
import os, runpy, signal, sys, time
skew = float(os.environ.get("SKEW", 0))
if skew:
    real_time = time.time
    time.time = lambda: real_time() + skew
if "KILL_AT" in os.environ or "SLOW" in os.environ:
    from animalcnn.sweep import search
    real = search.PruneOnMetric.on_epoch_end
    def epoch_end(self, epoch, logs=None):
        real(self, epoch, logs)
        if epoch + 1 == int(os.environ.get("KILL_AT", 0)):
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(float(os.environ.get("SLOW", 0)))
    search.PruneOnMetric.on_epoch_end = epoch_end
sys.argv = ["animalcnn", *sys.argv[1:]]
runpy.run_module("animalcnn", run_name="__main__")
"""


@pytest.fixture(scope="module")
def server():
    try:
        with postgres() as running:
            yield running
    except LookupError as exc:
        pytest.skip(str(exc))


def _grid(folder: Path, dataset: Path, name: str, values: dict, epochs: int = 1, **spec) -> Path:
    config = write_config(
        folder / f"{name}-base.yaml", dataset, folder / "unused", training={"epochs": epochs}
    )
    data = {
        "name": name,
        "base": str(config),
        "method": "grid",
        "pruner": "none",
        "parameters": {k: {"values": v} for k, v in values.items()},
        **spec,
    }
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(data))
    return folder / f"{name}.yaml"


def _host(sweep: Path, url: str, runs: Path, *extra: str, **env: str) -> subprocess.Popen:
    command = [
        sys.executable,
        "-c",
        HOST,
        "sweep",
        str(sweep),
        "--storage",
        url,
        "--runs-dir",
        str(runs),
        *extra,
    ]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200", **env},
    )


def _finish(process: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    assert "Traceback" not in out + err and PASSWORD not in out + err, out + err
    return process.returncode, out, err


def _by_point(url: str, name: str) -> dict[tuple, list[TrialState]]:
    points: dict[tuple, list[TrialState]] = {}
    for t in optuna.load_study(study_name=name, storage=url).get_trials():
        points.setdefault(tuple(sorted(t.params.items())), []).append(t.state)
    return points


GRACE = 3  # seconds: the faults' sweeps fail a trial whose heartbeat is older
ONE_RETRIED = [[TrialState.COMPLETE], [TrialState.FAIL, TrialState.COMPLETE]]


def _two_points(folder: Path, dataset: Path, name: str, epochs: int) -> Path:
    """A grid of two learning rates whose dead trials are found a few seconds after."""
    rates = {"training.learning_rate": [0.001, 0.002]}
    return _grid(folder, dataset, name, rates, epochs, heartbeat_seconds=1, grace_seconds=GRACE)


JOIN = """
import sys
from pathlib import Path
from animalcnn.sweep.spec import load_sweep
from animalcnn.sweep.storage import open_study, storage_for
spec = load_sweep(Path(sys.argv[1]))
study = open_study(spec, storage_for(spec, Path(sys.argv[2]), sys.argv[3]))
print("joined", study.study_name)
"""


def test_processes_started_together_on_an_empty_database_all_join(server, dataset, tmp_path):
    grid = _grid(tmp_path, dataset, "lr", {"training.learning_rate": [0.001, 0.002]})
    for round_ in range(3):
        url = server.database(f"join{round_}")
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", JOIN, str(grid), str(tmp_path), url],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        for p in processes:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0 and out.strip() == "joined lr", (round_, err)
        assert optuna.get_all_study_names(url) == ["lr"]


def test_two_hosts_of_two_processes_complete_every_grid_point_once(server, dataset, tmp_path):
    """Two hosts (each its own runs folder, as each machine has its own disk; host B's
    clock 30 s ahead, three times the grace period), two processes each, started at
    once on an empty database. Then a third machine reports the sweep from the
    database alone."""
    url = server.database("grid")
    values = {"training.learning_rate": [0.001, 0.002], "data.batch_size": [8, 16]}
    grid = _grid(tmp_path, dataset, "lr", values, heartbeat_seconds=1, grace_seconds=10)
    hosts = [("host-a", "0"), ("host-a", "0"), ("host-b", "30"), ("host-b", "30")]
    processes = [_host(grid, url, tmp_path / h / "runs", SKEW=skew) for h, skew in hosts]
    for p in processes:
        code, out, err = _finish(p)
        assert code == 0 and "marked failed" not in err, out + err
    points = _by_point(url, "lr")
    assert len(points) == 4 and all(s == [TrialState.COMPLETE] for s in points.values()), points
    assert len(list(tmp_path.glob("host-*/runs/lr/lr-trial*"))) == 4
    assert {p.parent.parent.parent.name for p in tmp_path.glob("host-*/runs/lr/lr-trial*")} == {
        "host-a",
        "host-b",
    }

    elsewhere = tmp_path / "host-c" / "runs"
    code, out, err = _finish(_host(grid, url, elsewhere, "--report-only"))
    assert code == 0, err
    table = pd.read_csv(elsewhere / "lr" / "sweep.csv")
    assert sorted(table["state"]) == ["complete"] * 4 and table["value"].notna().all()
    assert "best: trial " in out and (elsewhere / "lr" / "sweep.html").is_file()
    assert not list(elsewhere.glob("lr/lr-trial*"))  # nothing trained on this machine


def test_a_host_killed_mid_trial_has_its_point_resumed_by_another(server, dataset, tmp_path):
    """Host A is SIGKILLed after epoch 2 of its first trial; host B, started after the
    grace period on the same disk, fails it by its stale heartbeat, takes the queued
    point and resumes the run folder from its resume state."""
    url = server.database("killed")
    grid = _two_points(tmp_path, dataset, "kill", epochs=4)
    runs = tmp_path / "shared" / "runs"
    code, _, _ = _finish(_host(grid, url, runs, KILL_AT="2"))
    assert code == -9
    (killed,) = list(runs.glob("kill/kill-trial000*"))
    assert (killed / "state.json").is_file()
    time.sleep(GRACE + 1)
    code, out, err = _finish(_host(grid, url, runs))
    assert code == 0, out + err
    assert "1 trial(s) whose process died marked failed, their points queued again" in err
    assert f"resuming {killed}" in out.replace("\n", "")
    points = _by_point(url, "kill")
    assert sorted(points.values()) == ONE_RETRIED
    assert len(list(runs.glob("kill/kill-trial*"))) == 2  # the killed one resumed, not redone
    history = pd.read_csv(killed / "history.csv")
    assert history["epoch"].tolist() == [1, 2, 3, 4]


def test_the_database_restarted_or_stopped_mid_sweep(server, dataset, tmp_path):
    """Restarted while trial 0 trains: it keeps training and reports when the server is
    back. Stopped while trial 1 trains: its result cannot be recorded, the process stops
    with one line, and the next run (after the grace period) records it from the run
    folder without training it again."""
    url = server.database("restart")
    grid = _two_points(tmp_path, dataset, "db", epochs=3)
    runs = tmp_path / "runs"
    process = _host(grid, url, runs, SLOW="1.5")

    def wait_for_epoch(trial: str) -> None:
        for _ in range(600):
            if any(
                len(h.read_text().splitlines()) > 1 for h in runs.glob(f"db/{trial}*/history.csv")
            ):
                return
            time.sleep(0.1)
        raise AssertionError(f"{trial} never finished an epoch")

    wait_for_epoch("db-trial000")
    server.pg_ctl("restart")
    wait_for_epoch("db-trial001")
    server.pg_ctl("stop")
    try:
        code, out, err = _finish(process)
    finally:
        server.pg_ctl("start")
    assert code == 2, out + err
    assert "trial 0: complete" in out and "its result could not be recorded" in out
    assert (
        err.strip().splitlines()[-1].startswith("error: sweep db: its storage cannot be reached (")
        and "pg-secret" not in err
    ), err
    time.sleep(GRACE + 1)  # the unrecorded trial is stale
    code, out, err = _finish(_host(grid, url, runs))
    assert code == 0, out + err
    assert "recorded (its run had finished)" in out.replace("\n", "")
    points = _by_point(url, "db")
    assert sorted(points.values()) == ONE_RETRIED
    assert len(list(runs.glob("db/db-trial*"))) == 2  # nothing trained twice


def test_a_bad_database_url_is_one_line_without_its_password(server, dataset, tmp_path):
    from animalcnn.sweep.spec import load_sweep
    from animalcnn.sweep.storage import storage_for

    spec = load_sweep(_grid(tmp_path, dataset, "lr", {"training.learning_rate": [0.001]}))
    missing = f"{server.base}/no_such_database"
    wrong = server.database("guarded").replace(PASSWORD, "not-it")
    for url, expected in [
        (missing, 'database "no_such_database" does not exist'),
        (wrong, 'password authentication failed for user "animalcnn"'),
    ]:
        with pytest.raises(UserError) as failed:
            storage_for(spec, tmp_path, url)
        line = str(failed.value)
        assert PASSWORD not in line and "not-it" not in line and "animalcnn:***@" in line
        assert "\n" not in line and expected in line, line
    with pytest.raises(UserError, match=r"no driver for postgresql\+pg8000: pip install pg8000"):
        storage_for(spec, tmp_path, missing.replace("postgresql://", "postgresql+pg8000://"))
