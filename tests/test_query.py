"""Run queries: `--where` comparisons, `in` lists and `and`, multi-key `--sort` with a
direction, missing values last, one-line errors that point at the place; the same rows
in compare, the report, the dashboard's API and the Python API."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd
import pytest

from animalcnn.errors import UserError
from animalcnn.reporting.query import Value, order, parse_sort, parse_where
from animalcnn.reporting.runs_table.ranking import parse_query

from .conftest import write_config

KEYS = ["arch", "best_val_accuracy", "time_s", "status"]


def known(key: str) -> bool:
    return key in KEYS or key.startswith("training.")


def test_conditions_parse_and_hold():
    q = parse_where(["best_val_accuracy > 0.8 and arch in [simple, 'mid']"], known, KEYS)
    assert str(q) == "best_val_accuracy > 0.8 and arch in [simple, mid]"
    row = {"best_val_accuracy": 0.85, "arch": "mid"}
    assert q.matches(row.get)
    assert not q.matches({**row, "arch": "resnet"}.get)
    assert not q.matches({**row, "best_val_accuracy": 0.8}.get)  # > is strict
    assert not q.matches({**row, "best_val_accuracy": None}.get)  # missing: no comparison
    ge = parse_where(["best_val_accuracy>=80%", "training.learning_rate<=1e-3"], known, KEYS)
    assert ge.matches({"best_val_accuracy": 0.8, "training.learning_rate": 0.001}.get)
    assert not ge.matches({"best_val_accuracy": 0.79, "training.learning_rate": 0.001}.get)
    assert not ge.matches({"best_val_accuracy": 0.9, "training.learning_rate": "0.01"}.get)
    legacy = parse_where(["status=completed", "training.learning_rate=0.5"], known, KEYS)
    assert legacy.matches({"status": "completed", "training.learning_rate": "0.5"}.get)
    assert not legacy.matches({"status": "failed", "training.learning_rate": 0.5}.get)
    ne = parse_where(["arch != mid"], known, KEYS)
    assert ne.matches({"arch": "simple"}.get) and ne.matches({"arch": None}.get)
    assert not ne.matches({"arch": "mid"}.get)
    many = parse_where(["arch = mid"], known, KEYS)  # a list column: one of its values
    assert many.matches({"arch": ["simple", "mid"]}.get)
    assert parse_where(["training.ema = off"], known, KEYS).matches({"training.ema": False}.get)
    assert Value.of("90%").number == pytest.approx(0.9) and Value.of("'1'", True).number is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("best_val_accuracy >> 0.9", "at character 20 ('> 0.9'): expected a value"),
        ("speed > 3", "at character 1 ('speed > 3'): unknown key 'speed'"),
        ("arch = mid or arch = simple", "at character 12 ('or arch = simple'): expected 'and'"),
        ("arch in [mid, simple", "at character 21 ('the end'): expected ',' or ']'"),
        ("best_val_accuracy > high", "> compares numbers; 'high' is not one"),
        (
            "__import__('os').system('true')",
            "at character 1 (\"__import__('os').sys\"): unknown key '__import__'",
        ),
        ("arch = (mid)", "at character 8 ('(mid)'): expected a value"),
        ("status", "expected an operator"),
        ("", None),
    ],
)
def test_a_bad_query_is_one_line_pointing_at_the_place(text: str, message: str | None):
    if message is None:  # nothing to parse: every run
        assert not parse_where([text.strip()] if text.strip() else [], known, KEYS)
        with pytest.raises(UserError, match="expected a condition"):
            parse_where([text], known, KEYS)
        return
    with pytest.raises(UserError) as err:
        parse_where([text], known, KEYS)
    line = str(err.value)
    assert "\n" not in line and message in line, line
    assert line.startswith(f"--where {text!r}: ") and "keys: arch, best_val_accuracy" in line


def test_sort_keys_take_a_direction_and_put_missing_values_last():
    rows = [
        {"n": "a", "acc": 0.5, "t": 10},
        {"n": "b", "acc": None, "t": 5},
        {"n": "c", "acc": 0.9, "t": None},
        {"n": "d", "acc": 0.9, "t": 3},
    ]
    keys = ["acc", "t"]
    get = dict.get

    def names(text: str) -> list[str]:
        return [r["n"] for r in order(rows, parse_sort(text, keys.__contains__, keys), get)]

    assert names("-acc,t") == ["d", "c", "a", "b"]
    assert names("acc,-t") == ["a", "d", "c", "b"]
    assert names("+t") == ["d", "b", "a", "c"] and names("-t") == ["a", "b", "d", "c"]
    with pytest.raises(UserError, match=r"--sort '-acc,speed': at character 6: unknown key"):
        parse_sort("-acc,speed", keys.__contains__, keys)
    with pytest.raises(UserError, match="expected a key"):
        parse_sort("-", keys.__contains__, keys)


def _run(
    runs: Path,
    name: str,
    arch: str,
    val: float | None,
    time_s: float | None,
    lr: float,
    params: dict | None = None,
) -> Path:
    """A run folder with known values and no model: what compare reads of it."""
    folder = runs / name
    folder.mkdir(parents=True)
    model = {"arch": arch, "params": params or {}}
    write_config(
        folder / "config.yaml",
        runs / "no-data",
        runs,
        name=name,
        data={"img_size": 64},
        model=model,
        training={"learning_rate": lr},
    )
    metrics = {
        "status": "completed",
        "name": name,
        "arch": arch,
        "classes": list("abcde"),
        "epochs_run": 2,
        "best_epoch": 2,
        "wall_time_s": time_s,
        "best": {"epoch": 2, "val_accuracy": val, "accuracy": val},
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


@pytest.fixture(scope="module")
def known_runs(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("query") / "runs"
    _run(runs, "s-good", "simple", 0.91, 30.0, 1e-3)
    _run(runs, "s-slow", "simple", 0.85, 90.0, 1e-2)
    _run(runs, "m-good", "mid", 0.95, 60.0, 1e-3)
    _run(runs, "m-notime", "mid", 0.88, None, 3e-3)
    _run(runs, "m-bad", "mid", 0.40, 10.0, 1e-3)
    _run(runs, "r-good", "resnet", 0.97, 120.0, 1e-3)
    _run(runs, "m-noval", "mid", None, 50.0, 1e-3)
    return runs


QUERY = "best_val_accuracy > 0.8 and arch in [simple, mid]"
EXPECTED = ["s-slow", "m-good", "s-good", "m-notime"]  # -time_s, missing time last


def test_compare_keeps_and_orders_the_rows_a_query_names(cli, known_runs: Path, tmp_path):
    csv, report = tmp_path / "t.csv", tmp_path / "r.html"
    code, out, err = cli(
        "compare",
        *sorted(known_runs.iterdir()),
        "--where",
        QUERY,
        "--sort",
        "-time_s",
        "--csv",
        csv,
        "--report",
        report,
    )
    assert code == 0, err
    table = pd.read_csv(csv)
    assert table["run"].tolist() == EXPECTED
    assert "m-good (best)" in out and out.index("s-slow") < out.index("m-good")
    page = report.read_text()
    assert f"Runs where <code>{html.escape(QUERY)}</code>" in page
    assert "in the order -time_s" in page
    shown = page[page.index('id="runs"') :]
    assert sorted(EXPECTED, key=lambda r: shown.index(f">{r}<")) == EXPECTED
    code, _, _ = cli(
        "compare",
        known_runs,
        "--where",
        "arch=mid",
        "--where",
        "training.learning_rate < 2e-3",
        "--sort",
        "best_val_accuracy,run",
        "--csv",
        csv,
    )
    assert code == 0 and pd.read_csv(csv)["run"].tolist() == ["m-bad", "m-good", "m-noval"]
    code, _, err = cli("compare", known_runs, "--where", "best_val_accuracy >= 97%", "--csv", csv)
    assert code == 0 and pd.read_csv(csv)["run"].tolist() == ["r-good"]
    code, _, err = cli("compare", known_runs, "--where", "best_val_accuracy > 1")
    assert code == 2 and err.startswith("error: no run has best_val_accuracy > 1")
    code, _, err = cli("compare", known_runs, "--where", "arch in [mid")
    assert code == 2 and err.count("\n") == 1 and "at character 13" in err and "keys: run," in err
    code, _, err = cli("compare", known_runs, "--sort", "-speed")
    assert code == 2 and "--sort '-speed': at character 1: unknown key 'speed'" in err


def test_the_same_query_gives_the_same_rows_everywhere(known_runs: Path):
    import animalcnn
    from animalcnn.reporting.dashboard import _runs

    rows, _ = _runs(known_runs, *parse_query(QUERY, "-time_s"))
    assert [r["run"] for r in rows] == EXPECTED
    table = animalcnn.runs(known_runs, where=QUERY, sort="-time_s")
    assert table.frame["run"].tolist() == EXPECTED
    assert table.frame.loc[table.frame["best"], "run"].tolist() == ["m-good"]


def test_runs_show_as_one_line_in_a_shell_and_as_the_table_in_a_notebook(known_runs: Path):
    import animalcnn

    table = animalcnn.runs(known_runs, where="arch = mid", sort="-best_val_accuracy")
    assert repr(table) == "<Runs: 4 runs where arch = mid; best m-good, best_val_accuracy 95.00%>"
    page = table._repr_html_()
    assert page.index(">m-good") < page.index(">m-notime") < page.index(">m-bad")
    assert page.count('class="badge best"') == 1 and "<script" not in page
    with pytest.raises(UserError, match="no such folder"):
        animalcnn.runs(known_runs / "absent")


def test_a_query_on_a_deeper_config_key_reads_each_config_once(tmp_path: Path):
    """`model.params.dense` is deeper than a setting (`model.params`): the query reads it
    from the config each row was read with, not from the folder again."""
    from animalcnn.reporting.runs_table.ranking import select
    from animalcnn.reporting.runs_table.rows import collect

    folders = [
        _run(tmp_path, "wide", "mid", 0.9, 10.0, 1e-3, {"dense": 256}),
        _run(tmp_path, "narrow", "mid", 0.8, 10.0, 1e-3, {"dense": 64}),
    ]
    rows = collect(folders)
    for folder in folders:
        (folder / "config.yaml").unlink()
    query, sort = parse_query("model.params.dense >= 128", None)
    kept, kept_folders = select(rows, folders, query, sort)
    assert [r["run"] for r in kept] == ["wide"] and kept_folders == folders[:1]
    assert rows[1]["config"]["model"]["params"]["dense"] == 64
