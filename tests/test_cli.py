"""End to end through the CLI: train, evaluate, compare, and the errors users meet."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from animalcnn.run_folder import HISTORY_COLUMNS

from .conftest import imports_tensorflow, write_config


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

    from animalcnn.data.decoding import load_image

    model = keras.saving.load_model(trained_run / "model.keras", compile=False)
    image = load_image(next((dataset / "val/circle").iterdir()), 32)
    probs = model.predict(image[None].astype("float32"), verbose=0)
    assert probs.shape == (1, 5) and probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert model.get_layer("rescale").scale == pytest.approx(1 / 255)


def test_evaluate_writes_scores(cli, run_copy: Path):
    code, out, err = cli("evaluate", run_copy)
    assert code == 0, err
    ev = json.loads((run_copy / "evaluation.json").read_text())
    assert ev["classes"] == ["circle", "cross", "square", "stripes", "triangle"]
    matrix = np.array(ev["confusion_matrix"])
    assert matrix.shape == (5, 5) and matrix.sum(axis=1).tolist() == [4] * 5
    assert ev["accuracy"] == pytest.approx(np.trace(matrix) / 20)
    assert ev["per_class"]["cross"]["support"] == 4 and ev["loss"] > 0
    assert "confusion matrix" in out and "precision" in out


def test_compare_table_and_csv(cli, run_copy: Path, tmp_path: Path):
    assert cli("evaluate", run_copy)[0] == 0
    damaged = tmp_path / "not-a-run"  # a run folder that lost its metrics.json
    damaged.mkdir()
    (damaged / "config.yaml").write_text("name: x\n")
    csv = tmp_path / "cmp.csv"
    code, out, err = cli("compare", run_copy, damaged, "--csv", csv)
    assert code == 0, err
    assert run_copy.name in out and "damaged" in out
    df = pd.read_csv(csv)
    row = df[df["run"] == run_copy.name].iloc[0]
    assert row["arch"] == "simple" and row["params_trainable"] == 73477
    assert row["status"] == "completed" and row["epochs"] == 2
    assert 0 <= row["test_accuracy"] <= 1
    assert row["gap"] == pytest.approx(row["train_accuracy"] - row["test_accuracy"], abs=1e-5)
    assert df[df["run"] == "not-a-run"].iloc[0]["status"].startswith("damaged")


def test_compare_fits_100_columns_and_keeps_the_key_figures(trained_run: Path, tmp_path: Path):
    from rich.console import Console

    from animalcnn.reporting.runs_table.columns import COMPARE_SPEC
    from animalcnn.reporting.runs_table.render import compare_table
    from animalcnn.reporting.runs_table.rows import collect

    rows = collect([trained_run, tmp_path / "a-folder-with-a-long-name-that-is-not-a-run"])

    def render(width: int | None) -> str:
        console = Console(width=width or 300, record=True, file=io.StringIO())
        console.print(compare_table(rows, width))
        return console.export_text()

    narrow = render(100)
    assert max(len(line) for line in narrow.splitlines()) <= 100
    for header in ("run", "status", "best val acc", "test acc"):
        assert header in narrow
    caption = narrow[narrow.index("left out to fit: ") :]
    assert "; --csv has them all" in caption and "device" in caption  # named, lowest first
    assert "completed" in narrow and "damaged" in narrow
    wide = render(None)
    assert "left out" not in wide
    # every column is there, but those empty for both runs (a non-run has no figures)
    header = wide.splitlines()[2]
    shown = [title for title, key, *_ in COMPARE_SPEC if title in header]
    assert {"run", "status", "best val acc", "test acc", "arch", "epochs"} <= set(shown)


def test_compare_moves_what_every_run_shares_to_the_caption(trained_run: Path, tmp_path: Path):
    import shutil

    from rich.console import Console

    from animalcnn.reporting.runs_table.render import compare_table
    from animalcnn.reporting.runs_table.rows import collect

    twin = Path(shutil.copytree(trained_run, tmp_path / "twin"))
    console = Console(width=300, record=True, file=io.StringIO())
    console.print(compare_table(collect([trained_run, twin]), None))
    text = console.export_text()
    header = text.splitlines()[2]
    assert "arch" not in header and "precision" not in header and "run" in header
    assert "all runs: simple, completed, not evaluated, tensorflow, float32" in " ".join(
        text.split()
    )


@pytest.mark.parametrize(
    "argv",
    [
        ("--help",),
        ("compare", "RUN", "--report", "REPORT"),
        ("train", "missing.yaml"),
        ("models",),
        ("config", "--schema"),
    ],
)
def test_reading_commands_do_not_import_tensorflow(trained_run: Path, tmp_path: Path, argv):
    paths = {"RUN": str(trained_run), "REPORT": str(tmp_path / "r.html")}
    argv = tuple(paths.get(a, a) for a in argv)
    imported, output = imports_tensorflow(*argv)
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
    assert code == 2 and err.strip() == (
        f"error: {config}: data.dir: {tmp_path / 'nowhere'}: folder not found; get the "
        "course's dataset with `animalcnn data download`, or name yours with --set "
        "data.dir=DIR"
    )
    assert not (tmp_path / "runs").exists()
    code = (
        "import sys; from typer.testing import CliRunner; from animalcnn.cli import app; "
        f"r = CliRunner().invoke(app, ['train', {str(config)!r}]); "
        "print(r.exit_code, 'keras' in sys.modules, 'tensorflow' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split() == ["2", "False", "False"], done.stderr  # before any backend


def test_evaluate_rejects_non_runs_and_compare_leaves_them_out(
    cli, trained_run: Path, tmp_path: Path
):
    code, _, err = cli("evaluate", tmp_path)
    assert code == 2 and f"{tmp_path}: not a run folder" in err
    empty, typo = tmp_path / "runs", tmp_path / "rnus"
    empty.mkdir()  # a new runs dir: nothing to compare, not a damaged run
    code, _, err = cli("compare", empty)
    assert (
        code == 2
        and err == f"error: {empty}: no run folders in it (animalcnn train CONFIG writes them)\n"
    )
    code, _, err = cli("compare", trained_run, empty, typo, "--csv", tmp_path / "c.csv")
    assert code == 0 and err.splitlines() == [
        f"warning: {empty}: no run folders in it (animalcnn train CONFIG writes them)",
        f"warning: {typo}: no such folder",
    ]
    assert pd.read_csv(tmp_path / "c.csv")["run"].tolist() == [trained_run.name]


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
        tmp_path / "again.yaml",
        dataset,
        tmp_path / "runs",
        model={"arch": "simple", "augmentation": [{"type": "flip"}, {"type": "noise"}]},
    )
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


def test_summary_table_and_models_list(cli):
    from .conftest import CONFIGS

    code, out, _ = cli("summary", CONFIGS / "simple.yaml")
    assert code == 0 and "conv1 (Conv2D)" in out and "726,277" in out
    code, out, _ = cli("models")
    assert code == 0 and "…" not in out  # option names wrap, never cut
    blocks: dict[str, str] = {}  # a table row's lines, by the name in its first column
    name = ""
    for line in out.splitlines():
        if line.count("│") > 2:
            first = line.split("│")[1].strip()
            if first and not first.startswith("("):
                name = first
            blocks[name] = blocks.get(name, "") + " " + " ".join(line.split("│")[2:])
            if first.startswith("("):
                blocks[name] += " " + first
    # minimum image sizes as numbers, with the default params
    for arch, size in (("simple", 8), ("mid", 36), ("inception", 46), ("xception", 71)):
        assert re.search(rf"^\s+{size} ", blocks[arch]), blocks[arch]
    assert "(pretrained)" in blocks["resnet50v2"] and "(custom)" in blocks["resnet"]
    for option in ("filters=[32, 64, 128]", "dense=128", "dropout=0.25"):
        assert option in " ".join(blocks["mid"].split())
    assert "pooling='flatten'" in blocks["efficientnetb0"]
    assert "factor=0.1" in blocks["rotation"] and "mode='horizontal'" in blocks["flip"]
    assert "function" not in out and "<" not in out


def _animalcnn(*args: str, **env: str) -> subprocess.CompletedProcess:
    """The installed command in a process of its own, output to pipes (not a terminal),
    in a user's environment (without the log level this test process set)."""
    base = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run(
        [sys.executable, "-m", "animalcnn", *args],
        capture_output=True,
        text=True,
        env={**base, **env},
        timeout=300,
    )


COMMANDS = [
    "train",
    "summary",
    "config",
    "models",
    "evaluate",
    "compare",
    "predict",
    "explain",
    "lr-find",
    "sweep",
    "export",
    "serve",
    "dashboard",
    "data synth",
    "data check",
    "data download",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_short_help_with_examples_and_readable_labels(cli, command: str):
    code, out, _ = cli(*command.split(), "-h")
    assert code == 0 and "Usage: " in out
    examples = out.split("Examples:")[-1]
    assert "Examples:" in out and f"animalcnn {command}" in examples
    assert "list[" not in out and "<bool>" not in out and "Path]" not in out
    assert "<int" not in out and "<float" not in out and "{" not in out.splitlines()[0]


def test_help_lists_whole_summaries_at_80_columns():
    done = _animalcnn("--help", COLUMNS="80")
    listed = done.stdout.split("Commands:")[1]
    assert "..." not in listed and "…" not in listed
    assert max(len(line) for line in done.stdout.splitlines()) <= 80
    assert "Score each run's best checkpoint on its test split" in listed


def test_a_users_log_level_lets_no_tensorflow_line_through(trained_run: Path, tmp_path: Path):
    """TF_CPP_MIN_LOG_LEVEL=2 (a common habit) leaves TensorFlow's C++ errors on; neither
    training nor a TFLite export prints one."""
    import shutil

    from .conftest import CONFIGS  # noqa: F401

    run = Path(shutil.copytree(trained_run, tmp_path / "run"))
    done = _animalcnn("export", str(run), "--format", "tflite", TF_CPP_MIN_LOG_LEVEL="2")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["training"]["epochs"] = 1
    config["output"]["runs_dir"] = str(tmp_path / "runs")
    (tmp_path / "one.yaml").write_text(yaml.safe_dump(config))
    done = _animalcnn("train", str(tmp_path / "one.yaml"), TF_CPP_MIN_LOG_LEVEL="2")
    assert done.returncode == 0, done.stderr
    assert "E0000" not in done.stderr and "NodeDef" not in done.stderr, done.stderr


def test_version_help_and_completion():
    from animalcnn import __version__

    done = _animalcnn("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"animalcnn {__version__}"
    done = _animalcnn("-h")
    assert done.returncode == 0 and "--install-completion" in done.stdout
    # What the installed bash completion asks the command when a user presses tab.
    done = _animalcnn(
        COMP_WORDS="animalcnn tr", COMP_CWORD="1", _ANIMALCNN_COMPLETE="complete_bash"
    )
    assert done.returncode == 0 and done.stdout.split() == ["train"]
    done = _animalcnn(
        COMP_WORDS="animalcnn data c", COMP_CWORD="2", _ANIMALCNN_COMPLETE="complete_bash"
    )
    assert done.stdout.split() == ["check"]


def test_config_prints_every_option_resolved(cli, tmp_path: Path):
    from animalcnn.config.schema import ExperimentConfig
    from animalcnn.models.configs import load_config

    from .conftest import CONFIGS

    code, out, err = cli("config", CONFIGS / "mid.yaml", "--set", "training.epochs=3")
    assert code == 0, err
    printed = yaml.safe_load(out)
    for section, model in ExperimentConfig.model_fields.items():
        assert section in printed, section
        sub = getattr(model.annotation, "model_fields", None)
        if sub and printed[section] is not None:
            assert set(sub) == set(printed[section]), section
    assert printed["training"]["epochs"] == 3 and printed["model"]["params"]["dense"] == 128
    (tmp_path / "mid.yaml").write_text(out)
    expected = load_config(CONFIGS / "mid.yaml", ["training.epochs=3"])
    assert load_config(tmp_path / "mid.yaml") == expected
    code, _, err = cli("config", CONFIGS / "mid.yaml", "--set", "training.epoch=3")
    assert code == 2 and "did you mean 'epochs'" in err


def test_layer_table_has_every_column_whatever_the_terminal(trained_run: Path):
    text = (trained_run / "summary.txt").read_text()
    for column in ("layer (type)", "output shape", "params", "trains"):
        assert column in text
    assert re.search(r"predictions \(Dense\)\s+│ \(None, 5\)\s+│\s+54,085 │", text)
    # A narrow terminal and a pipe (as under nohup or a batch job) change nothing.
    from .conftest import CONFIGS

    done = _animalcnn("summary", str(CONFIGS / "mid.yaml"), COLUMNS="40")
    assert done.returncode == 0, done.stderr
    assert "block3_conv2 (Conv2D)" in done.stdout and "147,584" in done.stdout
    assert "total 1,614,885 parameters: 1,614,885 trainable, 0 non-trainable" in done.stdout


def test_tensorflow_start_up_lines_only_when_asked_and_once(monkeypatch):
    from animalcnn.console import VERBOSE_ENV, verbose

    from .conftest import CONFIGS

    quiet = _animalcnn("summary", str(CONFIGS / "simple.yaml"), "--json")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    loud = _animalcnn("--verbose", "summary", str(CONFIGS / "simple.yaml"), "--json")
    assert loud.returncode == 0
    messages = [_LOG_PREFIX.sub("", line) for line in loud.stderr.splitlines() if line.strip()]
    assert messages, "--verbose showed none of TensorFlow's start-up lines"
    assert any(_LOG_PREFIX.match(line) for line in loud.stderr.splitlines()), loud.stderr
    assert len(messages) == len(set(messages)), loud.stderr  # each message at most once
    for value, expected in (("1", True), ("0", False), ("", False)):  # or by the environment
        monkeypatch.setenv(VERBOSE_ENV, value)
        assert verbose() is expected


_LOG_PREFIX = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ [^\]]+\] ")


def test_epoch_lines_wrap_between_fields_never_inside_a_number_and_show_eta_and_best():
    from rich.console import Console

    from animalcnn.run_folder import EpochRow
    from animalcnn.training.callbacks import ConsoleProgress

    class Recorder:
        rows = [
            EpochRow(
                epoch=12,
                phase="head",
                loss=0.123456,
                accuracy=0.98765,
                val_loss=1.23456,
                val_accuracy=0.5,
                lr=1e-4,
                seconds=12.5,
            )
        ]
        best = rows[0]
        images_per_second = 1234.5

    console = Console(width=37, record=True, file=io.StringIO(), soft_wrap=True)
    progress = ConsoleProgress(console, 30, 10, Recorder(), show_phase=True)
    progress._bar = type("Bar", (), {"stop": lambda self: None})()
    progress.on_epoch_end(11)
    lines = console.export_text().splitlines()
    assert len(lines) > 1 and max(len(line) for line in lines) <= 37
    tokens = " ".join(lines).split()
    for number in ("0.1235", "98.77%", "1.2346", "50.00%", "1.00e-04", "12.5s", "1,234"):
        assert number in tokens, lines
    # 18 epochs left at 12.5 s each at most, and this epoch became the best checkpoint
    assert "eta ≤ 3m45s" in " ".join(tokens) and tokens[-2:] == ["*", "best"]
