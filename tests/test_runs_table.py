"""The runs table's logic on run folders the tests write: the settings that differ as
columns, what all runs share as a caption, best first, and a width it never passes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from animalcnn.reporting.runs_table.columns import layout
from animalcnn.reporting.runs_table.ranking import ranked
from animalcnn.reporting.runs_table.render import compare_table
from animalcnn.reporting.runs_table.rows import collect, setting_text


def _variant(run: Path, folder: Path, name: str, val: float, **training) -> Path:
    """A copy of `run` named `name` whose config and best validation accuracy are changed
    (its test figures removed, so validation accuracy ranks it)."""
    copy = Path(shutil.copytree(run, folder / name))
    (copy / "evaluation.json").unlink(missing_ok=True)
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["name"] = name
    config["training"].update(training)
    if name == "augmented":
        config["model"]["augmentation"] = [
            {"type": "flip", "mode": "horizontal"},
            {"type": "zoom", "factor": 0.2},
        ]
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    metrics = json.loads((copy / "metrics.json").read_text())
    metrics.update(name=name, best={**metrics["best"], "val_accuracy": val})
    (copy / "metrics.json").write_text(json.dumps(metrics))
    return copy


@pytest.fixture(scope="module")
def three(trained_run: Path, tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("three")
    return [
        _variant(trained_run, folder, "slow", 0.40, learning_rate=0.0001),
        _variant(trained_run, folder, "augmented", 0.85, learning_rate=0.001),
        _variant(trained_run, folder, "fast", 0.60, learning_rate=0.01, epochs=3),
    ]


def test_differing_settings_are_columns_and_shared_ones_the_caption(three):
    rows, _ = ranked(collect(three), three)
    assert [r["name"] for r in rows] == ["augmented", "fast", "slow"] and rows[0]["best"]
    view = layout(rows)
    keys = [key for _, key, _, _ in view.columns]
    assert keys[:4] == ["run", "model.augmentation", "training.epochs", "training.learning_rate"]
    assert view.cells["model.augmentation"] == ["flip(horizontal), zoom(0.2)", "none", "none"]
    assert view.cells["training.learning_rate"] == ["0.001", "0.01", "0.0001"]
    assert "data.img_size" not in keys and "name" not in keys and "arch" not in keys
    assert view.caption.startswith("all runs: simple, completed")
    assert "params " in view.caption and "precision" not in keys


def test_the_pipeline_finds_reads_once_filters_and_ranks(three, tmp_path: Path):
    from animalcnn.reporting.runs_table import read_runs
    from animalcnn.reporting.runs_table.find import expand_runs
    from animalcnn.reporting.runs_table.ranking import parse_query

    folders, notes = expand_runs([three[0].parent, tmp_path / "typo"])
    assert sorted(folders) == sorted(three) and notes == [f"{tmp_path / 'typo'}: no such folder"]
    query, order = parse_query("best_val_accuracy >= 0.5", "training.learning_rate")
    found = read_runs(folders, query, order)
    assert found.read == 3 and [r["name"] for r in found.rows] == ["augmented", "fast"]
    assert [f.name for f in found.folders] == ["augmented", "fast"]
    assert found.rows[0]["best"] and not found.rows[1]["best"]
    assert all(r["test_result"].state == "none" and r["test_data"] is None for r in found.rows)


def test_the_table_never_passes_the_width_and_names_what_it_left_out(three):
    rows, _ = ranked(collect(three), three)
    for width in (60, 80, 100, 140):
        console = Console(width=width, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
        console.print(compare_table(rows, width))
        text = console.export_text()
        assert max(len(line) for line in text.splitlines()) <= width, width
        assert "(best)" in text and "85.00%" in text  # the best run and its score stay
        shown = text.split("all runs:")[0]
        if "left out to fit:" in text:
            named = text.split("left out to fit:")[1].split("; --csv")[0].replace("\n", " ")
            for title in ("training.learning_rate", "model.augmentation"):
                assert (title.split(".")[1] in shown) != (title in " ".join(named.split())), (
                    width,
                    title,
                )


def test_piped_compare_honours_columns(three):
    """Piped output takes COLUMNS (100 when unset) and no line is wider."""
    for columns, limit in (("80", 80), (None, 100)):
        env = (
            {**os.environ, "COLUMNS": columns}
            if columns
            else {k: v for k, v in os.environ.items() if k != "COLUMNS"}
        )
        out = subprocess.run(
            [sys.executable, "-m", "animalcnn", "compare", *map(str, three)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout
        assert max(len(line) for line in out.splitlines()) <= limit
        table = out.split("all runs:")[0]
        assert "augmented" in table and "augmentation" in table  # the settings first
        assert ("learning_rate" in table) if limit > 80 else ("left out to fit" in out)


def test_setting_text_is_short():
    assert setting_text(0.001) == "0.001" and setting_text(True) == "on"
    assert setting_text({"decay": 0.99}) == "decay=0.99" and setting_text([]) == "none"
    assert setting_text([{"type": "noise", "stddev": 0.01}]) == "noise(0.01)"


def test_no_column_shows_while_one_that_outranks_it_is_left_out():
    from animalcnn.reporting.runs_table.columns import fit

    spec = [
        ("run", "run", "", 0),
        ("lr", "training.learning_rate", "setting", 2),
        ("epochs", "training.epochs", "setting", 2),
        ("train acc", "train_accuracy", "pct", 3),
        ("tta", "tta", "", 4),
    ]
    needed = {
        "run": 20,
        "training.learning_rate": 16,
        "training.epochs": 12,
        "train_accuracy": 12,
        "tta": 2,
    }
    keys = [c[1] for c in fit(spec, spec, needed, 35)]
    assert keys == ["run", "training.epochs"]  # not lr (too wide), and so nothing below it
    keys = [c[1] for c in fit(spec, spec, needed, 63)]
    assert keys == [c[1] for c in spec]
