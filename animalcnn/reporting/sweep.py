"""A sweep's results: a line per trial as it ends, `sweep.csv`, the best trial, and
`sweep.html` (Optuna's plotly figures and the trials table, self-contained, offline)."""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from animalcnn.atomic import atomic_write

if TYPE_CHECKING:
    import optuna

    from animalcnn.sweep.search import Outcome
    from animalcnn.sweep.spec import SweepSpec

STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running",
          "WAITING": "waiting"}  # fmt: skip


def metric_value(metric: str, value: float | None) -> str:
    """A sweep's metric as people read it: accuracies in percent, losses as they are."""
    if value is None:
        return "-"
    return f"{value:.4f}" if metric.endswith("loss") else f"{value:.2%}"


def outcome_line(o: Outcome, metric: str) -> str:
    params = ", ".join(f"{k}={v}" for k, v in o.params.items())
    value = metric_value(metric, o.value)
    why = f" ({o.error})" if o.error else ""
    run = o.run or "-"
    notes = "".join(f"; {n}" for n in o.notes)
    return (f"trial {o.number}: {o.state}{why}  {params}  {metric} {value}  {o.seconds:.0f}s  "
            f"{run}{notes}")  # fmt: skip


def trial_rows(study: optuna.Study, spec: SweepSpec) -> list[dict[str, Any]]:
    """One row per trial: trial, state, value, run, and one column per parameter."""
    keys = list(spec.search_space())
    rows = []
    for t in study.get_trials(deepcopy=False):
        took = (t.datetime_complete - t.datetime_start).total_seconds() if (
            t.datetime_complete and t.datetime_start) else None  # fmt: skip
        row = {"trial": t.number, "state": STATES.get(t.state.name, t.state.name.lower()),
               "value": t.value, "run": t.user_attrs.get("run"),
               "seconds": None if took is None else round(took, 1)}  # fmt: skip
        row.update({k: t.params.get(k) for k in keys})
        rows.append(row)
    return rows


def write_sweep_csv(rows: list[dict[str, Any]], keys: list[str], path: Path) -> Path:
    out = io.StringIO()
    columns = ["trial", "state", "value", "run", *keys, "seconds"]
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, out.getvalue())
    return path


def trials_table(rows: list[dict[str, Any]], keys: list[str], metric: str) -> Table:
    table = Table(title="trials", header_style="bold")
    for col in ("trial", "state", *keys, metric, "time s", "run"):
        table.add_column(col, overflow="fold")
    for r in rows:
        value = metric_value(metric, r["value"])
        seconds = "-" if r["seconds"] is None else f"{r['seconds']:.0f}"
        table.add_row(str(r["trial"]), r["state"], *(Text(str(r[k])) for k in keys), value,
                      seconds, Text(str(r["run"] or "-")))  # fmt: skip
    return table


def write_sweep_html(study: optuna.Study, spec: SweepSpec, rows: list[dict], path: Path) -> Path:
    """Optimisation history, parallel coordinates and parameter importances (where there
    are enough finished trials), and the trials table; plotly inlined once."""
    from optuna import visualization as vis

    figures = []
    for plot in (vis.plot_optimization_history, vis.plot_parallel_coordinate,
                 vis.plot_param_importances):  # fmt: skip
        try:
            with warnings.catch_warnings():  # "too few trials for importances": shown below
                warnings.simplefilter("ignore", UserWarning)
                figures.append(plot(study))
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # too few trials
            figures.append(f"{plot.__name__}: {exc}")
    parts = []
    first = True
    for fig in figures:
        if isinstance(fig, str):
            parts.append({"note": fig})
            continue
        html = fig.to_html(full_html=False, include_plotlyjs=first, default_height="440px")
        parts.append({"html": html})
        first = False
    from animalcnn.reporting.pages import render

    page = render(
        "sweep.html", name=spec.name, method=spec.method, metric=spec.metric,
        goal="minimising" if spec.minimise else "maximising", parts=parts, rows=rows,
        columns=["trial", "state", "value", "run", *spec.search_space()],
    )  # fmt: skip
    atomic_write(path, page)
    return path
