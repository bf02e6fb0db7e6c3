"""Mixed precision: the policy chosen per device, and training, determinism and resume
under bfloat16."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from animalcnn.backends.runtime import choose_precision, cpu_flags

from .conftest import write_config

SAPPHIRE_RAPIDS = frozenset({"avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"})
ICE_LAKE = frozenset({"avx512f", "avx512_vnni"})
COOPER_LAKE = frozenset({"avx512f", "avx512_bf16"})  # bfloat16 dot products, no AMX


@pytest.mark.parametrize(
    ("setting", "gpu", "flags", "policy"),
    [
        ("auto", True, ICE_LAKE, "mixed_float16"),
        ("auto", False, SAPPHIRE_RAPIDS, "mixed_bfloat16"),
        ("auto", False, COOPER_LAKE, "float32"),
        ("auto", False, ICE_LAKE, "float32"),
        ("auto", False, frozenset(), "float32"),
        ("on", True, SAPPHIRE_RAPIDS, "mixed_float16"),
        ("on", False, ICE_LAKE, "mixed_bfloat16"),
        ("off", True, SAPPHIRE_RAPIDS, "float32"),
        ("float16", False, SAPPHIRE_RAPIDS, "mixed_float16"),
        ("bfloat16", True, ICE_LAKE, "mixed_bfloat16"),
    ],
)
def test_policy_follows_the_device(setting, gpu, flags, policy):
    assert choose_precision(setting, gpu, flags) == policy


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx512_bf16 amx_bf16 amx_tile\n\n")
    assert cpu_flags(cpuinfo) == {"fpu", "avx512_bf16", "amx_bf16", "amx_tile"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


def _bf16_config(tmp_path: Path, dataset: Path, name: str, epochs: int = 2) -> Path:
    return write_config(
        tmp_path / f"{name}.yaml",
        dataset,
        tmp_path / name,
        data={"img_size": 36},
        model={
            "arch": "mid",
            "params": {"filters": [8, 16], "dense": 16, "dropout": 0.3},
            "augmentation": [{"type": "flip"}],
        },
        training={
            "epochs": epochs,
            "learning_rate": 0.005,
            "lr_patience": 1,
            "val_patience": 50,
            "mixed_precision": "bfloat16",
        },
    )


@pytest.fixture
def float32_after():
    yield
    keras.mixed_precision.set_global_policy("float32")


def _history(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "history.csv").drop(columns="seconds")


def test_bfloat16_trains_reloads_and_repeats_exactly(cli, dataset, tmp_path, float32_after):
    config = _bf16_config(tmp_path, dataset, "bf16")
    for _ in range(2):
        code, out, err = cli("train", config)
        assert code == 0, err
    assert "precision mixed_bfloat16" in out
    first, second = sorted((tmp_path / "bf16").iterdir())
    metrics = json.loads((first / "metrics.json").read_text())
    assert metrics["precision"] == "mixed_bfloat16"
    history = _history(first)
    assert np.isfinite(history[["loss", "val_loss"]].to_numpy()).all()
    assert history.equals(_history(second))  # same machine, same policy: the same run

    keras.mixed_precision.set_global_policy("float32")
    model = keras.saving.load_model(first / "model.keras", compile=False)
    assert model.get_layer("block1_conv1").dtype_policy.name == "mixed_bfloat16"
    assert model.get_layer("predictions").dtype_policy.name == "float32"
    probs = model.predict(np.full((2, 36, 36, 3), 128, np.float32), verbose=0)
    assert probs.dtype == np.float32 and np.allclose(probs.sum(axis=1), 1, atol=1e-5)

    code, out, _ = cli("compare", first, "--csv", tmp_path / "c.csv")
    assert code == 0 and pd.read_csv(tmp_path / "c.csv")["precision"][0] == "mixed_bfloat16"


class InterruptAfter(keras.callbacks.Callback):
    """Sends this process SIGINT at the end of epoch `n`, as Ctrl-C would."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch + 1 == self.n:
            os.kill(os.getpid(), signal.SIGINT)


def test_a_resumed_bfloat16_run_reproduces_the_uninterrupted_one(dataset, tmp_path, float32_after):
    from animalcnn.models.configs import load_config
    from animalcnn.run_folder import RunFolder
    from animalcnn.training.session import TrainingFailed, resume, start

    whole = start(load_config(_bf16_config(tmp_path, dataset, "whole", epochs=4)))
    with pytest.raises(TrainingFailed) as stopped:
        start(load_config(_bf16_config(tmp_path, dataset, "cut", epochs=4)), [InterruptAfter(2)])
    assert stopped.value.status == "interrupted"
    run = resume(RunFolder(stopped.value.run.path))
    assert run.metrics().status == "completed"
    pd.testing.assert_frame_equal(_history(run.path), _history(whole.path))
