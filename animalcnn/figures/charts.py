"""Every chart animalcnn draws, defined once and drawn two ways.

A chart is data (`Chart`: panels of series, vertical marks and heat maps); the
definitions below say what each figure shows, and two renderers draw any chart:
`write_png` with matplotlib (headless, no GUI backend) for the run folder and
beside the report, and `to_plotly` for the interactive HTML report. A change to a
figure is made once, in its definition. No TensorFlow here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from animalcnn.atomic import PNG_METADATA, atomic_write

if TYPE_CHECKING:
    import plotly.graph_objects as go

TRAINING_COLOUR, VALIDATION_COLOUR = "#1f77b4", "#ff7f0e"
DPI = 150


@dataclass
class Series:
    """One line, set of points or set of bars; `labels` name the points (hover, annotations)."""

    name: str
    x: list[Any]
    y: list[Any]
    kind: Literal["line", "scatter", "barh"] = "line"
    labels: list[str] | None = None
    marker: Literal["circle", "square"] = "circle"
    colour: str | None = None
    dashed: bool = False
    hidden: bool = False  # in the legend, drawn when clicked (plotly); not in the PNG


@dataclass
class Mark:
    """A vertical line at `x`, drawn by its kind (`MARK_STYLES`)."""

    x: float
    label: str
    kind: Literal["lr_drop", "phase", "best", "suggestion"]


# kind: (matplotlib line style, plotly dash, colour, in the legend, label written on the plot)
MARK_STYLES = {
    "lr_drop": (":", "dot", "grey", True, False),
    "phase": ("--", "dash", "black", False, True),
    "best": ("-", "solid", "#2ca02c", True, False),
    "suggestion": ("--", "dash", "black", False, True),
}


@dataclass
class Level:
    """A horizontal reference line at `y` (chance level), its label written on it."""

    y: float
    label: str


@dataclass
class Heatmap:
    """A matrix with its row and column names; `fmt` formats the cell values."""

    values: np.ndarray
    rows: list[str]
    columns: list[str]
    fmt: str


@dataclass
class Panel:
    title: str
    x_label: str = ""
    y_label: str = ""
    series: list[Series] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    levels: list[Level] = field(default_factory=list)
    heatmap: Heatmap | None = None
    x_log: bool = False
    y_log: bool = False
    percent: Literal["x", "y"] | None = None  # the axis whose values are fractions
    note: str = ""  # a few lines written under the legend
    y_range: tuple[float, float] | None = None
    integer_x: bool = False
    share: float = 1.0  # its width relative to the chart's other panels


@dataclass
class Chart:
    title: str
    panels: list[Panel]
    width: float = 8.0  # inches for the PNG (x100 pixels in the report)
    height: float = 5.0


# ---- definitions ---------------------------------------------------------------------


def lr_drops(history: pd.DataFrame) -> list[int]:
    """Epochs whose learning rate is lower than the previous epoch's, within a phase; not
    in a phase whose rate changes at every epoch (a step schedule: its decay is the rate
    panel's curve, not events)."""
    same_phase = history["phase"].eq(history["phase"].shift())
    rate = history["lr"]
    dropped = rate < rate.shift() * (1 - 1e-6)
    moved = (rate - rate.shift()).abs() > rate.shift().abs() * 1e-6
    stepped = moved[same_phase].groupby(history["phase"][same_phase]).agg(["all", "size"])
    scheduled = stepped.index[stepped["all"] & (stepped["size"] >= 2)]
    keep = same_phase & dropped & ~history["phase"].isin(scheduled)
    return history.loc[keep, "epoch"].astype(int).tolist()


def phase_starts(history: pd.DataFrame) -> list[tuple[int, str]]:
    """(first epoch, name) of every phase after the first."""
    changed = history["phase"].ne(history["phase"].shift())
    starts = history.loc[changed, ["epoch", "phase"]].itertuples(index=False)
    return [(int(e), str(p)) for e, p in starts][1:]


def history_chart(history: pd.DataFrame, title: str) -> Chart:
    """Loss and accuracy per epoch, training vs validation, LR drops and phases marked."""
    marks = [Mark(e, "learning rate drop", "lr_drop") for e in lr_drops(history)]
    marks += [Mark(e - 0.5, phase, "phase") for e, phase in phase_starts(history)]
    if history["val_loss"].notna().any():
        best = history.loc[history["val_loss"].idxmin(), "epoch"]
        marks.append(Mark(int(best), "best checkpoint", "best"))
    epochs = history["epoch"].tolist()
    panels = []
    for metric in ("loss", "accuracy"):
        series = [
            Series(f"{name} {metric}", epochs, history[prefix + metric].tolist(), colour=colour)
            for prefix, name, colour in (
                ("", "training", TRAINING_COLOUR),
                ("val_", "validation", VALIDATION_COLOUR),
            )
        ]
        panels.append(
            Panel(
                metric,
                "epoch",
                metric,
                series,
                marks,
                percent="y" if metric == "accuracy" else None,
                integer_x=True,
            )
        )
    rate = Series("learning rate", epochs, history["lr"].tolist(), colour=TRAINING_COLOUR)
    phases = [m for m in marks if m.kind == "phase"]
    panels.append(
        Panel(
            "learning rate (epoch start)",
            "epoch",
            "rate",
            [rate],
            phases,
            y_log=True,
            integer_x=True,
            share=0.6,
        )
    )
    return Chart(f"{title}: training curves", panels, width=14, height=4.2)


def confusion_chart(classes: list[str], confusion: list[list[int]], title: str) -> Chart:
    """The confusion matrix (rows true, columns predicted) as the share of each true class
    (recall on the diagonal) and as counts."""
    counts = np.asarray(confusion, dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    panels = [
        Panel(label, "predicted", "true", heatmap=Heatmap(matrix, classes, classes, fmt))
        for matrix, label, fmt in (
            (normalised, "% of each true class", "{:.0%}"),
            (counts, "images", "{:.0f}"),
        )
    ]
    k = len(classes)
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    return Chart(f"{title}: accuracy {100 * accuracy:.2f}%", panels, 11, 0.45 * k + 3)


# `comparison_charts`' names (the file-name suffixes of a report's figures): accuracy
# against parameters, then one bar chart per column.
COMPARISON_FIGURES = ("accuracy_vs_params", "gap", "test_accuracy")


def comparison_charts(df: pd.DataFrame) -> dict[str, Chart]:
    """The notebook's comparison figures for a `reporting.runs_table` table (with its
    `label` column), by file-name suffix: accuracy against trainable parameters, the
    train-test gap, and test accuracy per model."""
    scatter = []
    for column, marker in (("train_accuracy", "circle"), ("test_accuracy", "square")):
        ok = df.dropna(subset=[column, "params_trainable"])
        scatter.append(
            Series(
                column.replace("_", " "),
                ok["params_trainable"].tolist(),
                ok[column].tolist(),
                kind="scatter",
                labels=ok["label"].tolist(),
                marker=marker,
            )
        )
    scatter_name, *columns = COMPARISON_FIGURES
    charts = {
        scatter_name: Chart(
            "Accuracy against trainable parameters",
            # a log axis with no point on it is an error: runs without a parameter count
            [
                Panel(
                    "",
                    "trainable parameters",
                    "accuracy",
                    scatter,
                    x_log=any(s.x for s in scatter),
                    percent="y",
                )
            ],
        )
    }
    titles = ("Train - test accuracy (overfitting)", "Test accuracy")
    for column, title in zip(columns, titles, strict=True):
        ok = df.dropna(subset=[column]).sort_values(column)
        bars = Series(title, ok[column].tolist(), ok["label"].tolist(), kind="barh")
        panel = Panel("", column.replace("_", " "), "", [bars], percent="x")
        charts[column] = Chart(title, [panel], 8, 0.35 * max(len(ok), 3) + 1.5)
    return charts


RUN_COLOURS = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]


def curves_chart(histories: dict[str, pd.DataFrame], classes: int) -> Chart | None:
    """Every run's validation accuracy per epoch on one panel, its training accuracy
    dashed and hidden until asked for, chance level drawn; None without any epoch."""
    series = []
    for i, (label, history) in enumerate(h for h in histories.items() if len(h[1])):
        colour = RUN_COLOURS[i % len(RUN_COLOURS)]
        epochs = history["epoch"].tolist()
        series.append(
            Series(f"{label} validation", epochs, history["val_accuracy"].tolist(), colour=colour)
        )
        series.append(
            Series(
                f"{label} training",
                epochs,
                history["accuracy"].tolist(),
                colour=colour,
                dashed=True,
                hidden=True,
            )
        )
    if not series:
        return None
    chance = [Level(1 / classes, f"chance ({1 / classes:.0%})")] if classes > 1 else []
    panel = Panel("", "epoch", "accuracy", series, levels=chance, percent="y", integer_x=True)
    return Chart(
        "Validation accuracy per epoch (click a legend entry to show training)", [panel], 10, 4.5
    )


def lr_find_chart(
    lrs: Any,
    losses: Any,
    suggestions: dict[str, float],
    minimum: float,
    rules: dict[str, str],
    title: str,
) -> Chart:
    """The learning-rate range test: loss against learning rate (log axis), the lowest
    loss and each suggestion marked on the curve, the rule of each written on the plot."""
    xs, ys = list(map(float, lrs)), list(map(float, losses))
    curve = Series("smoothed training loss", xs, ys)

    def at(rate: float) -> float:
        return ys[int(np.argmin(np.abs(np.log(xs) - np.log(rate))))]

    points = Series(
        "suggestions",
        list(suggestions.values()),
        [at(r) for r in suggestions.values()],
        kind="scatter",
        labels=[f"{name} {r:.1e}" for name, r in suggestions.items()],
        colour="#d62728",
    )
    lowest = Series(
        "lowest loss",
        [minimum],
        [at(minimum)],
        kind="scatter",
        labels=[f"minimum {minimum:.1e}"],
        marker="square",
        colour="black",
    )
    note = "\n".join(f"{name}: {rule}" for name, rule in rules.items())
    finite = [y for y in ys if np.isfinite(y)]
    low, start = min(finite), finite[0]
    top = start + 0.5 * max(start - low, 0.2 * abs(start))  # the divergence leaves the top
    panel = Panel(
        "",
        "learning rate",
        "loss",
        [curve, points, lowest],
        x_log=True,
        note=note,
        y_range=(low - 0.1 * (top - low), top),
    )
    return Chart(f"{title}: learning-rate range test", [panel], 9, 5.5)


MIN_PERCENT_SPAN = 0.1  # a percent axis spans at least 10 points


def y_limits(panel: Panel) -> tuple[float, float] | None:
    """The panel's y range: its own, or for a percent axis whose values lie close
    together, at least MIN_PERCENT_SPAN around them (within 0-100 %), so that a flat
    curve at chance reads as flat, not as noise zoomed up; None: the renderer's own."""
    if panel.y_range is not None:
        return panel.y_range
    if panel.percent != "y":
        return None
    ys = [y for s in panel.series if not s.hidden for y in s.y]
    return percent_span([*ys, *(level.y for level in panel.levels)])


def percent_span(values: list[Any]) -> tuple[float, float] | None:
    """For fractions that lie within MIN_PERCENT_SPAN of each other, a range of that
    span around them, within 0-100 %; None when they spread wider (or there are none)."""
    ys = [float(y) for y in values if y is not None and np.isfinite(y)]
    if not ys or max(ys) - min(ys) >= MIN_PERCENT_SPAN:
        return None
    middle = (max(ys) + min(ys)) / 2
    low = min(max(middle - MIN_PERCENT_SPAN / 2, 0.0), 1.0 - MIN_PERCENT_SPAN)
    return low, low + MIN_PERCENT_SPAN


# ---- matplotlib ----------------------------------------------------------------------


def write_png(chart: Chart, path: Path) -> Path:
    """Draw `chart` with matplotlib and write it as a PNG, atomically."""
    buffer = BytesIO()
    draw(chart).savefig(buffer, format="png", dpi=DPI, metadata=PNG_METADATA)
    atomic_write(path, buffer.getvalue())
    return path


def draw(chart: Chart) -> Any:
    """`chart` as a matplotlib Figure (headless), laid out so no text crosses another."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(chart.width, chart.height), layout="constrained")
    FigureCanvasAgg(fig)
    ratios = [p.share for p in chart.panels]
    axes = fig.subplots(1, len(chart.panels), squeeze=False, width_ratios=ratios)[0]
    for ax, panel in zip(axes, chart.panels, strict=True):
        if panel.heatmap is not None:
            _draw_heatmap(fig, ax, panel.heatmap)
        for s in panel.series:
            if not s.hidden:
                _draw_series(ax, s)
        _draw_levels_and_marks(ax, panel)
        if panel.x_log:
            ax.set_xscale("log")
        if panel.y_log:
            ax.set_yscale("log")
        limits = y_limits(panel)
        if limits is not None:
            ax.set_ylim(*limits)
        labelled_points = [
            p for s in panel.series if s.labels for p in zip(s.labels, s.x, s.y, strict=True)
        ]
        others = [
            (x, y)
            for s in panel.series
            if not s.labels and not s.hidden and s.kind != "barh"
            for x, y in zip(s.x, s.y, strict=True)
        ]
        _place_labels(fig, ax, labelled_points, others)
        _draw_axes(ax, panel)
    fig.suptitle(chart.title)
    return fig


def _draw_levels_and_marks(ax: Any, panel: Panel) -> None:
    """A panel's horizontal levels (labelled at the left) and vertical marks."""
    for level in panel.levels:
        ax.axhline(level.y, color="grey", linestyle="--", linewidth=1)
        ax.annotate(
            level.label,
            (0.01, level.y),
            xycoords=("axes fraction", "data"),
            xytext=(0, 3),
            textcoords="offset points",
            fontsize=8,
            color="grey",
        )
    labelled: set[str] = set()
    for mark in panel.marks:
        line, _, colour, legend, written = MARK_STYLES[mark.kind]
        name = mark.label if legend and mark.label not in labelled else None
        labelled.add(mark.label)
        ax.axvline(mark.x, color=colour, linestyle=line, label=name)
        if written:  # at the top, on a white box: clear of the curves
            ax.annotate(
                mark.label,
                (mark.x, 0.98),
                xycoords=("data", "axes fraction"),
                xytext=(3, 0),
                textcoords="offset points",
                va="top",
                fontsize=8,
                bbox={"fc": "white", "ec": "none", "alpha": 0.85},
            )


def _draw_axes(ax: Any, panel: Panel) -> None:
    """A panel's tick formats, labels, title, grid and legend (its note in the legend)."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    if panel.percent == "y":
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    elif panel.percent == "x":
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    if panel.integer_x:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(panel.x_label)
    ax.set_ylabel(panel.y_label)
    ax.set_title(panel.title)
    if panel.heatmap is None:
        ax.grid(alpha=0.3)
    if any(s.kind != "barh" for s in panel.series):
        handles, labels = ax.get_legend_handles_labels()
        for line in panel.note.splitlines():  # the note in the legend: placed clear of data
            handles.append(Line2D([], [], linestyle="none"))
            labels.append(line)
        ax.legend(handles, labels, loc="best", fontsize=8 if panel.note else None)


def _draw_series(ax: Any, s: Series) -> None:
    if s.kind == "barh":
        ax.barh(s.y, s.x)
        for y, value in enumerate(s.x):
            ax.annotate(
                f"{100 * value:.1f}%",
                (value, y),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
            )
        return
    if s.kind == "scatter":  # labels are placed once all points are drawn
        ax.scatter(
            s.x,
            s.y,
            marker="o" if s.marker == "circle" else "s",
            label=s.name,
            color=s.colour,
            zorder=3,
        )
        return
    ax.plot(s.x, s.y, marker=".", label=s.name, color=s.colour, linestyle="--" if s.dashed else "-")


# Where a point's label may go, in points from the point: beside it, then further above
# and below, right before left.
LABEL_OFFSETS = [(dx, dy) for dy in (0, 9, -9, 18, -18, 27, -27, 36, -36) for dx in (7, -7)]
LABEL_FONT = 8


def _place_labels(
    fig: Any,
    ax: Any,
    points: list[tuple[str, float, float]],
    others: list[tuple[float, float]] = (),  # type: ignore[assignment]
) -> None:
    """Label each point at the first place inside the axes that overlaps no point (of any
    series, `others` too) and no label placed before it; where every place is taken, at
    the one that overlaps least."""
    if not points:
        return
    from matplotlib.transforms import Bbox

    fig.draw_without_rendering()  # the axes' scales, to measure text in pixels
    renderer = fig.canvas.get_renderer()
    r = 4  # pixels around each point that a label leaves free
    every = [(x, y) for _, x, y in points] + list(others)
    taken: list[Any] = [
        Bbox.from_extents(px - r, py - r, px + r, py + r)
        for px, py in ax.transData.transform(every)
    ]
    frame = ax.get_window_extent(renderer)

    def overlap(box: Any) -> float:
        return sum(
            max(0.0, min(box.x1, o.x1) - max(box.x0, o.x0))
            * max(0.0, min(box.y1, o.y1) - max(box.y0, o.y0))
            for o in taken
        )

    for label, x, y in sorted(points, key=lambda p: (p[2], p[1])):
        best = None
        for dx, dy in LABEL_OFFSETS:
            text = ax.annotate(
                label,
                (x, y),
                xytext=(dx, dy),
                textcoords="offset points",
                fontsize=LABEL_FONT,
                ha="left" if dx > 0 else "right",
                va="center",
            )
            box = text.get_window_extent(renderer).padded(1)
            outside = (
                box.x0 < frame.x0 or box.x1 > frame.x1 or box.y0 < frame.y0 or (box.y1 > frame.y1)
            )
            cost = overlap(box) + (1e9 if outside else 0.0)
            if best is None or cost < best[0]:
                if best is not None:
                    best[1].remove()
                best = (cost, text, box)
            else:
                text.remove()
            if cost == 0:
                break
        taken.append(best[2])


def _draw_heatmap(fig: Any, ax: Any, h: Heatmap) -> None:
    image = ax.imshow(h.values, cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_xticks(range(len(h.columns)), h.columns, rotation=45, ha="right")
    ax.set_yticks(range(len(h.rows)), h.rows)
    if len(h.rows) <= 20:
        top = h.values.max() or 1
        for i in range(len(h.rows)):
            for j in range(len(h.columns)):
                colour = "white" if h.values[i, j] > top / 2 else "black"
                ax.text(j, i, h.fmt.format(h.values[i, j]), ha="center", va="center", color=colour)


# ---- plotly --------------------------------------------------------------------------


def to_plotly(chart: Chart) -> go.Figure:
    """The same chart as an interactive plotly figure (zoom, hover for names and values)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    titles = [p.title for p in chart.panels]
    fig = make_subplots(
        rows=1,
        cols=len(chart.panels),
        subplot_titles=titles,
        column_widths=[p.share for p in chart.panels],
    )
    for col, panel in enumerate(chart.panels, start=1):
        fmt = ".2%" if panel.percent == "y" else ".4f"
        for s in panel.series:
            fig.add_trace(_trace(go, s, fmt), row=1, col=col)
        if panel.heatmap is not None:
            fig.add_trace(_plotly_heatmap(go, panel.heatmap), row=1, col=col)
            fig.update_yaxes(autorange="reversed", row=1, col=col)
        _plotly_levels_and_marks(fig, panel, col)
        _plotly_axes(fig, panel, col)
    fig.update_layout(title=chart.title, height=max(380, int(chart.height * 90)))
    return fig


def _plotly_heatmap(go: Any, h: Heatmap) -> Any:
    text = [[h.fmt.format(v) for v in row] for row in h.values]
    return go.Heatmap(
        z=h.values,
        x=h.columns,
        y=h.rows,
        text=text,
        texttemplate="%{text}",
        colorscale="Blues",
        showscale=False,
    )


def _plotly_levels_and_marks(fig: go.Figure, panel: Panel, col: int) -> None:
    """A panel's levels, marks and note, as plotly lines and annotations."""
    for level in panel.levels:
        fig.add_hline(
            y=level.y,
            line_dash="dash",
            line_color="grey",
            row=1,
            col=col,
            annotation_text=level.label,
            annotation_position="bottom left",
        )
    for mark in panel.marks:
        _, dash, colour, _, written = MARK_STYLES[mark.kind]
        fig.add_vline(x=mark.x, line_dash=dash, line_color=colour, row=1, col=col)
        if written:
            fig.add_annotation(
                x=mark.x,
                y=1,
                yref="y domain",
                text=mark.label,
                showarrow=False,
                xanchor="left",
                yanchor="top",
                bgcolor="rgba(255,255,255,0.85)",
                row=1,
                col=col,
            )
    if panel.note:
        fig.add_annotation(
            x=0.02,
            y=0.03,
            xref="x domain",
            yref="y domain",
            text=panel.note.replace("\n", "<br>"),
            showarrow=False,
            align="left",
            xanchor="left",
            yanchor="bottom",
            bgcolor="rgba(255,255,255,0.9)",
            row=1,
            col=col,
        )


def _plotly_axes(fig: go.Figure, panel: Panel, col: int) -> None:
    """A panel's axis titles, scales, limits and tick formats."""
    fig.update_xaxes(title=panel.x_label, row=1, col=col)
    fig.update_yaxes(title=panel.y_label, row=1, col=col)
    if panel.x_log:
        fig.update_xaxes(type="log", row=1, col=col)
    if panel.y_log:
        fig.update_yaxes(type="log", row=1, col=col)
    limits = y_limits(panel)
    if limits is not None:
        fig.update_yaxes(range=list(limits), row=1, col=col)
    if panel.percent == "y":
        fig.update_yaxes(tickformat=".0%", row=1, col=col)
    elif panel.percent == "x":
        fig.update_xaxes(tickformat=".0%", row=1, col=col)
    if panel.integer_x:  # whole epochs: no ticks between them
        fig.update_xaxes(tickformat="d", tick0=1, dtick=max(1, _span(panel) // 10), row=1, col=col)


def _span(panel: Panel) -> int:
    xs = [x for s in panel.series for x in s.x]
    return int(max(xs) - min(xs)) if xs else 0


def _trace(go: Any, s: Series, fmt: str) -> Any:
    if s.kind == "barh":
        return go.Bar(
            x=s.x,
            y=s.y,
            orientation="h",
            text=[f"{v:.1%}" for v in s.x],
            name=s.name,
            hovertemplate="%{y}: %{x:.2%}<extra></extra>",
            showlegend=False,
        )
    if s.kind == "scatter":  # names on hover: never written over each other
        return go.Scatter(
            x=s.x,
            y=s.y,
            mode="markers",
            text=s.labels,
            name=s.name,
            marker={"symbol": s.marker, "size": 10, "color": s.colour},
            hovertemplate=f"%{{text}}<br>%{{x:,}}<br>%{{y:{fmt}}}<extra></extra>",
        )
    first = s.name.split()[0]  # a run's "training loss" and "training accuracy" toggle together
    group = first if first in ("training", "validation") else None
    return go.Scatter(
        x=s.x,
        y=s.y,
        mode="lines+markers",
        name=s.name,
        legendgroup=group,
        line={"color": s.colour, "dash": "dash" if s.dashed else "solid"},
        visible="legendonly" if s.hidden else True,
        hovertemplate=f"{s.name}<br>epoch %{{x}}<br>%{{y:{fmt}}}<extra></extra>",
    )
