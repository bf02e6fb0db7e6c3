"""Distribution, precision, XLA and cache modes."""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from animalcnn import backends
from animalcnn.backends.runtime import is_chief
from animalcnn.data.synthetic import SHAPES, make_dataset

from .conftest import assert_histories_close, write_config


def _run_folder(runs_dir: Path) -> Path:
    (run,) = runs_dir.iterdir()
    return run


@pytest.mark.slow
def test_mirrored_strategy_over_two_logical_cpus(dataset: Path, tmp_path: Path):
    config = write_config(
        tmp_path / "mirrored.yaml",
        dataset,
        tmp_path / "runs",
        distribute={"strategy": "mirrored", "virtual_cpus": 2},
    )
    # Logical devices must be set before TensorFlow starts: a process of its own.
    done = subprocess.run(
        [sys.executable, "-m", "animalcnn", "train", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert done.returncode == 0, done.stderr
    assert "MirroredStrategy over 2 replicas" in done.stdout
    metrics = json.loads((_run_folder(tmp_path / "runs") / "metrics.json").read_text())
    assert metrics["replicas"] == 2 and metrics["status"] == "completed"
    assert metrics["epochs_run"] == 2


def test_mixed_precision_and_xla_switch_on_by_config(cli, dataset: Path, tmp_path: Path):
    import keras

    config = write_config(
        tmp_path / "fast.yaml",
        dataset,
        tmp_path / "runs",
        training={
            "epochs": 1,
            "mixed_precision": "float16",
            "jit_compile": "on",
            "deterministic": False,
        },
    )
    try:
        code, out, err = cli("train", config)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert code == 0, err
    assert "precision mixed_float16, XLA on" in out
    run = _run_folder(tmp_path / "runs")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["precision"] == "mixed_float16" and metrics["jit_compile"] is True
    model = keras.saving.load_model(run / "model.keras", compile=False)
    assert model.get_layer("conv1").dtype_policy.name == "mixed_float16"
    assert model.get_layer("predictions").dtype_policy.name == "float32"


def test_switches_read_yaml_booleans_and_xla_needs_nondeterminism(tmp_path: Path):
    from animalcnn.errors import ConfigError
    from animalcnn.models.configs import load_config

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
            tmp_path / f"{mode}.yaml",
            dataset,
            tmp_path / mode,
            data={"cache": mode, "cache_dir": str(tmp_path / "cache")},
        )
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


# Two workers over loopback, each a process of its own. The simple network has no
# random layers, so splitting each global batch across workers must train as one
# process does, up to the order of float sums; lr_patience 1 makes the plateau
# counter part of what resumes.
MW_EPOCHS = 6


def _mw_config(tmp_path: Path, dataset: Path, strategy: str, name: str = "") -> Path:
    return write_config(
        tmp_path / f"{name or strategy}.yaml",
        dataset,
        tmp_path / strategy,
        training={"epochs": MW_EPOCHS, "lr_patience": 1, "val_patience": 50},
        distribute={"strategy": strategy},
    )


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, dataset: Path) -> pd.DataFrame:
    from typer.testing import CliRunner

    from animalcnn.cli import app

    tmp = tmp_path_factory.mktemp("one")
    result = CliRunner().invoke(app, ["train", str(_mw_config(tmp, dataset, "none"))])
    assert result.exit_code == 0, result.stdout + result.stderr
    return pd.read_csv(_run_folder(tmp / "none") / "history.csv").drop(columns="seconds")


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _workers(args: list[str], scratch: Path, interrupt_when: Path | None = None) -> list[tuple]:
    """Run `animalcnn ARGS` as worker 0 and 1 of a loopback cluster; (code, out, err) each.

    With `interrupt_when`, send SIGINT to the chief (worker 0) once a file matching
    that glob exists.
    """
    cluster = {"worker": [f"localhost:{p}" for p in _free_ports(2)]}
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        env = {
            **os.environ,
            "TF_CONFIG": tf_config,
            "TMPDIR": str(scratch),
            "CUDA_VISIBLE_DEVICES": "",
            "PYTHONUNBUFFERED": "1",
        }
        command = [sys.executable, "-m", "animalcnn", *args]
        pipe = subprocess.PIPE
        procs.append(subprocess.Popen(command, stdout=pipe, stderr=pipe, text=True, env=env))
    if interrupt_when is not None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not glob.glob(str(interrupt_when)):
            if any(proc.poll() is not None for proc in procs):
                break
            time.sleep(0.02)
        procs[0].send_signal(signal.SIGINT)
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        results.append((proc.returncode, out, err))
    return results


def _assert_trains_like_one_process(run: Path, one_process: pd.DataFrame) -> None:
    history = pd.read_csv(run / "history.csv").drop(columns="seconds")
    images = json.loads((run / "metrics.json").read_text())["images"]
    assert_histories_close(history, one_process, images["train"], images["val"])


@pytest.mark.slow
def test_two_workers_train_as_one_process_does_and_resume_together(
    dataset: Path, tmp_path: Path, one_process
):
    """Two configs in one process reuse the cluster (a second one would collide with
    it); the chief interrupted during the second stops the cluster, and both resume it.
    Each run trains as one process does."""
    first = _mw_config(tmp_path, dataset, "multi_worker")
    second = _mw_config(tmp_path, dataset, "multi_worker", name="second")
    runs = tmp_path / "multi_worker"
    chief, worker = _workers(
        ["train", str(first), str(second)], tmp_path, interrupt_when=runs / "second-*/state.json"
    )
    assert chief[0] == 130, chief[2]
    for out in (chief[1], worker[1]):
        assert out.count("CollectiveAllReduceStrategy over 2 replicas") == 2
    assert "this worker's share; the chief keeps the run folder" in worker[1]
    assert f"train --resume {runs}" in chief[2] and "on every worker" in chief[2]
    # The other worker loses its peer mid-step: it fails, saying so in one line.
    assert worker[0] == 1 and "Traceback" not in worker[2]
    (failure,) = [line for line in worker[2].splitlines() if line.startswith("failed:")]
    assert re.fullmatch(r"failed: .+: failed: \w+: .{8,} \(see error\.log\)", failure), failure
    assert "Graph execution error" not in failure
    done, run = sorted(runs.iterdir())  # the chief's, and only those: multi_worker-, second-
    metrics = json.loads((done / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["replicas"] == 2
    _assert_trains_like_one_process(done, one_process)
    cut = len(json.loads((run / "state.json").read_text())["rows"])
    assert 1 <= cut < MW_EPOCHS
    assert json.loads((run / "metrics.json").read_text())["status"] == "interrupted"

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (c0, out0, err0), (c1, out1, err1) = _workers(["train", "--resume", str(run)], scratch)
    assert c0 == 0 and c1 == 0, err0 + err1
    assert f"after epoch {cut}" in out0 and f"after epoch {cut}" in out1
    assert "this worker's share" in out1
    assert json.loads((run / "metrics.json").read_text())["status"] == "completed"
    _assert_trains_like_one_process(run, one_process)
    assert not list(scratch.iterdir()), "worker 1's scratch copies are removed"


def test_a_batch_splits_evenly_over_devices_and_processes():
    from animalcnn.data.sharding import Share

    idx = np.arange(100, 107)  # a last batch of 7 rows, over 2 processes of 2 devices each
    first, second = Share(4, 0, 2), Share(4, 1, 2)
    # Training drops the 3 rows that would not split; each process feeds its own block.
    assert first.training(idx).tolist() == [100, 101]
    assert second.training(idx).tolist() == [102, 103]
    # Evaluation pads with the last image, weighted 0, so each image counts exactly once.
    (a, wa), (b, wb) = first.evaluation(idx), second.evaluation(idx)
    assert a.tolist() == [100, 101, 102, 103] and b.tolist() == [104, 105, 106, 106]
    assert wa.tolist() == [1, 1, 1, 1] and wb.tolist() == [1, 1, 1, 0]
    assert first.padding(7) == 1 and Share().training(idx).tolist() == idx.tolist()


# JAX's DataParallel splits each batch evenly: over two devices of one process (XLA's host
# platform split in two), and over two processes on loopback (`jax.distributed`), each
# feeding its half. 30 training images in batches of 10 split evenly; the 3 validation
# images are padded to 4 with a row weighted 0. Either way it must train as one device
# does; the two processes also stop together when one is interrupted, and resume.
JAX_ONLY = pytest.mark.skipif(not backends.installed("jax"), reason="no JAX")
TWO_DEVICES = "--xla_force_host_platform_device_count=2"


def _jax(args: list[str], **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "animalcnn", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "KERAS_BACKEND": "jax", "CUDA_VISIBLE_DEVICES": "", **env},
    )


def _ended(proc: subprocess.Popen, code: int = 0) -> tuple[str, str]:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == code, err
    return out, err


def _jax_hosts(args: list[str], scratch: Path) -> list[subprocess.Popen]:
    """`animalcnn ARGS` as processes 0 and 1 of a loopback JAX cluster."""
    hosts = {
        "JAX_COORDINATOR_ADDRESS": f"localhost:{_free_ports(1)[0]}",
        "JAX_NUM_PROCESSES": "2",
        "TMPDIR": str(scratch),
    }
    return [_jax(args, **hosts, JAX_PROCESS_ID=str(i)) for i in range(2)]


@pytest.mark.slow
@JAX_ONLY
def test_jax_splits_batches_over_devices_and_hosts_and_trains_as_one_device(tmp_path: Path):
    data = make_dataset(tmp_path / "data", 11, 2, unlabeled=0, size=32, classes=SHAPES[:3])
    sections = {
        "data": {"batch_size": 10, "val_fraction": 0.09},
        "training": {"epochs": MW_EPOCHS, "backend": "jax", "learning_rate": 0.01},
    }
    config = write_config(tmp_path / "j.yaml", data, tmp_path / "runs", **sections)
    train = ["train", str(config), "--runs-dir"]
    # One process with two devices (one start-up for three configs): the reference on one
    # device (strategy none), the config over both, and a batch that two devices cannot
    # split, refused before it has a run folder.
    one = write_config(
        tmp_path / "one.yaml", data, tmp_path / "runs", distribute={"strategy": "none"}, **sections
    )
    odd = write_config(
        tmp_path / "odd.yaml",
        data,
        tmp_path / "runs",
        data={"batch_size": 9},
        training={"backend": "jax"},
    )
    devices = _jax(
        ["train", str(one), str(config), str(odd), "--runs-dir", str(tmp_path / "devices")],
        XLA_FLAGS=TWO_DEVICES,
    )
    out, err = _ended(devices, 1)
    assert "DataParallel over 2 devices" in out and f"{odd}: error" in out
    assert err.strip().endswith(
        "data.batch_size: 9 does not split evenly over 2 devices (JAX's DataParallel gives "
        "each as many images); use a multiple of 2"
    )
    (reference_run,) = (tmp_path / "devices").glob("one-*")
    assert json.loads((reference_run / "metrics.json").read_text())["replicas"] == 1
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    hosts = tmp_path / "hosts"
    chief, worker = _jax_hosts(
        [*train, str(hosts), "--set", "distribute.strategy=multi_worker"], scratch
    )
    deadline = time.monotonic() + 120
    while not glob.glob(str(hosts / "*/state.json")) and time.monotonic() < deadline:
        time.sleep(0.02)
    chief.send_signal(signal.SIGINT)
    _ended(chief, 130)
    run = _run_folder(hosts)  # (the chief's, and only that)
    cut = len(json.loads((run / "state.json").read_text())["rows"])
    assert 1 <= cut < MW_EPOCHS
    assert (
        _ended(worker, 130)[1]
        .strip()
        .endswith(
            f"interrupted: this worker's share: interrupted: stopped after epoch {cut}; continue "
            "with: animalcnn train --resume <the chief's run folder>, on every worker"
        )
    )
    for proc in _jax_hosts(["train", "--resume", str(run)], scratch):
        assert f"after epoch {cut}" in _ended(proc)[0]
    assert not list(scratch.iterdir()), "worker 1's scratch copies are removed"
    reference = pd.read_csv(reference_run / "history.csv")
    for layout in ("devices", "hosts"):
        (run,) = (tmp_path / layout).glob("j-*")
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["images"]["train"] == 30 and metrics["images"]["val"] == 3
        assert metrics["status"] == "completed" and metrics["replicas"] == 2
        history = pd.read_csv(run / "history.csv")
        assert_histories_close(
            history.drop(columns="seconds"), reference.drop(columns="seconds"), 30, 3, samples=0
        )


def test_only_a_workers_own_scratch_folder_is_removed(tmp_path: Path, capsys):
    from animalcnn.run_folder import RunFolder
    from animalcnn.training.session import _drop_worker_scratch, _worker_scratch

    theirs = tmp_path / "runs" / "mine-1"  # a folder the user named: kept
    theirs.mkdir(parents=True)
    _drop_worker_scratch(RunFolder(theirs))
    assert (
        theirs.is_dir()
        and "not a worker's scratch folder; left as it is" in capsys.readouterr().err
    )
    ours = _worker_scratch() / "mine-1"
    ours.mkdir()
    _drop_worker_scratch(RunFolder(ours))
    assert not ours.parent.exists()
