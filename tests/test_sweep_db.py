"""Sweeps on a real PostgreSQL server, as users run them across machines: the driver the
extra installs, every process started at once joining the study on an empty database,
every grid point completed once by processes sharing it, and one-line errors that keep
the password out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from animalcnn.errors import UserError

from .conftest import write_config
from .support.postgres import postgres

pytestmark = pytest.mark.slow
GRID = {"training.learning_rate": {"values": [0.001, 0.002, 0.003, 0.004]}}


@pytest.fixture(scope="module")
def server():
    try:
        with postgres() as running:
            yield running
    except LookupError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def grid(tmp_path_factory, dataset: Path) -> Path:
    folder = tmp_path_factory.mktemp("db-sweep")
    config = write_config(folder / "tiny.yaml", dataset, folder / "unused",
                          training={"epochs": 1})  # fmt: skip
    spec = {"name": "lr", "base": str(config), "method": "grid", "pruner": "none",
            "parameters": GRID}  # fmt: skip
    (folder / "lr.yaml").write_text(yaml.safe_dump(spec))
    return folder / "lr.yaml"


JOIN = """
import sys
from pathlib import Path
from animalcnn.sweep.spec import load_sweep
from animalcnn.sweep.storage import open_study, storage_for
spec = load_sweep(Path(sys.argv[1]))
study = open_study(spec, storage_for(spec, Path(sys.argv[2]), sys.argv[3]))
print("joined", study.study_name)
"""


def test_processes_started_together_on_an_empty_database_all_join(server, grid, tmp_path):
    _, database = server
    for round_ in range(10):
        url = database(f"join{round_}")
        processes = [
            subprocess.Popen([sys.executable, "-c", JOIN, str(grid), str(tmp_path), url],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(4)
        ]  # fmt: skip
        for p in processes:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0 and out.strip() == "joined lr", (round_, err)
        assert optuna.get_all_study_names(url) == ["lr"]


def test_a_grid_shared_by_two_hosts_of_two_processes_runs_every_point_once(server, grid, tmp_path):
    """Two hosts (each its own runs folder, as each machine has its own disk), two
    processes each, started at once on an empty database: the database's lock, not a
    file lock, keeps them from taking the same point."""
    _, database = server
    url = database("grid")
    env = {**os.environ, "COLUMNS": "200"}
    processes = [
        subprocess.Popen([sys.executable, "-m", "animalcnn", "sweep", str(grid), "--storage", url,
                          "--runs-dir", str(tmp_path / host / "runs")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for host in ("host-a", "host-a", "host-b", "host-b")
    ]  # fmt: skip
    for p in processes:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, out + err
    trials = optuna.load_study(study_name="lr", storage=url).get_trials()
    rates = sorted(t.params["training.learning_rate"] for t in trials)
    assert rates == [0.001, 0.002, 0.003, 0.004], [(t.state, t.params) for t in trials]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    runs = [p for p in tmp_path.glob("host-*/runs/lr/lr-trial*")]
    assert len(runs) == 4


def test_a_bad_database_url_is_one_line_without_its_password(server, grid, tmp_path):
    from animalcnn.sweep.spec import load_sweep
    from animalcnn.sweep.storage import storage_for

    base, _ = server
    spec = load_sweep(grid)
    url = base.replace("animalcnn@", "animalcnn:s3cret@") + "/no_such_database"
    with pytest.raises(UserError) as failed:
        storage_for(spec, tmp_path, url)
    line = str(failed.value)
    assert "s3cret" not in line and "animalcnn:***@" in line and "\n" not in line
    assert 'database "no_such_database" does not exist' in line
    with pytest.raises(UserError, match=r"no driver for postgresql\+pg8000: pip install pg8000"):
        storage_for(spec, tmp_path, url.replace("postgresql://", "postgresql+pg8000://"))
