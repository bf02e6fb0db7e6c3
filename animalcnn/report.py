"""The comparison report: one self-contained HTML file that opens offline.

plotly draws the interactive charts (zoom, hover for run and values); its
JavaScript is inlined once, so the file needs no network.
"""

from __future__ import annotations

import html
from datetime import datetime
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from animalcnn.figures import lr_drops, phase_starts
from animalcnn.runs import atomic_write

PERCENT = ["best_val_accuracy", "train_accuracy", "test_accuracy", "gap"]


def _accuracy_vs_params(df: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for column, symbol in (("train_accuracy", "circle"), ("test_accuracy", "square")):
        ok = df.dropna(subset=[column, "params_trainable"])
        fig.add_trace(
            go.Scatter(
                x=ok["params_trainable"], y=ok[column], mode="markers+text", text=ok["label"],
                textposition="top center", name=column.replace("_", " "),
                marker={"symbol": symbol, "size": 10},
                hovertemplate="%{text}<br>%{x:,} trainable<br>%{y:.2%}<extra></extra>",
            )
        )  # fmt: skip
    fig.update_layout(title="Accuracy against trainable parameters", yaxis_tickformat=".0%")
    fig.update_xaxes(type="log", title="trainable parameters")
    return fig


def _bars(df: pd.DataFrame, column: str, title: str) -> go.Figure:
    ok = df.dropna(subset=[column]).sort_values(column)
    fig = go.Figure(
        go.Bar(
            x=ok[column], y=ok["label"], orientation="h", text=ok[column].map("{:.1%}".format),
            hovertemplate="%{y}: %{x:.2%}<extra></extra>",
        )
    )  # fmt: skip
    fig.update_layout(title=title, xaxis_tickformat=".0%", height=200 + 28 * len(ok))
    return fig


def _curves(label: str, history: pd.DataFrame) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
    for col, metric in enumerate(("loss", "accuracy"), start=1):
        for prefix, name, colour in (
            ("", "training", "#1f77b4"),
            ("val_", "validation", "#ff7f0e"),
        ):
            fig.add_trace(
                go.Scatter(
                    x=history["epoch"], y=history[prefix + metric], mode="lines+markers",
                    name=f"{name} {metric}", legendgroup=name, line={"color": colour},
                    hovertemplate=f"{label}<br>epoch %{{x}}<br>{name} {metric} %{{y:.4f}}"
                    "<extra></extra>",
                ),
                row=1, col=col,
            )  # fmt: skip
        for epoch in lr_drops(history):
            fig.add_vline(x=epoch, line_dash="dot", line_color="grey", row=1, col=col)
        for epoch, _ in phase_starts(history):
            fig.add_vline(x=epoch - 0.5, line_dash="dash", row=1, col=col)
    fig.update_layout(title=f"{label}: training curves", height=380)
    fig.update_xaxes(title="epoch")
    return fig


def _table(df: pd.DataFrame) -> str:
    shown = df.drop(columns=["label"]).astype(object)
    for column in PERCENT:
        shown[column] = shown[column].map(lambda v: "-" if pd.isna(v) else f"{100 * v:.2f}%")
    for column in ("params_total", "params_trainable"):
        shown[column] = shown[column].map(lambda v: "-" if pd.isna(v) else f"{int(v):,}")
    table = shown.where(shown.notna(), "-").to_html(index=False, classes="runs", border=0)
    return f'<div style="overflow-x: auto">{table}</div>'


def write_report(df: pd.DataFrame, histories: dict[str, pd.DataFrame], path: Path) -> Path:
    """`df` is a `reports.collect` table with a `label` column; `histories` by label."""
    figures = [
        _accuracy_vs_params(df),
        _bars(df, "gap", "Train - test accuracy (overfitting)"),
        _bars(df, "test_accuracy", "Test accuracy"),
        *(_curves(label, h) for label, h in histories.items() if len(h)),
    ]
    charts = [
        fig.to_html(full_html=False, include_plotlyjs=(i == 0), default_height="460px")
        for i, fig in enumerate(figures)
    ]
    body = "\n".join(f'<section class="chart">{c}</section>' for c in charts)
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
