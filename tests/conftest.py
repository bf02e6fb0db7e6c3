"""Shared fixtures: tiny generated image folders and one trained run per session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from animalcnn.data.synthetic import make_dataset

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"


# Lines as wide as their contents while tests run, so they find whole paths and
# sentences whatever the temporary folder's length or the caller's terminal (the width
# tests run commands with COLUMNS of their choosing); pytest's own report keeps the
# terminal's width.
WIDE = 1000


@pytest.fixture(scope="session", autouse=True)
def wide_consoles() -> None:
    """In-process commands print through the consoles made when animalcnn is imported."""
    from animalcnn.console import console, err_console

    console.width = err_console.width = WIDE


@pytest.fixture(autouse=True)
def wide_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """... and commands in processes of their own read COLUMNS."""
    monkeypatch.setenv("COLUMNS", str(WIDE))


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5 classes, 16 training and 4 test images each, 32x32, formats mixed."""
    return make_dataset(tmp_path_factory.mktemp("data") / "shapes", 16, 4, unlabeled=6, size=32)


def write_config(path: Path, data_dir: Path, runs_dir: Path, **sections: dict) -> Path:
    """A tiny, fast config (simple network, 32x32, 2 epochs, float32), with sections
    overridden. Float32 whatever the CPU: `mixed_precision: auto` computes in bfloat16
    where the CPU has AMX, and a test's figures must not hang on the machine it runs on
    (the tests of mixed precision ask for it by name)."""
    cfg = {
        "name": path.stem,
        "seed": 7,
        "data": {"dir": str(data_dir), "img_size": 32, "batch_size": 16},
        "model": {"arch": "simple", "params": {"activation": "relu"}},
        "training": {"epochs": 2, "learning_rate": 0.003, "mixed_precision": "off"},
        "output": {"runs_dir": str(runs_dir), "tensorboard": False},
    }
    for key, value in sections.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def cli():
    """Invoke the CLI in-process; returns (exit code, stdout, stderr)."""
    from animalcnn.cli import app

    runner = CliRunner()

    def invoke(*args: str):
        result = runner.invoke(app, [str(a) for a in args])
        return result.exit_code, result.stdout, result.stderr

    return invoke


def imports_tensorflow(*argv: str) -> tuple[bool, str]:
    """Whether `animalcnn ARGV` imports TensorFlow (run in a fresh interpreter), and what
    it printed."""
    code = (
        "import sys\nfrom animalcnn.cli import app\n"
        f"try:\n    app({list(argv)!r}, prog_name='animalcnn')\nexcept SystemExit:\n    pass\n"
        "print('TF-IMPORTED' if 'tensorflow' in sys.modules else 'NO-TF')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return "TF-IMPORTED" in out.stdout, out.stdout + out.stderr


def assert_histories_close(
    a: pd.DataFrame, b: pd.DataFrame, n_train: int, n_val: int, samples: int = 2
) -> None:
    """Two histories of one config trained in different processes or process layouts.

    Float sums may run in another order there (other CPU kernels, a reduction split
    across workers), so losses agree to float32 reduction noise and accuracies within
    `samples` images of the split they count; epochs, phases and learning rates agree.
    Compare a run with itself on one machine exactly instead.
    """
    assert a[["epoch", "phase"]].equals(b[["epoch", "phase"]])
    np.testing.assert_allclose(a["lr"], b["lr"], rtol=1e-6)
    for column in ("loss", "val_loss"):
        np.testing.assert_allclose(a[column], b[column], rtol=5e-3, atol=1e-4, err_msg=column)
    for column, n in (("accuracy", n_train), ("val_accuracy", n_val)):
        np.testing.assert_allclose(a[column], b[column], atol=samples / n + 1e-6, err_msg=column)


@pytest.fixture
def run_copy(trained_run: Path, tmp_path: Path) -> Path:
    """A copy of the shared run, for tests that write into a run folder (evaluate)."""
    return Path(shutil.copytree(trained_run, tmp_path / trained_run.name))


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, dataset: Path) -> Path:
    """One completed run of the tiny config, shared by the tests that only read it."""
    from animalcnn.cli import app

    tmp = tmp_path_factory.mktemp("trained")
    config = write_config(tmp / "tiny.yaml", dataset, tmp / "runs")
    result = CliRunner().invoke(app, ["train", str(config)])
    assert result.exit_code == 0, result.stdout + result.stderr
    (run,) = (tmp / "runs").iterdir()
    return run


BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium driven by Playwright (offline); skips where there is none."""
    path = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    playwright = pytest.importorskip("playwright.sync_api")
    if path is None:
        pytest.skip("no Chromium on this machine (.ci/run installs Debian's chromium)")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=path,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield chromium
        chromium.close()
