"""Distribution, precision, XLA and cache modes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from animalcnn.runtime import is_chief

from .conftest import write_config


def _run_folder(runs_dir: Path) -> Path:
    (run,) = runs_dir.iterdir()
    return run


def test_mirrored_strategy_over_two_logical_cpus(dataset: Path, tmp_path: Path):
    config = write_config(
        tmp_path / "mirrored.yaml", dataset, tmp_path / "runs",
        distribute={"strategy": "mirrored", "virtual_cpus": 2},
    )  # fmt: skip
    # Logical devices must be set before TensorFlow starts: a process of its own.
    done = subprocess.run(
        [sys.executable, "-m", "animalcnn", "train", str(config)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "MirroredStrategy over 2 replicas" in done.stdout
    metrics = json.loads((_run_folder(tmp_path / "runs") / "metrics.json").read_text())
    assert metrics["replicas"] == 2 and metrics["status"] == "completed"
    assert metrics["epochs_run"] == 2


def test_mixed_precision_and_xla_switch_on_by_config(cli, dataset: Path, tmp_path: Path):
    import keras

    config = write_config(
        tmp_path / "fast.yaml", dataset, tmp_path / "runs",
        training={"epochs": 1, "mixed_precision": "on", "jit_compile": "on",
                  "deterministic": False},
    )  # fmt: skip
    try:
        code, out, err = cli("train", config)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert code == 0, err
    assert "mixed precision on, XLA on" in out
    run = _run_folder(tmp_path / "runs")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["mixed_precision"] is True and metrics["jit_compile"] is True
    model = keras.saving.load_model(run / "model.keras", compile=False)
    assert model.get_layer("conv1").dtype_policy.name == "mixed_float16"
    assert model.get_layer("predictions").dtype_policy.name == "float32"


def test_switches_read_yaml_booleans_and_xla_needs_nondeterminism(tmp_path: Path):
    from animalcnn.config import load_config
    from animalcnn.errors import ConfigError

    path = tmp_path / "c.yaml"
    path.write_text("training: {mixed_precision: on, jit_compile: off}\n")
    cfg = load_config(path)
    assert (cfg.training.mixed_precision, cfg.training.jit_compile) == ("on", "off")
    with pytest.raises(ConfigError, match="jit_compile: on needs training.deterministic: false"):
        load_config(path, ["training.jit_compile=on"])


def test_cache_modes_train_identically(cli, dataset: Path, tmp_path: Path):
    histories = {}
    for mode in ("memory", "disk", "none"):
        config = write_config(
            tmp_path / f"{mode}.yaml", dataset, tmp_path / mode,
            data={"cache": mode, "cache_dir": str(tmp_path / "cache")},
        )  # fmt: skip
        code, _, err = cli("train", config)
        assert code == 0, err
        histories[mode] = pd.read_csv(_run_folder(tmp_path / mode) / "history.csv")
    assert list((tmp_path / "cache").glob("*.npy")), "data.cache: disk keeps a cache file"
    for mode in ("disk", "none"):
        pd.testing.assert_frame_equal(
            histories[mode].drop(columns="seconds"), histories["memory"].drop(columns="seconds")
        )


def test_multi_worker_needs_tf_config(cli, dataset: Path, tmp_path: Path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    config = write_config(
        tmp_path / "mw.yaml", dataset, tmp_path / "runs", distribute={"strategy": "multi_worker"}
    )
    code, _, err = cli("train", config)
    assert code == 2 and "multi_worker needs the TF_CONFIG environment variable" in err
    assert not (tmp_path / "runs").exists()


def _tf_config(cluster: dict, task_type: str, index: int) -> str:
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


WORKERS = {"worker": ["a:1", "b:1"]}
WITH_CHIEF = {"chief": ["c:1"], "worker": ["a:1"]}


@pytest.mark.parametrize(
    ("tf_config", "chief"),
    [
        (None, True),
        (_tf_config(WORKERS, "worker", 0), True),
        (_tf_config(WORKERS, "worker", 1), False),
        (_tf_config(WITH_CHIEF, "worker", 0), False),
        (_tf_config(WITH_CHIEF, "chief", 0), True),
    ],
)
def test_only_the_chief_keeps_the_run_folder(tf_config, chief):
    assert is_chief(tf_config) is chief
