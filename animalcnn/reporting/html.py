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
import html
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
from animalcnn.reporting.tables import COMPARE_SPEC, format_cell
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


def _runs_table(rows: list[dict[str, Any]]) -> str:
    head = "".join(
        f'<th class="{"secondary" if p >= SECONDARY else ""}" data-kind="{kind or "text"}">'
        f"{html.escape(title)}</th>"
        for title, _, kind, p in COMPARE_SPEC
    )
    body = []
    for r in rows:
        cells = []
        for _, key, kind, p in COMPARE_SPEC:
            value = r[key]
            shown = (
                "stale"
                if key == "test_accuracy" and str(r["test_data"]).startswith("stale")
                else format_cell(value, kind)
            )
            sort = value if isinstance(value, int | float) else ""
            cls = "secondary" if p >= SECONDARY else ""
            cells.append(f'<td class="{cls}" data-sort="{html.escape(str(sort))}">'
                         f"{html.escape(shown)}</td>")  # fmt: skip
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        '<label><input type="checkbox" id="all-columns"> show every column</label>'
        f'<table class="runs sortable" id="runs"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _plain_table(df: pd.DataFrame, css: str) -> str:
    return df.to_html(classes=css, border=0, escape=True)


def _per_class(evaluation: dict[str, Any]) -> str:
    df = pd.DataFrame(evaluation["per_class"]).T[["precision", "recall", "f1", "support"]]
    for column in ("precision", "recall", "f1"):
        df[column] = df[column].map("{:.3f}".format)
    df["support"] = df["support"].astype(int)
    return _plain_table(df, "scores")


def _charts_html(charts: list[Chart], first: bool) -> list[str]:
    return [
        to_plotly(chart).to_html(
            full_html=False, include_plotlyjs=first and i == 0, default_height="420px",
            config={"responsive": True},
        )
        for i, chart in enumerate(charts)
    ]  # fmt: skip


def _run_html(s: RunSection) -> str:
    r = s.row
    facts = (
        f"{html.escape(str(r['arch']))}, {html.escape(str(r['status']))}, device "
        f"{html.escape(str(r.get('device') or '-'))}, precision "
        f"{html.escape(str(r['precision'] or '-'))}; test figures from "
        f"{html.escape(str(r['test_data'] or 'no evaluation'))}"
    )
    parts = [f"<p>{facts}</p>"]
    if len(s.history):
        parts += _charts_html([history_chart(s.history, s.label)], False)
    if s.evaluation is not None:
        parts += _charts_html([confusion_chart(s.evaluation, s.label)], False)
        parts.append("<h4>per class</h4>" + _per_class(s.evaluation))
    if s.gallery is not None:
        parts.append(f'<h4>most confident mistakes</h4><img class="gallery" src="{s.gallery}" '
                     'alt="mistakes gallery">')  # fmt: skip
    if any(s.examples.values()):
        cells = "".join(
            f"<figure><figcaption>{html.escape(name)}</figcaption>"
            + "".join(f'<img src="{uri}" alt="{html.escape(name)}">' for uri in uris)
            + "</figure>"
            for name, uris in s.examples.items()
        )
        parts.append(f'<h4>examples per class</h4><div class="examples">{cells}</div>')
    return (
        f'<details class="run" open><summary>{html.escape(s.label)}</summary>'
        f"{''.join(parts)}</details>"
    )


STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1240px; color: #222;
       padding: 0 1em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { padding: 0.25em 0.55em; border-bottom: 1px solid #ddd; }
td { text-align: right; } th { background: #f4f4f4; }
table.sortable th { cursor: pointer; } table.sortable th:hover { background: #e6e6e6; }
table.runs .secondary { display: none; } table.runs.all .secondary { display: table-cell; }
table.runs td:first-child, table.changes th, table.changes td { text-align: left; }
table.runs td:first-child { max-width: 18em; overflow-wrap: anywhere; }
details.run { margin-top: 1.5em; border-top: 2px solid #ccc; }
details.run summary { font-size: 1.2em; font-weight: 600; cursor: pointer; padding: 0.4em 0; }
img.gallery { max-width: 100%; }
div.examples { display: flex; flex-wrap: wrap; gap: 1em; }
div.examples figure { margin: 0; } div.examples img { margin-right: 2px; }
"""

SCRIPT = """
document.getElementById('all-columns').addEventListener('change', e =>
  document.getElementById('runs').classList.toggle('all', e.target.checked));
document.querySelectorAll('table.sortable th').forEach((th, col) => {
  th.addEventListener('click', () => {
    const body = th.closest('table').tBodies[0];
    const up = th.dataset.dir !== 'up'; th.dataset.dir = up ? 'up' : 'down';
    const key = tr => { const td = tr.cells[col];
      return td.dataset.sort !== '' ? parseFloat(td.dataset.sort) : td.textContent; };
    const rows = [...body.rows].sort((a, b) => { const x = key(a), y = key(b);
      const c = typeof x === 'number' && typeof y === 'number' ? x - y
        : String(x).localeCompare(String(y)); return up ? c : -c; });
    rows.forEach(r => body.appendChild(r));
  });
});
"""


def write_report(rows: list[dict[str, Any]], sections: list[RunSection], path: Path) -> Path:
    """The page for `compare`'s rows and the sections of its readable runs."""
    df = pd.DataFrame(rows)
    charts = _charts_html(list(comparison_charts(df).values()), True)
    changed = what_changed(sections) if len(sections) > 1 else pd.DataFrame()
    changes = (
        _plain_table(changed, "changes") if len(changed) else "<p>The configs are the same.</p>"
    )
    stamp = datetime.now().isoformat(timespec="seconds")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>animalcnn: {len(rows)} runs</title>
<style>{STYLE}</style></head><body>
<h1>animalcnn: {len(rows)} runs</h1>
<p>Written {html.escape(stamp)}. Accuracies are the best checkpoint's (lowest val_loss);
gap = its training accuracy - test accuracy. A test accuracy evaluated on an earlier
best checkpoint reads <em>stale</em>. Click a column to sort.</p>
{_runs_table(rows)}
<h2>What changed between the runs</h2>
{changes}
<h2>Side by side</h2>
{"".join(f'<section class="chart">{c}</section>' for c in charts)}
<h2>Each run</h2>
{"".join(_run_html(s) for s in sections)}
<script>{SCRIPT}</script>
</body></html>
"""
    atomic_write(path, page)
    return path


def write_comparison(rows: list[dict[str, Any]], folders: list[Path], path: Path) -> list[Path]:
    """The report of `compare`'s rows (one per folder) at `path`, and its comparison
    figures as PNG beside it; damaged folders are in the table only. Returns what it
    wrote."""
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
