"""The comparison report: one self-contained HTML page that opens offline.

What a person reads instead of the terminal: the runs side by side (a sortable table
whose secondary columns fold away), what changed between their configs, the
comparison charts, and for each run its curves (best epoch marked), confusion
matrix, per-class scores, mistakes gallery and a few example images. The charts are
`reporting.charts` definitions drawn with plotly, whose JavaScript is inlined once;
images are embedded as small JPEG thumbnails, so the file needs no network.
"""

from __future__ import annotations

import base64
import errno
import io
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from animalcnn.atomic import atomic_write
from animalcnn.data.discovery import training_folder
from animalcnn.reporting.charts import (
    Chart,
    comparison_charts,
    confusion_chart,
    history_chart,
    to_plotly,
    write_png,
)
from animalcnn.reporting.tables import COMPARE_SPEC, flag_text, format_cell
from animalcnn.run_folder import ERRORS_PNG, EVALUATION, RunFolder

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
    config: dict[str, Any]
    evaluation: dict[str, Any] | None  # only while it belongs to the best checkpoint
    gallery: str | None  # a data: URI
    examples: dict[str, list[str]]  # class -> data: URIs


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


def _section(row: dict[str, Any], folder: Path) -> RunSection:
    from PIL import Image

    run = RunFolder(folder)
    config = run.config()
    evaluation = None
    current = row["test_accuracy"] is not None and run.file(EVALUATION).exists()
    if current:
        evaluation = run.read_json(EVALUATION)
    gallery = None
    if current and run.file(ERRORS_PNG).exists():
        with Image.open(run.file(ERRORS_PNG)) as img:
            gallery = _jpeg_uri(img, GALLERY_WIDTH)
    scored = Path(evaluation["data"]) if evaluation else config.data.dir / config.data.test_split
    test_dir = scored if scored.is_dir() else training_folder(config.data)
    classes = run.metrics().get("classes") or []
    return RunSection(
        row["label"], row, run.history(), config.model_dump(mode="json"), evaluation, gallery,
        _examples(test_dir, classes),
    )  # fmt: skip


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): data}


def what_changed(sections: list[RunSection]) -> pd.DataFrame:
    """The experiment settings that differ between the runs: one row per dotted key (the
    name and where output goes are not settings)."""
    flat = {
        s.label: _flatten({k: v for k, v in s.config.items() if k not in ("name", "output")})
        for s in sections
    }
    keys = sorted({k for f in flat.values() for k in f})

    def shown(f: dict[str, Any], key: str) -> str:
        return json.dumps(f[key]) if key in f else "-"

    rows = {
        key: [shown(flat[s.label], key) for s in sections]
        for key in keys
        if len({shown(f, key) for f in flat.values()}) > 1
    }
    return pd.DataFrame.from_dict(rows, orient="index", columns=[s.label for s in sections])


def _runs_table(rows: list[dict[str, Any]]) -> tuple[list[dict], list[list[dict]]]:
    """The runs table's columns and cells (shown text, sort key, folded or not)."""
    columns = [{"title": title, "kind": kind or "text", "secondary": p >= SECONDARY}
               for title, _, kind, p in COMPARE_SPEC]  # fmt: skip
    cells = []
    for r in rows:
        row = []
        for _, key, kind, p in COMPARE_SPEC:
            value = r[key]
            shown = (
                "stale"
                if key == "test_accuracy" and str(r["test_data"]).startswith("stale")
                else format_cell(value, kind)
            )
            if key == "run" and r.get("best"):
                shown += " (best)"
            sort = value if isinstance(value, int | float) else ""
            row.append({"shown": shown, "sort": sort, "secondary": p >= SECONDARY})
        cells.append(row)
    return columns, cells


def _per_class(evaluation: dict[str, Any]) -> dict[str, Any]:
    df = pd.DataFrame(evaluation["per_class"]).T[["precision", "recall", "f1", "support"]]
    for column in ("precision", "recall", "f1"):
        df[column] = df[column].map("{:.3f}".format)
    df["support"] = df["support"].astype(int)
    return {"columns": list(df.columns), "rows": [(i, list(r)) for i, r in df.iterrows()]}


def _charts_html(charts: list[Chart], first: bool) -> list[str]:
    return [
        to_plotly(chart).to_html(
            full_html=False, include_plotlyjs=first and i == 0, default_height="420px",
            config={"responsive": True},
        )
        for i, chart in enumerate(charts)
    ]  # fmt: skip


def _run_view(s: RunSection) -> dict[str, Any]:
    """What the page shows of one run."""
    r = s.row
    facts = (
        f"{r['arch']}, {r['status']}, device {r.get('device') or '-'}, backend "
        f"{r.get('backend') or '-'}, precision "
        f"{r['precision'] or '-'}; test figures from {r['test_data'] or 'no evaluation'}"
        + (f"; flags: {flag_text(r['flags'])}" if r.get("flags") else "")
        + (f"; notes: {r['notes']}" if r.get("notes") else "")
    )
    charts = _charts_html([history_chart(s.history, s.label)], False) if len(s.history) else []
    if s.evaluation is not None:
        charts += _charts_html([confusion_chart(s.evaluation, s.label)], False)
    return {
        "label": s.label,
        "facts": facts,
        "charts": charts,
        "per_class": _per_class(s.evaluation) if s.evaluation is not None else None,
        "gallery": s.gallery,
        "examples": [(n, u) for n, u in s.examples.items()] if any(s.examples.values()) else [],
    }


def write_report(rows: list[dict[str, Any]], sections: list[RunSection], path: Path) -> Path:
    """The page for `compare`'s rows and the sections of its readable runs."""
    from animalcnn.reporting.pages import render

    df = pd.DataFrame(rows)
    changed = what_changed(sections) if len(sections) > 1 else pd.DataFrame()
    columns, cells = _runs_table(rows)
    page = render(
        "report.html",
        stamp=datetime.now().isoformat(timespec="seconds"),
        columns=columns,
        rows=cells,
        changes={
            "labels": list(changed.columns),
            "rows": [(k, list(v)) for k, v in changed.iterrows()],
        },  # fmt: skip
        charts=_charts_html(list(comparison_charts(df).values()), True),
        sections=[_run_view(s) for s in sections],
    )
    atomic_write(path, page)
    return path


def write_comparison(rows: list[dict[str, Any]], folders: list[Path], path: Path) -> list[Path]:
    """The report of `compare`'s rows (one per folder) at `path`, and its comparison
    figures as PNG beside it; damaged folders are in the table only. Returns what it
    wrote."""
    if path.is_dir():  # checked before any figure is written beside it
        raise IsADirectoryError(errno.EISDIR, "is a folder; name a file", str(path))
    sections = []
    for row, folder in zip(rows, folders, strict=True):
        if not str(row["status"]).startswith("damaged"):
            sections.append(_section(row, folder))
    df = pd.DataFrame(rows)
    prefix = path.with_suffix("")
    pngs = [
        write_png(chart, prefix.with_name(f"{prefix.name}_{name}.png"))
        for name, chart in comparison_charts(df).items()
    ]
    return [write_report(rows, sections, path), *pngs]
