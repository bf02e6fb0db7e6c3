"""The comparison report: one HTML page that opens offline.

What a person reads instead of the terminal: the runs best first (a sortable table with
the settings that differ between them as columns, its secondary columns folded), every
run's validation curves on one chart, the comparison charts, and for each run its
curves (best epoch marked), confusion matrix, per-class scores and mistakes gallery
(folded but for the best run's), then a few example images per class. The charts are
`figures.charts` definitions drawn with plotly, whose JavaScript is one file in
`animalcnn-assets/` beside the page, shared by every page written there (4.8 MB once,
instead of inside each page); images are embedded as small JPEG thumbnails.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from animalcnn.atomic import PNG_MARK, atomic_write, check_replaceable
from animalcnn.data.discovery import training_folder
from animalcnn.figures.charts import (
    COMPARISON_FIGURES,
    Chart,
    comparison_charts,
    confusion_chart,
    curves_chart,
    history_chart,
    to_plotly,
    write_png,
)
from animalcnn.reporting.runs_table.columns import format_cell, layout
from animalcnn.reporting.runs_table.rows import flag_text, value_of
from animalcnn.run_folder import ERRORS_PNG, Evaluation, RunFolder

REPORT_MARK = b"<title>animalcnn: "  # how report.html's head begins
EXAMPLES_PER_CLASS = 3
THUMBNAIL = 96  # pixels, example images
GALLERY_WIDTH = 960  # pixels, the mistakes gallery
SECONDARY = 3  # compare columns of this priority or lower fold away by default


@dataclass
class RunSection:
    """What the report shows of one run."""

    label: str
    row: dict[str, Any]
    history: pd.DataFrame
    evaluation: Evaluation | None  # only while it belongs to the best checkpoint
    gallery: str | None  # a data: URI
    examples: dict[str, list[str]]  # class -> data: URIs
    classes: list[str]


def _jpeg_uri(image: Any, width: int | None = None) -> str:
    """A PIL image as a data: URI of a JPEG, at most `width` pixels wide."""
    image = image.convert("RGB")
    if width is not None and image.width > width:
        image = image.resize((width, round(image.height * width / image.width)))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _examples(folder: Path, classes: list[str]) -> dict[str, list[str]]:
    from PIL import Image

    from animalcnn.data.decoding import try_load
    from animalcnn.data.files import list_images

    shown: dict[str, list[str]] = {}
    for name in classes:
        files = list_images(folder / name) if (folder / name).is_dir() else []
        loaded = (try_load(f, THUMBNAIL) for f in files[: 3 * EXAMPLES_PER_CLASS])
        images = [Image.fromarray(a) for a in loaded if not isinstance(a, str)]
        shown[name] = [_jpeg_uri(img) for img in images[:EXAMPLES_PER_CLASS]]
    return shown


def run_section(row: dict[str, Any], folder: Path, examples: bool = True) -> RunSection:
    """What the page shows of one run: its history, current evaluation, mistakes gallery and
    (with `examples`) a few images per class of the data it was scored on."""
    from PIL import Image

    run = RunFolder(folder)
    config = run.config()
    scored = row["test_result"].evaluation
    gallery = None
    if scored is not None and run.file(ERRORS_PNG).exists():
        with Image.open(run.file(ERRORS_PNG)) as img:
            gallery = _jpeg_uri(img, GALLERY_WIDTH)
    data = Path(scored.data) if scored and scored.data else config.data.dir / config.data.test_split
    test_dir = data if data.is_dir() else training_folder(config.data)
    classes = run.metrics().classes
    return RunSection(
        row["label"],
        row,
        run.history().frame(),
        scored,
        gallery,
        _examples(test_dir, classes) if examples else {},
        classes,
    )


def runs_table(
    rows: list[dict[str, Any]], links: list[str], sorted_by: bool = False
) -> dict[str, Any]:
    """The runs table as a page shows it (`runs_table.html`): `tables.layout`'s columns
    (folded by priority, numbers right-aligned), each cell's text and sort key, the run
    linked to `links[i]`, the best run's badge, flags as badges with their reasons. The
    score that ranks the rows is marked as sorted, unless they are `sorted_by` a query."""
    view = layout(rows)
    ranked_by = (
        None
        if sorted_by
        else (
            "test_accuracy"
            if any(r["test_accuracy"] is not None for r in rows)
            else "best_val_accuracy"
        )
    )

    def numeric(key: str, kind: str) -> bool:
        values = [value_of(r, key) for r in rows]
        return kind in ("pct", "int", "float") or (
            kind == "setting" and all(isinstance(v, int | float) or v is None for v in values)
        )

    columns = [
        {
            "title": title,
            "numeric": numeric(key, kind),
            "secondary": p >= SECONDARY,
            "sorted": key == ranked_by,
        }
        for title, key, kind, p in view.columns
    ]
    cells = []
    for i, r in enumerate(rows):
        row = []
        for _, key, _, _ in view.columns:
            value = value_of(r, key)
            shown = format_cell(r["run"]) if key == "run" else view.cells[key][i]
            row.append(
                {
                    "shown": "" if key == "flags" else shown,
                    "sort": value
                    if isinstance(value, int | float) and not isinstance(value, bool)
                    else "",
                    "best": key == "run" and r["best"],
                    "link": links[i] if key == "run" else None,
                    "flags": r["flags"] if key == "flags" else [],
                }
            )
        cells.append(row)
    return {"columns": columns, "rows": cells, "caption": view.caption}


def _per_class(evaluation: Evaluation) -> list[dict[str, Any]]:
    """Precision, recall and F1 per class as fractions (drawn as bars) and the support."""
    return [
        {"name": name, "scores": [s.precision, s.recall, s.f1], "support": s.support}
        for name, s in evaluation.per_class.items()
    ]


def _charts_html(charts: list[Chart]) -> list[str]:
    """Plotly figures as HTML fragments; the page loads plotly.js once (`pages.plotly_asset`)."""
    return [
        to_plotly(chart).to_html(
            full_html=False,
            include_plotlyjs=False,
            default_height="420px",
            config={"responsive": True},
        )
        for chart in charts
    ]


def run_view(s: RunSection, index: int) -> dict[str, Any]:
    """What the page shows of one run; the best run's section is open, the others folded."""
    r = s.row
    facts = (
        f"{r['arch']}, {r['status']}, device {r['device'] or '-'}, backend "
        f"{r['backend'] or '-'}, precision "
        f"{r['precision'] or '-'}; test figures from {r['test_data'] or 'no evaluation'}"
        + (f"; flags: {flag_text(r['flags'])}" if r["flags"] else "")
        + (f"; notes: {r['notes']}" if r["notes"] else "")
    )
    charts, missing = [], []
    if len(s.history):
        charts += _charts_html([history_chart(s.history, s.label)])
    else:
        missing.append("no training curves: the run has no finished epoch")
    if s.evaluation is not None:
        ev = s.evaluation
        charts += _charts_html([confusion_chart(ev.classes, ev.confusion_matrix, s.label)])
    else:
        missing.append(
            "no confusion matrix or per-class scores: the best checkpoint is not "
            "evaluated (animalcnn evaluate)"
        )
    return {
        "anchor": f"run-{index}",
        "label": s.label,
        "open": r["best"],
        "flags": r["flags"] or [],
        "facts": facts,
        "charts": charts,
        "missing": missing,
        "per_class": _per_class(s.evaluation) if s.evaluation is not None else None,
        "gallery": s.gallery,
    }


def side_by_side(df: pd.DataFrame, sections: list[RunSection]) -> tuple[list[str], list[str]]:
    """The comparison charts that have something to show, and a line for each left out."""
    classes = max((len(s.classes) for s in sections), default=0)
    charts, missing = [], []
    curves = curves_chart({s.label: s.history for s in sections}, classes)
    if curves is None:
        missing.append("validation curves: no run has a finished epoch")
    else:
        charts.append(curves)
    for name, chart in comparison_charts(df).items():
        if any(series.x for panel in chart.panels for series in panel.series):
            charts.append(chart)
        else:
            missing.append(f"{chart.title}: {EMPTY_REASONS[name]}")
    return _charts_html(charts), missing


EMPTY_REASONS = {
    "accuracy_vs_params": "no run has its parameter count and an accuracy",
    "gap": "no run is evaluated on its current best checkpoint (animalcnn evaluate)",
    "test_accuracy": "no run is evaluated on its current best checkpoint (animalcnn evaluate)",
}


def write_report(
    rows: list[dict[str, Any]],
    sections: list[RunSection],
    path: Path,
    query: str = "",
    sort: str = "",
) -> Path:
    """The page for `compare`'s rows (best first, or in `sort`'s order) and the sections
    of its readable runs; `query` and `sort` are said above the table."""
    from animalcnn.reporting.pages import plotly_asset, render

    charts, missing = side_by_side(pd.DataFrame(rows), sections)
    runs = [run_view(s, i) for i, s in enumerate(sections)]
    anchors = dict(zip((s.row["run"] for s in sections), (r["anchor"] for r in runs), strict=True))
    examples = next((s.examples for s in sections if any(s.examples.values())), {})
    page = render(
        "report.html",
        stamp=datetime.now().isoformat(timespec="seconds"),
        table=runs_table(
            rows,
            [f"#{anchors[r['run']]}" if r["run"] in anchors else "" for r in rows],
            bool(sort),
        ),
        count=len(rows),
        plotly_src=plotly_asset(path.parent),
        charts=charts,
        missing=missing,
        sections=runs,
        examples=list(examples.items()),
        where=query,
        sorted_by=sort,
    )
    atomic_write(path, page)
    return path


def figure_path(report: Path, name: str) -> Path:
    """Where the report at `report` keeps its figure `name`: beside it, named after it."""
    prefix = report.with_suffix("")
    return prefix.with_name(f"{prefix.name}_{name}.png")


def check_report_target(path: Path) -> None:
    """Refuse, before any work, a report path (or a figure's beside it) that holds
    something other than a report of ours: `--report` may name a user's file."""
    check_replaceable(path, REPORT_MARK, "a report", "--report")
    for name in COMPARISON_FIGURES:
        check_replaceable(figure_path(path, name), PNG_MARK, "a report's figure", "--report")


def write_comparison(
    rows: list[dict[str, Any]], folders: list[Path], path: Path, query: str = "", sort: str = ""
) -> list[Path]:
    """The report of `compare`'s rows (one per folder, as `read_runs` kept and ordered
    them for `query` and `sort`) at `path`, and its comparison figures as PNG beside it
    (`check_report_target` first); damaged folders are in the table only. Returns what
    it wrote."""
    sections = []
    for row, folder in zip(rows, folders, strict=True):
        if not str(row["status"]).startswith("damaged"):
            sections.append(run_section(row, folder))
    df = pd.DataFrame(rows)
    pngs = [
        write_png(chart, figure_path(path, name)) for name, chart in comparison_charts(df).items()
    ]
    return [write_report(rows, sections, path, query, sort), *pngs]
