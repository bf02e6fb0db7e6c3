"""Keras backends: JAX and PyTorch train, resume, evaluate, predict and explain with no
TensorFlow installed; a run trained on one backend gives the same predictions on
another; configs on different backends train in processes of their own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from animalcnn import backends

from .conftest import assert_histories_close, write_config

NO_TENSORFLOW = Path(__file__).parent / "support"  # its sitecustomize blocks tensorflow
NO_TORCH = "PyTorch is not installed: make test-torch"
BACKENDS = [
    pytest.param("jax", marks=pytest.mark.skipif(not backends.installed("jax"), reason="no JAX")),
    pytest.param(
        "torch", marks=pytest.mark.skipif(not backends.installed("torch"), reason=NO_TORCH)
    ),
]


def _without_tensorflow(backend: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return {
        **env,
        "PYTHONPATH": str(NO_TENSORFLOW),
        "KERAS_BACKEND": backend,
        "CUDA_VISIBLE_DEVICES": "",
    }


def _run(env: dict[str, str], *args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "animalcnn", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=400,
    )


# Commands in turn in one interpreter without TensorFlow, through the entry point each
# `animalcnn CMD` runs (one start-up for them all): each command's exit code and stderr.
COMMANDS = """
import json, sys
from animalcnn.cli import app
for argv in json.loads(sys.argv[1]):
    try:
        app(argv, prog_name="animalcnn")
    except SystemExit as exc:
        code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
    print(f"\\n@@ {code}", file=sys.stderr, flush=True)
"""


def _commands(env: dict[str, str], *commands: tuple) -> list[tuple[int, str]]:
    argv = json.dumps([[str(a) for a in command] for command in commands])
    done = subprocess.run(
        [sys.executable, "-c", COMMANDS, argv], capture_output=True, text=True, env=env, timeout=400
    )
    parts = done.stderr.split("\n@@ ")
    assert done.returncode == 0 and len(parts) == len(commands) + 1, done.stderr
    return [(int(p.split("\n", 1)[0]), err) for err, p in zip(parts, parts[1:], strict=False)]


def _interrupted_after_first_epoch(env: dict[str, str], config: Path) -> None:
    """`train` stopped by Ctrl-C once its first epoch line is out."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "animalcnn", "train", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    for line in proc.stdout:
        if line.startswith("epoch   1/"):
            proc.send_signal(signal.SIGINT)
            break
    proc.communicate(timeout=300)
    assert proc.returncode == 130


def test_the_backend_is_chosen_from_the_config_the_environment_or_what_is_installed(
    monkeypatch,
):
    from animalcnn.errors import ConfigError

    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    assert backends.choose("auto") == "tensorflow" and backends.choose("jax") == "jax"
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert backends.choose("auto") == "jax" and backends.choose("torch") == "torch"
    backends.start("tensorflow")  # (as every command in this test process does)
    assert backends.loaded() == "tensorflow"
    with pytest.raises(ConfigError) as info:
        backends.activate("jax")
    assert str(info.value) == (
        "training.backend: jax, but this process already runs Keras "
        "on tensorflow; run this config in a process of its own"
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_run_trains_resumes_and_is_used_without_tensorflow(cli, dataset, tmp_path, backend):
    env = _without_tensorflow(backend)
    runs = tmp_path / "runs"
    # A modern recipe (decay, schedule, smoothing, MixUp/CutMix, EMA) must resume there too.
    recipe = {
        "optimizer": "adamw",
        "weight_decay": 0.05,
        "schedule": "cosine",
        "warmup_epochs": 1,
        "label_smoothing": 0.1,
        "ema": {"decay": 0.9},
        "batch_augmentation": [{"type": "mixup"}, {"type": "cutmix"}],
    }
    config = write_config(
        tmp_path / "b.yaml",
        dataset,
        runs,
        training={"epochs": 3, "backend": backend, **recipe},
        model={
            "arch": "simple",
            "params": {"activation": "relu"},
            "augmentation": [{"type": "flip"}],
        },
    )
    # The uninterrupted reference, beside a TensorFlow run: `train a.yaml b.yaml` with
    # two backends trains the second in a process of its own.
    tf = write_config(tmp_path / "tf.yaml", dataset, tmp_path / "whole", training={"epochs": 1})
    code, out, err = cli("train", tf, config, "--runs-dir", tmp_path / "whole")
    assert code == 0, err
    assert f"{config}: training on {backend} in a process of its own" in out.replace("\n", "")
    _interrupted_after_first_epoch(env, config)
    (run,) = runs.iterdir()
    # The resume first, then what a user does with the run: one start-up for them all.
    commands = [
        ("train", "--resume", run),
        ("evaluate", run),
        ("explain", run, dataset / "inf", "--out", tmp_path / "x"),
        ("predict", run, dataset / "inf", "--csv", tmp_path / "theirs.csv"),
        ("export", run, "--format", "tflite"),
        # lr-find runs its 100 rising rates over several epochs' batches (5 an epoch)
        ("lr-find", config, "--out", tmp_path / "lr"),
    ]
    if backend == "torch":  # exported without its flip layer (torch.onnx cannot trace one)
        commands.append(("export", run, "--format", "onnx", "--out", tmp_path / "m.onnx"))
    for args, (code, err) in zip(commands, _commands(env, *commands), strict=True):
        assert "Traceback" not in err, (args, err)
        if args[0] == "export" and args[3] == "tflite":  # TensorFlow's own formats need it
            assert code == 2 and "tflite: needs TensorFlow" in err
        elif args[0] == "export":
            assert code == 0 and (tmp_path / "m.onnx").is_file(), err
        else:
            assert code == 0, (args, err)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["backend"] == backend and metrics["status"] == "completed"
    backends_of = {
        json.loads((r / "metrics.json").read_text())["backend"]: r
        for r in (tmp_path / "whole").iterdir()
    }
    assert set(backends_of) == {"tensorflow", backend}
    uninterrupted = backends_of[backend]
    assert cli("compare", *backends_of.values(), "--csv", tmp_path / "c.csv")[0] == 0
    assert sorted(pd.read_csv(tmp_path / "c.csv")["backend"]) == sorted(["tensorflow", backend])
    assert_histories_close(
        pd.read_csv(uninterrupted / "history.csv"), pd.read_csv(run / "history.csv"), 70, 10
    )
    assert json.loads((run / "evaluation.json").read_text())["images"] == 20
    assert len(list((tmp_path / "x").glob("*_gradcam.png"))) == 6
    assert len(pd.read_csv(tmp_path / "lr" / "lr_find.csv")) > 3 * 5
    # The same model file on TensorFlow (this process): the same predictions.
    code, _, err = cli("predict", run, dataset / "inf", "--csv", tmp_path / "ours.csv")
    assert code == 0, err
    theirs, ours = pd.read_csv(tmp_path / "theirs.csv"), pd.read_csv(tmp_path / "ours.csv")
    columns = [c for c in ours.columns if c.startswith("p_")]
    np.testing.assert_allclose(theirs[columns], ours[columns], atol=1e-4)
    assert (theirs["predicted"] == ours["predicted"]).all()


def test_a_strategy_a_backend_cannot_honour_is_one_line(dataset, tmp_path):
    if not backends.installed("torch"):
        pytest.skip(NO_TORCH)
    config = write_config(
        tmp_path / "m.yaml", dataset, tmp_path / "runs", distribute={"strategy": "mirrored"}
    )
    done = _run(_without_tensorflow("torch"), "train", config, "--set", "training.backend=torch")
    assert done.returncode == 2 and done.stderr.strip() == (
        "error: distribute: PyTorch trains on one device here (strategy auto or none; "
        "training.backend jax or tensorflow spread over several)"
    )
    assert not (tmp_path / "runs").exists()


# Configure two runs in one process, the second wanting the other setting, and print what
# the backend reads each time.
DETERMINISM_PROBE = """
import os, sys
from animalcnn.backends import {backend} as runtime
from animalcnn.config import ExperimentConfig

def cfg(on):
    return ExperimentConfig.model_validate(
        {{"name": "d", "data": {{"dir": "."}}, "training": {{"deterministic": on}}}})

for on in (sys.argv[1] == "on", sys.argv[1] != "on"):
    runtime.configure(cfg(on))
    print({shown})
"""


def _probe(backend: str, shown: str, setting: str, env: dict[str, str]) -> list[str]:
    probe = DETERMINISM_PROBE.format(backend=backend, shown=shown)
    done = subprocess.run(
        [sys.executable, "-c", probe, setting], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr  # (on a GPU JAX's second run would be told)
    return done.stdout.splitlines()


@pytest.mark.skipif(not backends.installed("jax"), reason="no JAX")
@pytest.mark.parametrize("setting", ["on", "off"])
def test_jax_determinism_reaches_xla_before_its_devices_start(setting):
    user = "--xla_cpu_enable_fast_math=false"
    env = {**_without_tensorflow("jax"), "XLA_FLAGS": f"{user} --xla_gpu_deterministic_ops=false"}
    wanted = f"{user} --xla_gpu_deterministic_ops=true" if setting == "on" else user
    # XLA has read its flags by the second run: they are left as the first one set them.
    assert _probe("jax", 'os.environ["XLA_FLAGS"]', setting, env) == [wanted, wanted]


def test_torch_determinism_sets_its_algorithms_and_cublas_workspace():
    if not backends.installed("torch"):
        pytest.skip(NO_TORCH)
    shown = (
        'os.environ.get("CUBLAS_WORKSPACE_CONFIG"), '
        "runtime.torch.are_deterministic_algorithms_enabled()"
    )
    env = {k: v for k, v in _without_tensorflow("torch").items() if k != "CUBLAS_WORKSPACE_CONFIG"}
    # The workspace setting stays once set (cuBLAS may have read it); the algorithms follow.
    assert _probe("torch", shown, "on", env) == [":4096:8 True", ":4096:8 False"]
    mine = {**env, "CUBLAS_WORKSPACE_CONFIG": ":16:8"}
    assert _probe("torch", shown, "on", mine)[0] == ":16:8 True"
