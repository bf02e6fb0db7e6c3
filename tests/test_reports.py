"""Figures, the offline HTML report (checked in a real headless browser), predict."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from .conftest import write_config


def assert_real_figure(path: Path, min_size: tuple[int, int] = (400, 250)) -> None:
    """A PNG of a reasonable size with more than a blank canvas in it."""
    with Image.open(path) as img:
        assert img.format == "PNG" and img.width >= min_size[0] and img.height >= min_size[1]
        pixels = np.asarray(img.convert("L"))
    assert pixels.std() > 10 and len(np.unique(pixels)) > 20


@pytest.fixture(scope="module")
def two_runs(trained_run: Path, dataset: Path, tmp_path_factory) -> list[Path]:
    """A copy of the shared run and a second one with a learning-rate drop, both evaluated."""
    from typer.testing import CliRunner

    from animalcnn.cli import app

    tmp = tmp_path_factory.mktemp("second")
    first = Path(shutil.copytree(trained_run, tmp / "copies" / trained_run.name))
    config = write_config(
        tmp / "other.yaml",
        dataset,
        tmp / "runs",
        training={"epochs": 3, "learning_rate": 0.5, "lr_patience": 0},
    )
    runner = CliRunner()
    assert runner.invoke(app, ["train", str(config)]).exit_code == 0
    (other,) = (tmp / "runs").iterdir()
    for run in (first, other):
        assert runner.invoke(app, ["evaluate", str(run)]).exit_code == 0
    return [first, other]


def test_each_run_has_its_curves_and_confusion_matrix(two_runs: list[Path]):
    for run in two_runs:
        assert_real_figure(run / "history.png")
        assert_real_figure(run / "confusion.png")


def test_one_chart_definition_draws_both_png_and_plotly(tmp_path: Path):
    """The PNG and the report's figure come from the same `Chart`: same panels, series,
    values and marks."""
    from animalcnn.figures.charts import history_chart, to_plotly, write_png

    history = pd.DataFrame(
        {
            "epoch": [1, 2, 3, 4],
            "phase": ["head", "head", "finetune", "finetune"],
            "loss": [1.5, 1.0, 0.8, 0.6],
            "accuracy": [0.4, 0.6, 0.7, 0.8],
            "val_loss": [1.6, 1.2, 1.0, 0.9],
            "val_accuracy": [0.3, 0.5, 0.6, 0.7],
            "lr": [1e-3, 2e-4, 1e-5, 1e-5],
            "seconds": [1.0] * 4,
        }
    )
    chart = history_chart(history, "r")
    assert [p.title for p in chart.panels] == ["loss", "accuracy", "learning rate (epoch start)"]
    assert chart.panels[1].percent == "y" and chart.panels[0].integer_x
    rate = chart.panels[2]  # the rate per epoch, on a log axis, phases marked
    assert rate.series[0].y == history["lr"].tolist() and rate.y_log
    assert [(m.x, m.kind) for m in rate.marks] == [(2.5, "phase")]
    marks = [(m.x, m.kind) for m in chart.panels[0].marks]
    assert marks == [(2, "lr_drop"), (2.5, "phase"), (4, "best")]  # lowest val_loss: epoch 4
    fig = to_plotly(chart)
    traces = [(t.name, list(t.y)) for t in fig.data]
    assert traces == [(s.name, s.y) for p in chart.panels for s in p.series]
    assert fig.layout.yaxis2.tickformat == ".0%" and fig.layout.xaxis.dtick == 1
    assert fig.layout.yaxis3.type == "log"
    assert {a.text for a in fig.layout.annotations} >= {"finetune", "loss", "accuracy"}
    assert_real_figure(write_png(chart, tmp_path / "h.png"))


def test_learning_rate_drops_and_phases_are_found():
    from animalcnn.figures.charts import lr_drops, phase_starts

    history = pd.DataFrame(
        {
            "epoch": [1, 2, 3, 4, 5],
            "phase": ["head", "head", "head", "finetune", "finetune"],
            "lr": [1e-3, 1e-3, 2e-4, 1e-5, 2e-6],
        }
    )
    assert lr_drops(history) == [3, 5]
    assert phase_starts(history) == [(4, "finetune")]
    # a cosine schedule moves the rate at every epoch: no drop marks in its phase
    cosine = pd.DataFrame(
        {"epoch": [1, 2, 3, 4, 5], "phase": ["train"] * 5, "lr": [1e-4, 1e-3, 8e-4, 4e-4, 1e-4]}
    )
    assert lr_drops(cosine) == []


def test_compare_writes_report_csv_and_pngs(cli, two_runs: list[Path], tmp_path: Path):
    report, csv = tmp_path / "report.html", tmp_path / "table.csv"
    code, out, err = cli("compare", *two_runs, "--report", report, "--csv", csv)
    assert code == 0, err
    page = report.read_text()
    for run in two_runs:
        name = json.loads((run / "metrics.json").read_text())["name"]
        assert f"{name}: training curves" in page
    # plotly.js once, beside the page, shared by the pages written there; nothing else loaded
    (script,) = re.findall(r'<script[^>]+src="([^"]+)"', page)
    assert script.startswith("animalcnn-assets/plotly-") and "Plotly" not in page[:2000]
    assert (tmp_path / script).stat().st_size > 3_000_000 and len(page) < 2_000_000
    assert page.count("most confident mistakes") == 2  # each run's gallery ...
    examples = page.split('id="examples"')[1]  # ... and the example images, once
    assert examples.count("data:image/jpeg;base64,") >= 5
    assert page.count('id="examples"') == 1
    for run in two_runs:  # each run's confusion matrix (in %) and per-class scores
        label = json.loads((run / "metrics.json").read_text())["name"]
        assert f"{label}: accuracy " in page
    assert page.count('class="scores"') == 2 and "% of each true class" in page
    # the settings that differ are the table's columns; what all share, its caption
    head = page.split('<table class="runs')[1].split("</thead>")[0]
    for key in ("training.epochs", "training.learning_rate", "training.lr_patience"):
        assert f">{key}</th>" in head
    assert "data.img_size" not in head and "What changed" not in page
    caption = page.split('<p class="caption">')[1].split("</p>")[0]
    assert caption.startswith("all runs: simple") and "params " in caption
    assert page.count("<details") == 2 and page.count("<details") - page.count(" open>") == 1
    assert "Validation accuracy per epoch" in page and "chance (20%)" in page
    table = pd.read_csv(csv)
    assert len(table) == 2 and sorted(table["training.learning_rate"]) == [0.003, 0.5]
    for figure in ("accuracy_vs_params", "gap", "test_accuracy"):
        assert_real_figure(tmp_path / f"report_{figure}.png", (300, 200))


def test_a_second_report_shares_the_script_and_leaves_other_files(cli, two_runs, tmp_path):
    """Reports written into one folder share one plotly.js; a file of the user's there is
    left as it was."""
    mine = tmp_path / "notes.txt"
    mine.write_text("mine")
    for name in ("a.html", "b.html"):
        assert cli("compare", *two_runs, "--report", tmp_path / name)[0] == 0
    assert len(list((tmp_path / "animalcnn-assets").iterdir())) == 1
    assert mine.read_text() == "mine"
    code, out, _ = cli("compare", *two_runs, tmp_path / "animalcnn-assets")  # as runs/* lists it
    assert code == 0 and "damaged" not in out and "animalcnn-assets" not in out


@pytest.mark.slow
def test_report_draws_and_sorts_in_a_headless_browser(cli, two_runs, tmp_path, browser):
    report = tmp_path / "report.html"
    assert cli("compare", *two_runs, "--report", report)[0] == 0
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(report.as_uri())
    page.wait_for_selector(".main-svg")
    assert page.locator("section.chart .main-svg").count() >= 3 and not errors
    header = page.locator("table.runs th", has_text="test acc")
    assert header.get_attribute("data-dir") == "down"  # the order it opened in: best first

    def column(title: str) -> list[str]:
        index = page.locator("table.runs th").all_inner_texts().index(title)
        return [
            r.locator("td").nth(index).inner_text()
            for r in page.locator("table.runs tbody tr").all()
        ]

    first = column("test acc")
    assert "best" in page.locator("table.runs tbody tr").first.inner_text()
    rate = page.locator("table.runs th", has_text="training.learning_rate")
    rate.click()  # numbers: highest first, then lowest first; the arrow says which
    assert column("training.learning_rate") == ["0.5", "0.003"]
    assert rate.get_attribute("data-dir") == "down" and header.get_attribute("data-dir") is None
    rate.click()
    assert column("training.learning_rate") == ["0.003", "0.5"]
    assert rate.get_attribute("data-dir") == "up"
    header.click()
    assert column("test acc") == first
    page.close()


def test_predict_labels_every_image_and_reports_unreadable_ones(
    cli, trained_run: Path, dataset: Path, tmp_path: Path
):
    broken = tmp_path / "broken.jpg"
    broken.write_text("<html>")
    csv = tmp_path / "pred.csv"
    code, out, err = cli("predict", trained_run, dataset / "inf", broken, "--csv", csv)
    assert code == 0, err
    df = pd.read_csv(csv)
    assert len(df) == 6 + 1 and "1 unreadable" in out
    classes = ["circle", "cross", "square", "stripes", "triangle"]
    assert list(df.columns) == [
        "file",
        "predicted",
        "confidence",
        *(f"p_{c}" for c in classes),
        "error",
    ]
    good = df[df["error"].isna()]
    probs = good[[f"p_{c}" for c in classes]].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert (good["confidence"] == probs.max(axis=1)).all()
    assert set(good["predicted"]) <= set(classes)
    bad = df[df["file"] == str(broken)].iloc[0]
    assert bad["error"].startswith("not an image") and pd.isna(bad["predicted"])
    # nothing to label at all: bad input, a non-zero exit and no CSV
    code, out, err = cli("predict", trained_run, broken, "--csv", tmp_path / "none.csv")
    assert (
        code == 2
        and "not an image" in out
        and err
        == (
            "error: no image to label: none of the 1 file(s) could be read as an image "
            "(the table says why)\n"
        )
    )
    assert not (tmp_path / "none.csv").exists()


def test_predict_rejects_missing_paths_and_non_runs(cli, trained_run: Path, tmp_path: Path):
    code, _, err = cli("predict", trained_run, tmp_path / "nothing.jpg")
    assert code == 2 and "nothing.jpg: no such file or folder" in err
    code, _, err = cli("predict", tmp_path, tmp_path)
    assert code == 2 and "not a run folder" in err


def test_tensorboard_logs_when_enabled(cli, dataset: Path, tmp_path: Path):
    config = write_config(
        tmp_path / "tb.yaml",
        dataset,
        tmp_path / "runs",
        training={"epochs": 1},
        output={"tensorboard": True},
    )
    assert cli("train", config)[0] == 0
    (run,) = (tmp_path / "runs").iterdir()
    for split in ("train", "validation"):
        assert list((run / "tensorboard" / split).glob("events.out.tfevents.*"))


def test_markup_in_names_is_text_in_the_report_and_a_folder_is_no_report(
    cli, two_runs: list[Path], tmp_path: Path
):
    import shutil

    odd = Path(shutil.copytree(two_runs[0], tmp_path / "<b>bold</b><script>x()</script>"))
    metrics = json.loads((odd / "metrics.json").read_text())
    (odd / "metrics.json").write_text(json.dumps({**metrics, "name": "<i>run</i>"}))
    report = tmp_path / "r.html"
    assert cli("compare", odd, two_runs[1], "--report", report)[0] == 0
    page = report.read_text()
    assert "<i>run</i>" not in page and "&lt;i&gt;run&lt;/i&gt;" in page
    assert "<script>x()</script>" not in page
    folder = tmp_path / "a-folder"
    folder.mkdir()
    code, _, err = cli("compare", *two_runs, "--report", folder, "--csv", tmp_path / "d")
    assert code == 2 and err == f"error: --report {folder}: is a folder; name a file\n"
    assert list(folder.iterdir()) == [] and not list(tmp_path.glob("a-folder_*.png"))
    assert not (tmp_path / "d").exists()  # refused before anything is written
    code, _, err = cli("compare", *two_runs, "--csv", folder)
    assert code == 2 and err == f"error: --csv {folder}: is a folder; name a file\n"


def test_compare_puts_the_best_first_sorts_and_filters(cli, two_runs: list[Path], tmp_path):
    csv = tmp_path / "c.csv"
    assert cli("compare", *two_runs, "--csv", csv)[0] == 0
    table = pd.read_csv(csv)
    assert table["test_accuracy"].is_monotonic_decreasing  # best first
    code, out, _ = cli("compare", *reversed(two_runs))
    assert code == 0 and out.count("(best)") == 1
    assert cli("compare", *two_runs, "--csv", csv, "--sort", "-epochs")[0] == 0
    assert pd.read_csv(csv)["epochs"].tolist() == sorted(table["epochs"], reverse=True)
    assert cli("compare", *two_runs, "--csv", csv, "--sort", "training.learning_rate")[0] == 0
    assert pd.read_csv(csv)["training.learning_rate"].tolist() == [0.003, 0.5]
    code, _, _ = cli("compare", *two_runs, "--csv", csv, "--where", "training.learning_rate=0.5")
    assert code == 0 and pd.read_csv(csv)["epochs"].tolist() == [3]
    assert cli("compare", *two_runs, "--csv", csv, "--where", "status=completed")[0] == 0
    assert len(pd.read_csv(csv)) == 2
    code, _, err = cli("compare", *two_runs, "--where", "training.learning_rate=7")
    assert code == 2 and "no run has training.learning_rate = 7" in err
    code, _, err = cli("compare", *two_runs, "--sort", "speed")
    assert code == 2 and "--sort 'speed': at character 1: unknown key 'speed'" in err
    code, _, err = cli("compare", *two_runs, "--where", "status")
    assert code == 2 and "--where 'status': at character 7" in err
    assert "expected an operator" in err


def test_tags_and_notes_are_shown_and_filter(cli, dataset: Path, tmp_path: Path, two_runs):
    config = write_config(
        tmp_path / "tagged.yaml",
        dataset,
        tmp_path / "runs",
        training={"epochs": 1},
        tags=["baseline", "small"],
        notes="first try <b>bold</b>",
    )
    code, _, err = cli("train", config)
    assert code == 0, err
    (run,) = (tmp_path / "runs").iterdir()
    csv, report = tmp_path / "c.csv", tmp_path / "r.html"
    code, out, err = cli(
        "compare", run, *two_runs, "--where", "tag=small", "--csv", csv, "--report", report
    )
    assert code == 0, err
    table = pd.read_csv(csv)
    assert table["tags"].tolist() == ["baseline, small"]
    assert table["notes"].tolist() == ["first try <b>bold</b>"]
    assert "notes: first try &lt;b&gt;bold&lt;/b&gt;" in report.read_text()
    code, _, err = cli("compare", run, "--where", "tag=other")
    assert code == 2 and "no run has tag = other" in err
    bad = write_config(tmp_path / "bad.yaml", dataset, tmp_path / "runs", tags=["a, b"])
    code, _, err = cli("train", bad)
    assert code == 2 and "tags.0" in err
