"""A sweep's results: a line per trial as it ends, `sweep.csv`, the best trial, and
`sweep.html` (Optuna's plotly figures and the trials table, self-contained, offline)."""

from __future__ import annotations

import csv
import html
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


def outcome_line(o: Outcome) -> str:
    params = ", ".join(f"{k}={v}" for k, v in o.params.items())
    value = "-" if o.value is None else f"{o.value:.4f}"
    why = f" ({o.error})" if o.error else ""
    run = o.run or "-"
    notes = "".join(f"; {n}" for n in o.notes)
    return (f"trial {o.number}: {o.state}{why}  {params}  metric {value}  {o.seconds:.0f}s  "
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
        value = "-" if r["value"] is None else f"{r['value']:.4f}"
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
            figures.append(html.escape(f"{plot.__name__}: {exc}"))
    parts = []
    first = True
    for fig in figures:
        if isinstance(fig, str):
            parts.append(f"<p>{fig}</p>")
            continue
        parts.append(fig.to_html(full_html=False, include_plotlyjs=first, default_height="440px"))
        first = False
    keys = list(spec.search_space())
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ("trial", "state", "value", "run", *keys))
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape('-' if r[c] is None else str(r[c]))}</td>"
                         for c in ("trial", "state", "value", "run", *keys)) + "</tr>"
        for r in rows
    )  # fmt: skip
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>sweep {html.escape(spec.name)}</title>
<style>body {{ font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1240px; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
td, th {{ padding: 0.25em 0.6em; border-bottom: 1px solid #ddd; }}</style></head><body>
<h1>sweep {html.escape(spec.name)}</h1>
<p>{len(rows)} trials, {html.escape(spec.method)}, {
        "minimising" if spec.minimise else "maximising"
    } {html.escape(spec.metric)}.</p>
{"".join(f'<section class="chart">{p}</section>' for p in parts)}
<h2>Trials</h2><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
</body></html>
"""
    atomic_write(path, page)
    return path
