"""End to end through the CLI: train, evaluate, compare, and the errors users meet."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from animalcnn.runs import HISTORY_COLUMNS

from .conftest import write_config


def test_run_folder_holds_everything(trained_run: Path):
    files = {p.name for p in trained_run.iterdir()}
    assert {"config.yaml", "history.csv", "model.keras", "metrics.json", "summary.txt"} <= files
    assert not [f for f in files if f.endswith(".tmp") or f.startswith(".")]
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    # conv 3x3x3x32 + 32, conv 3x3x32x64 + 64, dense (13*13*64)x5 + 5 at 32x32 input
    assert metrics["params"] == {"total": 73477, "trainable": 73477, "non_trainable": 0}
    assert metrics["classes"] == ["circle", "cross", "square", "stripes", "triangle"]
    assert metrics["images"] == {"train": 70, "val": 10}  # 15 % of 16 = 2 per class
    assert metrics["epochs_run"] == 2 and metrics["images_per_second"] > 0
    assert metrics["best_epoch"] in (1, 2) and metrics["wall_time_s"] > 0
    history = pd.read_csv(trained_run / "history.csv")
    assert list(history.columns) == HISTORY_COLUMNS
    assert history["epoch"].tolist() == [1, 2] and (history["seconds"] > 0).all()
    assert history["lr"].iloc[0] == pytest.approx(0.003)
    assert history[["loss", "val_loss"]].notna().all().all()
    best = history.loc[history["val_loss"].idxmin()]
    assert metrics["best"]["val_loss"] == pytest.approx(best["val_loss"])
    assert "conv1 (Conv2D)" in (trained_run / "summary.txt").read_text()
    assert "seed: 7" in (trained_run / "config.yaml").read_text()


def test_saved_model_reloads_and_takes_raw_pixels(trained_run: Path, dataset: Path):
    import keras

    from animalcnn.data import load_image

    model = keras.saving.load_model(trained_run / "model.keras", compile=False)
    image = load_image(next((dataset / "val/circle").iterdir()), 32)
    probs = model.predict(image[None].astype("float32"), verbose=0)
    assert probs.shape == (1, 5) and probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert model.get_layer("rescale").scale == pytest.approx(1 / 255)


def test_evaluate_writes_scores(cli, trained_run: Path):
    code, out, err = cli("evaluate", trained_run)
    assert code == 0, err
    ev = json.loads((trained_run / "evaluation.json").read_text())
    assert ev["classes"] == ["circle", "cross", "square", "stripes", "triangle"]
    matrix = np.array(ev["confusion_matrix"])
    assert matrix.shape == (5, 5) and matrix.sum(axis=1).tolist() == [4] * 5
    assert ev["accuracy"] == pytest.approx(np.trace(matrix) / 20)
    assert ev["per_class"]["cross"]["support"] == 4 and ev["loss"] > 0
    assert "confusion matrix" in out and "precision" in out


def test_compare_table_and_csv(cli, trained_run: Path, tmp_path: Path):
    damaged = tmp_path / "not-a-run"
    damaged.mkdir()
    csv = tmp_path / "cmp.csv"
    code, out, err = cli("compare", trained_run, damaged, "--csv", csv)
    assert code == 0, err
    assert trained_run.name in out and "damaged" in out
    df = pd.read_csv(csv)
    row = df[df["run"] == trained_run.name].iloc[0]
    assert row["arch"] == "simple" and row["params_trainable"] == 73477
    assert row["status"] == "completed" and row["epochs"] == 2
    if not pd.isna(row["test_accuracy"]):
        assert row["gap"] == pytest.approx(row["train_accuracy"] - row["test_accuracy"])
    assert df[df["run"] == "not-a-run"].iloc[0]["status"].startswith("damaged")


def _imports_tensorflow(*argv: str) -> tuple[bool, str]:
    code = (
        "import sys\nfrom animalcnn.cli import app\n"
        f"try:\n    app({list(argv)!r}, prog_name='animalcnn')\nexcept SystemExit:\n    pass\n"
        "print('TF-IMPORTED' if 'tensorflow' in sys.modules else 'NO-TF')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return "TF-IMPORTED" in out.stdout, out.stdout + out.stderr


@pytest.mark.parametrize(
    "argv",
    [("--help",), ("compare", "RUN", "--report", "REPORT"), ("train", "missing.yaml"), ("models",)],
)
def test_reading_commands_do_not_import_tensorflow(trained_run: Path, tmp_path: Path, argv):
    paths = {"RUN": str(trained_run), "REPORT": str(tmp_path / "r.html")}
    argv = tuple(paths.get(a, a) for a in argv)
    imported, output = _imports_tensorflow(*argv)
    assert not imported, output


def test_bad_config_exits_2_with_one_line_and_no_run_folder(cli, tmp_path: Path, dataset):
    config = write_config(tmp_path / "bad.yaml", dataset, tmp_path / "runs")
    code, out, err = cli("train", config, "--set", "training.epochs=0")
    assert code == 2
    assert err.strip() == f"error: {config}: training.epochs: input should be greater than 0"
    assert "Traceback" not in out + err
    assert not (tmp_path / "runs").exists()


def test_missing_data_folder_exits_2_before_any_run_folder(cli, tmp_path: Path):
    config = write_config(tmp_path / "nodata.yaml", tmp_path / "nowhere", tmp_path / "runs")
    code, _, err = cli("train", config)
    assert code == 2 and "data.dir:" in err and "folder not found" in err
    assert not (tmp_path / "runs").exists()


def test_evaluate_and_compare_reject_non_runs(cli, tmp_path: Path):
    code, _, err = cli("evaluate", tmp_path)
    assert code == 2 and f"{tmp_path}: not a run folder" in err


def test_several_configs_one_failing_does_not_stop_the_rest(cli, tmp_path: Path, dataset):
    bad = write_config(tmp_path / "bad.yaml", dataset, tmp_path / "runs", model={"arch": "nope"})
    good = write_config(tmp_path / "good.yaml", dataset, tmp_path / "runs", training={"epochs": 1})
    code, out, err = cli("train", bad, good, "--set", "training.epochs=1")
    assert code == 1
    assert "model.arch: unknown architecture 'nope'" in err
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("good-")
    assert json.loads((run / "metrics.json").read_text())["status"] == "completed"
    assert f"{bad}: config error" in out


def test_same_config_and_seed_give_the_same_history(cli, tmp_path: Path, dataset):
    config = write_config(
        tmp_path / "again.yaml", dataset, tmp_path / "runs",
        model={"arch": "simple", "augmentation": [{"type": "flip"}, {"type": "noise"}]},
    )  # fmt: skip
    for _ in range(2):
        code, _, err = cli("train", config)
        assert code == 0, err
    a, b = (pd.read_csv(r / "history.csv") for r in sorted((tmp_path / "runs").iterdir()))
    assert a.drop(columns="seconds").equals(b.drop(columns="seconds"))


def test_summary_json_counts_without_data(cli):
    from .conftest import CONFIGS

    code, out, err = cli("summary", CONFIGS / "mid.yaml", "--json")
    assert code == 0, err
    assert json.loads(out)["total"] == 1_614_885


def test_evaluate_on_another_split_folder(cli, trained_run: Path, dataset: Path):
    code, out, err = cli("evaluate", trained_run, "--data", dataset / "train")
    assert code == 0, err
    ev = json.loads((trained_run / "evaluation.json").read_text())
    assert ev["data"] == str(dataset / "train") and ev["images"] == 80
    code, _, _ = cli("evaluate", trained_run)  # back to the run's own test split
    assert json.loads((trained_run / "evaluation.json").read_text())["images"] == 20


def test_summary_table_and_models_list(cli):
    from .conftest import CONFIGS

    code, out, _ = cli("summary", CONFIGS / "simple.yaml")
    assert code == 0 and "conv1 (Conv2D)" in out and "726,277" in out
    code, out, _ = cli("models")
    assert code == 0
    for arch in ("simple", "mid", "resnet", "inception", "resnet50v2", "efficientnetb0"):
        assert f"│ {arch} " in out
