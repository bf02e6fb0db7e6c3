"""Sweeps on Optuna: validation, several processes on one sweep, trial counts, pruning,
dead workers, and the outputs."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from .conftest import imports_tensorflow, write_config


def _sweep(tmp_path: Path, config: Path, name: str, **fields) -> Path:
    spec = {
        "name": name,
        "base": str(config),
        "metric": "val_accuracy",
        "method": "grid",
        "pruner": "none",
        **fields,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture
def tiny(tmp_path: Path, dataset: Path) -> Path:
    return write_config(
        tmp_path / "tiny.yaml", dataset, tmp_path / "unused", training={"epochs": 1}
    )


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"methd": "grid"}, "methd: unknown field (did you mean 'method'?)"),
        ({"parameters": {"training.lr": {"values": [1]}}}, "unknown field 'training.lr'"),
        (
            {"method": "tpe", "parameters": {"training.learning_rate": {"low": -1.0, "high": 0.1}}},
            "parameters.training.learning_rate: -1.0: training.learning_rate: input should be "
            "greater than 0",
        ),
        (
            {"parameters": {"training.learning_rate": {"low": 0.001, "high": 0.1}}},
            "parameters.training.learning_rate: a grid needs values, not a range",
        ),
        ({"metric": "f1"}, "metric: input should be 'loss', 'accuracy', 'val_loss' or"),
        (
            {"parameters": {"data.batch_size": {"values": [8, "many"]}}},
            "parameters.data.batch_size: 'many': data.batch_size: input should be a valid integer",
        ),
        # every trial would fail on a missing data folder: said once, before any trial
        (
            {"set": {"data.dir": "/no/such/photos"}},
            "data.dir: /no/such/photos: folder not found; get the course's dataset with",
        ),
        (
            {"parameters": {"data.dir": {"values": ["/no/such/photos"]}}},
            "parameters.data.dir: '/no/such/photos': data.dir: /no/such/photos: folder not found",
        ),
    ],
)
def test_bad_sweep_files_are_one_line_errors(cli, tmp_path, tiny, fields, expected):
    path = _sweep(tmp_path, tiny, "bad", **fields)
    code, _, err = cli("sweep", path, "--runs-dir", tmp_path / "runs")
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"error: {path}: ")
    assert not (tmp_path / "runs").exists()


def _sweep_process(path: Path, runs: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "animalcnn", "sweep", str(path), "--runs-dir", str(runs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )


@pytest.mark.slow
def test_two_processes_share_a_grid_and_rerunning_adds_nothing(cli, tmp_path, tiny):
    grid = {
        "training.learning_rate": {"values": [0.002, 0.004]},
        "data.batch_size": {"values": [8, 16]},
    }
    path = _sweep(tmp_path, tiny, "shared", parameters=grid)
    runs = tmp_path / "runs"
    procs = [_sweep_process(path, runs) for _ in range(2)]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    table = pd.read_csv(runs / "shared" / "sweep.csv")
    assert len(table) == 4 and set(table["state"]) == {"complete"}
    points = set(zip(table["training.learning_rate"], table["data.batch_size"], strict=True))
    assert len(points) == 4
    folders = [
        p for p in (runs / "shared").iterdir() if p.is_dir() and p.name != "animalcnn-assets"
    ]
    assert len(folders) == 4 and all((f / "metrics.json").exists() for f in folders)
    code, out, err = cli("sweep", path, "--runs-dir", runs)
    assert code == 0, err
    assert "trial 4" not in out and len(pd.read_csv(runs / "shared" / "sweep.csv")) == 4
    code, out, _ = cli("compare", runs / "shared", "--csv", tmp_path / "c.csv")
    assert code == 0 and len(pd.read_csv(tmp_path / "c.csv")) == 4


def test_a_random_sweep_stops_at_its_trials_and_writes_its_outputs(cli, tmp_path, tiny):
    space = {"training.learning_rate": {"low": 0.001, "high": 0.01, "log": True}}
    path = _sweep(tmp_path, tiny, "rand", method="random", trials=3, parameters=space)
    code, out, err = cli("sweep", path, "--runs-dir", tmp_path / "runs")
    assert code == 0, err
    table = pd.read_csv(tmp_path / "runs" / "rand" / "sweep.csv")
    assert table["trial"].tolist() == [0, 1, 2] and set(table["state"]) == {"complete"}
    assert table["training.learning_rate"].between(0.001, 0.01).all()
    assert "best: trial" in out and "--set 'training.learning_rate=" in out
    for run in table["run"]:
        metrics = yaml.safe_load(Path(run, "metrics.json").read_text())
        assert metrics["sweep"]["name"] == "rand" and "trial" in metrics["sweep"]
        assert Path(run).name.startswith("rand-trial00")
    page = (tmp_path / "runs" / "rand" / "sweep.html").read_text()
    (script,) = re.findall(r'<script src="([^"]+)"', page)  # plotly.js beside it, shared
    assert (tmp_path / "runs" / "rand" / script).is_file() and "Trials" in page
    best = page.split('id="best"')[1].split("</div>")[0]
    assert "Best: trial" in best and "animalcnn train " in best and "rand-trial0" in best
    assert "parameter importances: 3 complete trial(s)" in page  # too few: a line, no plot
    code, out, _ = cli("sweep", path, "--runs-dir", tmp_path / "runs", "--trials", "4")
    assert code == 0 and len(pd.read_csv(tmp_path / "runs" / "rand" / "sweep.csv")) == 4
    (tmp_path / "runs" / "rand" / "sweep.csv").unlink()
    imported, output = imports_tensorflow(
        "sweep", str(path), "--runs-dir", str(tmp_path / "runs"), "--report-only"
    )  # reads the study, trains nothing
    assert not imported and "best: trial" in output, output
    assert len(pd.read_csv(tmp_path / "runs" / "rand" / "sweep.csv")) == 4
    code, _, err = cli("sweep", path, "--runs-dir", tmp_path / "elsewhere", "--report-only")
    assert code == 2 and err.strip() == (
        f"error: {tmp_path / 'elsewhere' / 'rand' / 'sweep.journal'}: the sweep rand has not "
        "run here (no journal)"
    )
    assert not (tmp_path / "elsewhere").exists()
    assert list(table.columns) == [
        "trial",
        "state",
        "value",
        "run",
        "training.learning_rate",
        "seconds",
    ]


def test_a_database_url_holds_the_study(cli, tmp_path, tiny):
    """How machines share a sweep: any storage URL Optuna takes (SQLite here)."""
    import optuna

    space = {"training.learning_rate": {"values": [0.002, 0.003]}}
    path = _sweep(tmp_path, tiny, "db", parameters=space)
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    code, _, err = cli("sweep", path, "--runs-dir", tmp_path / "runs", "--storage", url)
    assert code == 0, err
    study = optuna.load_study(study_name="db", storage=url)
    assert sorted(t.params["training.learning_rate"] for t in study.trials) == [0.002, 0.003]
    assert not (tmp_path / "runs" / "db" / "sweep.journal").exists()


def test_the_median_pruner_stops_a_hopeless_trial_early(cli, tmp_path):
    from .test_interpret import _corner_dataset

    data = _corner_dataset(tmp_path / "corners", 24, seed=5)  # easy to learn ...
    config = write_config(
        tmp_path / "corner.yaml",
        data,
        tmp_path / "unused",
        model={"arch": "mid", "params": {"filters": [8, 16], "dense": 16, "dropout": 0.0}},
        training={"epochs": 6},
    )
    lrs = [0.003, 0.004, 1e-9]  # ... but not at the last rate: it learns nothing
    path = _sweep(
        tmp_path,
        config,
        "prune",
        pruner="median",
        seed=0,
        pruner_startup_trials=2,
        parameters={"training.learning_rate": {"values": lrs}},
    )
    code, out, err = cli("sweep", path, "--runs-dir", tmp_path / "runs")
    assert code == 0, err
    table = pd.read_csv(tmp_path / "runs" / "prune" / "sweep.csv").set_index("trial")
    hopeless = table[table["training.learning_rate"] == 1e-9].iloc[0]
    assert hopeless["state"] == "pruned", table
    assert (table["state"] == "complete").sum() == 2
    metrics = yaml.safe_load(Path(hopeless["run"], "metrics.json").read_text())
    assert metrics["status"] == "pruned" and metrics["epochs_run"] < 6


def test_a_dead_workers_trial_does_not_block_the_sweep(cli, tmp_path, tiny):
    from animalcnn.sweep.spec import load_sweep
    from animalcnn.sweep.storage import open_study, storage_for

    path = _sweep(
        tmp_path, tiny, "dead", parameters={"training.learning_rate": {"values": [0.002, 0.003]}}
    )
    spec = load_sweep(path)
    study = open_study(spec, storage_for(spec, tmp_path / "runs" / "dead", None))
    trial = study.ask()  # a worker took a point, then died
    trial.suggest_categorical("training.learning_rate", [0.002, 0.003])
    trial.set_user_attr("process", {"host": socket.gethostname(), "pid": 2**22 + 7, "start": 1})
    code, out, err = cli("sweep", path, "--runs-dir", tmp_path / "runs")
    assert code == 0, err
    assert "1 trial(s) whose process died marked failed" in err
    table = pd.read_csv(tmp_path / "runs" / "dead" / "sweep.csv")
    assert sorted(table["state"]) == ["complete", "complete", "failed"]  # the point retried
    done = table[table["state"] == "complete"]["training.learning_rate"]
    assert sorted(done) == [0.002, 0.003]


@pytest.mark.slow
def test_the_sweep_page_draws_offline_and_sorts_in_a_browser(cli, tmp_path, tiny, browser):
    path = _sweep(
        tmp_path,
        tiny,
        "page",
        method="random",
        trials=3,
        parameters={"training.learning_rate": {"low": 0.001, "high": 0.01}},
    )
    assert cli("sweep", path, "--runs-dir", tmp_path / "runs")[0] == 0
    page = browser.new_page()
    page.goto((tmp_path / "runs" / "page" / "sweep.html").as_uri())
    page.wait_for_selector(".main-svg")
    titles = " ".join(page.locator(".gtitle").all_text_contents())
    assert "val_accuracy per epoch, every trial" in titles  # intermediate values drawn
    assert "Best: trial" in page.locator("#best").inner_text()
    header = page.locator("table.trials th", has_text="val_accuracy")
    header.click()  # highest first: the best trial on top
    assert "best" in page.locator("table.trials tbody tr").first.inner_text()
    page.close()


def test_pruners_wait_for_the_second_epoch_and_a_few_complete_trials(tmp_path, tiny):
    import optuna

    from animalcnn.sweep.spec import load_sweep
    from animalcnn.sweep.storage import _pruner

    for name in ("median", "hyperband"):
        spec = load_sweep(
            _sweep(
                tmp_path,
                tiny,
                f"p{name}",
                pruner=name,
                parameters={"training.learning_rate": {"values": [0.1]}},
            )
        )
        study = optuna.create_study(direction="maximize", pruner=_pruner(spec))
        for good in range(spec.pruner_startup_trials + 1):
            if good == spec.pruner_startup_trials - 1:  # one short of the startup trials
                lagging = study.ask()
                lagging.report(0.0, 2)
                assert not lagging.should_prune(), name
                study.tell(lagging, state=optuna.trial.TrialState.FAIL)
            trial = study.ask()
            for epoch in range(1, 6):
                trial.report(0.9, epoch)
            study.tell(trial, 0.9)
        hopeless = study.ask()
        hopeless.report(0.0, 1)
        assert not hopeless.should_prune(), name  # never judged on its first epoch
        if name == "median":  # (Hyperband judges by its brackets: it may wait longer)
            hopeless.report(0.0, 2)
            assert hopeless.should_prune()


def test_the_shipped_sweeps_validate_and_the_seed_grid_is_the_notebook():
    from animalcnn.sweep.spec import load_sweep
    from animalcnn.sweep.trials import planned

    from .conftest import CONFIGS

    seed = load_sweep(CONFIGS / "sweeps" / "seed.yaml")
    names = sorted(b.stem for b in seed.bases)
    custom = ["inception", "mid", "resnet", "resnet_aug", "simple"]
    backbones = [
        f"{n}_{s}"
        for n in ("mobilenetv2", "resnet50v2", "xception")
        for s in ("finetune", "partial", "transfer")
    ]
    assert names == sorted(custom + backbones) and planned(seed) == 14
    demo = load_sweep(CONFIGS / "sweeps" / "demo.yaml")
    assert demo.method == "grid" and planned(demo) == 4
