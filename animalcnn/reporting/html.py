"""The comparison report: one self-contained HTML file that opens offline.

The charts are `reporting.charts` definitions drawn with plotly (zoom, hover for
run and values); plotly's JavaScript is inlined once, so the file needs no network.
"""

from __future__ import annotations

import html
from datetime import datetime
from pathlib import Path

import pandas as pd

from animalcnn.atomic import atomic_write
from animalcnn.reporting.charts import comparison_charts, history_chart, to_plotly, write_png
from animalcnn.run_folder import RunFolder

PERCENT = ["best_val_accuracy", "train_accuracy", "test_accuracy", "gap"]


def _table(df: pd.DataFrame) -> str:
    shown = df.drop(columns=["label"]).astype(object)
    for column in PERCENT:
        shown[column] = shown[column].map(lambda v: "-" if pd.isna(v) else f"{100 * v:.2f}%")
    for column in ("params_total", "params_trainable"):
        shown[column] = shown[column].map(lambda v: "-" if pd.isna(v) else f"{int(v):,}")
    table = shown.where(shown.notna(), "-").to_html(index=False, classes="runs", border=0)
    return f'<div style="overflow-x: auto">{table}</div>'


def write_report(df: pd.DataFrame, histories: dict[str, pd.DataFrame], path: Path) -> Path:
    """`df` is a `reporting.tables.collect` table with a `label` column; `histories` by label."""
    charts = [
        *comparison_charts(df).values(),
        *(history_chart(h, label) for label, h in histories.items() if len(h)),
    ]
    parts = [
        to_plotly(chart).to_html(full_html=False, include_plotlyjs=(i == 0), default_height="460px")
        for i, chart in enumerate(charts)
    ]
    body = "\n".join(f'<section class="chart">{c}</section>' for c in parts)
    stamp = datetime.now().isoformat(timespec="seconds")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>animalcnn: {len(df)} runs</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table.runs {{ border-collapse: collapse; font-size: 0.9em; }}
table.runs th, table.runs td {{ padding: 0.3em 0.7em; border-bottom: 1px solid #ddd; }}
table.runs td {{ text-align: right; }}
section.chart {{ margin-top: 2em; }}
</style></head><body>
<h1>animalcnn: {len(df)} runs</h1>
<p>Written {html.escape(stamp)}. Accuracy is the best-checkpoint's (lowest val_loss);
gap = its training accuracy - test accuracy.</p>
{_table(df)}
{body}
</body></html>
"""
    atomic_write(path, page)
    return path


def write_pngs(df: pd.DataFrame, prefix: Path) -> list[Path]:
    """The comparison charts as `<prefix>_<chart>.png` beside the report."""
    return [
        write_png(chart, prefix.with_name(f"{prefix.name}_{name}.png"))
        for name, chart in comparison_charts(df).items()
    ]


def write_comparison(rows: list[dict], folders: list[Path], path: Path) -> list[Path]:
    """The report of `compare`'s rows (one per folder) at `path`, and its PNG figures
    beside it; damaged folders are in the table but have no curves. Returns what it wrote."""
    df = pd.DataFrame(rows)
    histories = {
        row["label"]: RunFolder(folder).history()
        for row, folder in zip(rows, folders, strict=True)
        if not str(row["status"]).startswith("damaged")
    }
    return [write_report(df, histories, path), *write_pngs(df, path.with_suffix(""))]
