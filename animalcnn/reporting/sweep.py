"""A sweep's results: a line per trial as it ends, `sweep.csv`, the best trial with the
command that reproduces it, and `sweep.html`: the best trial, the trials table (sortable,
runs linked), and Optuna's figures where they have something to say (history, each
trial's per-epoch values, parallel coordinates, parameter importances from enough
complete trials), plotly.js loaded from `animalcnn-assets/` beside it."""

from __future__ import annotations

import csv
import io
import warnings
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from animalcnn.atomic import atomic_write
from animalcnn.figures.charts import percent_span
from animalcnn.reporting.runs_table.columns import dotted_header
from animalcnn.run_folder import significant

if TYPE_CHECKING:
    import optuna

    from animalcnn.sweep.search import Outcome
    from animalcnn.sweep.spec import SweepSpec

STATES = {
    "COMPLETE": "complete",
    "PRUNED": "pruned",
    "FAIL": "failed",
    "RUNNING": "running",
    "WAITING": "waiting",
}


def metric_value(metric: str, value: float | None) -> str:
    """A sweep's metric as people read it: accuracies in percent, losses as they are."""
    if value is None:
        return "-"
    return f"{value:.4f}" if metric.endswith("loss") else f"{value:.2%}"


def param_text(value: Any) -> str:
    """A parameter's value as people read it: floats to 4 significant digits (the exact
    value is in sweep.csv and the reproduce command)."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={param_text(v)}" for k, v in params.items())


def outcome_line(o: Outcome, metric: str) -> str:
    params = params_text(o.params)
    value = metric_value(metric, o.value)
    why = f" ({o.error})" if o.error else ""
    run = Path(o.run).name if o.run else "-"
    notes = "".join(f"; {n}" for n in o.notes)
    return (
        f"trial {o.number}: {o.state}{why}  {params}  {metric} {value}  {o.seconds:.0f}s  "
        f"{run}{notes}"
    )


def trial_rows(study: optuna.Study, spec: SweepSpec) -> list[dict[str, Any]]:
    """One row per trial: trial, state, value (a pruned trial's: at `epoch`), run, and one
    column per parameter."""
    keys = list(spec.search_space())
    rows = []
    for t in study.get_trials(deepcopy=False):
        took = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if (t.datetime_complete and t.datetime_start)
            else None
        )
        row = {
            "trial": t.number,
            "state": STATES.get(t.state.name, t.state.name.lower()),
            "value": t.value,
            "run": t.user_attrs.get("run"),
            "seconds": None if took is None else round(took, 1),
            "epoch": t.last_step if t.state.name == "PRUNED" else None,
        }
        row.update({k: t.params.get(k) for k in keys})
        rows.append(row)
    return rows


def write_sweep_csv(rows: list[dict[str, Any]], keys: list[str], path: Path) -> Path:
    out = io.StringIO()
    columns = ["trial", "state", "value", "run", *keys, "seconds"]
    writer = csv.DictWriter(out, columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows({**r, "value": significant(r["value"])} for r in rows)
    atomic_write(path, out.getvalue())
    return path


def trials_table(rows: list[dict[str, Any]], keys: list[str], metric: str) -> Table:
    table = Table(title="trials", header_style="bold")
    for col in ("trial", "state", *keys, metric, "time s", "run"):
        table.add_column(dotted_header(col), overflow="fold")
    for r in rows:
        value = metric_value(metric, r["value"])
        seconds = "-" if r["seconds"] is None else f"{r['seconds']:.0f}"
        if r["state"] == "pruned" and r.get("epoch") is not None:
            value += f" at epoch {r['epoch']}"
        run = Path(r["run"]).name if r["run"] else "-"
        table.add_row(
            str(r["trial"]),
            r["state"],
            *(Text(param_text(r[k])) for k in keys),
            value,
            seconds,
            Text(run),
        )
    return table


def best_trial(study: optuna.Study, spec: SweepSpec) -> optuna.trial.FrozenTrial | None:
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not done:
        return None
    return min(done, key=lambda t: t.value) if spec.minimise else max(done, key=lambda t: t.value)


def best_line(study: optuna.Study, spec: SweepSpec) -> str | None:
    """The best trial and the `--set`s that reproduce it from its base config."""
    best = best_trial(study, spec)
    if best is None:
        return None
    value = metric_value(spec.metric, best.value)
    command = spec.reproduce(best.params)
    return f"best: trial {best.number}, {spec.metric} {value}; reproduce with:\n  {command}"


MIN_TRIALS_FOR_IMPORTANCE = 5


def _figures(study: optuna.Study, spec: SweepSpec) -> tuple[list[Any], list[str]]:
    """Optuna's figures that have something to show, and a line for each left out."""
    from optuna import visualization as vis

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    keys = list(spec.search_space())
    varied = [k for k in keys if len({repr(t.params.get(k)) for t in complete}) > 1]
    axis = "" if spec.minimise else ".0%"  # accuracies in %
    # Accuracies close together: a range of at least 10 points (a flat history reads flat)
    values = [v for t in trials for v in [t.value, *t.intermediate_values.values()]]
    span = None if spec.minimise else percent_span(values)
    figures, notes = [], []
    if complete:
        fig = vis.plot_optimization_history(study, target_name=spec.metric)
        fig.update_xaxes(title="trial", tickformat="d", dtick=max(1, len(trials) // 10))
        fig.update_yaxes(title=spec.metric, tickformat=axis, range=span)
        figures.append(fig)
    else:
        notes.append("optimisation history: no trial completed yet")
    if any(t.intermediate_values for t in trials):
        fig = vis.plot_intermediate_values(study)
        fig.update_layout(title=f"{spec.metric} per epoch, every trial")
        fig.update_xaxes(title="epoch", tickformat="d", dtick=1)
        fig.update_yaxes(title=spec.metric, tickformat=axis, range=span)
        figures.append(fig)
    else:
        notes.append(f"{spec.metric} per epoch: no trial reported an epoch yet")
    if len(complete) >= 2 and varied:
        figures.append(vis.plot_parallel_coordinate(study, params=varied, target_name=spec.metric))
    else:
        notes.append("parallel coordinates: they need 2 complete trials whose parameters differ")
    if len(complete) >= MIN_TRIALS_FOR_IMPORTANCE and varied:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            figures.append(
                vis.plot_param_importances(study, params=varied, target_name=spec.metric)
            )
    else:
        notes.append(
            f"parameter importances: {len(complete)} complete trial(s)"
            + ("" if varied else ", none of whose parameters differ")
            + f"; they are estimated from {MIN_TRIALS_FOR_IMPORTANCE} or more complete trials "
            "whose parameter varied, and would mean little before"
        )
    return figures, notes


def _trial_cells(rows: list[dict], keys: list[str], metric: str, best: int | None) -> list:
    """The trials table's cells: text, sort key, run link (relative to the sweep folder)."""
    out = []
    for r in rows:
        value = metric_value(metric, r["value"])
        if r["state"] == "pruned" and r.get("epoch") is not None:
            value += f" at epoch {r['epoch']}"
        run = Path(r["run"]).name if r["run"] else None
        cells = [
            {"shown": str(r["trial"]), "sort": r["trial"], "best": r["trial"] == best},
            {"shown": r["state"], "sort": ""},
            {"shown": value, "sort": r["value"] if r["value"] is not None else ""},
            *(
                {
                    "shown": "-" if r[k] is None else param_text(r[k]),
                    "sort": r[k]
                    if isinstance(r[k], int | float) and not isinstance(r[k], bool)
                    else "",
                }
                for k in keys
            ),
            {
                "shown": "-" if r["seconds"] is None else f"{r['seconds']:.0f}",
                "sort": r["seconds"] if r["seconds"] is not None else "",
            },
            {"shown": run or "-", "sort": "", "link": f"{run}/" if run else None},
        ]
        out.append([{"link": None, "best": False, **c} for c in cells])
    return out


def write_sweep_html(study: optuna.Study, spec: SweepSpec, rows: list[dict], path: Path) -> Path:
    """The sweep's page: its best trial (value, parameters, run, the command that
    reproduces it), the trials table and the figures that have something to show."""
    from animalcnn.reporting.pages import plotly_asset, render

    keys = list(spec.search_space())
    figures, notes = _figures(study, spec)
    best = best_trial(study, spec)
    banner = None
    if best is not None:
        run = best.user_attrs.get("run")
        banner = {
            "trial": best.number,
            "value": metric_value(spec.metric, best.value),
            "params": [(k, param_text(v)) for k, v in best.params.items()],
            "run": Path(run).name if run else None,
            "command": spec.reproduce(best.params),
        }
    numeric = {"trial", spec.metric, "time s"} | {
        k for k in keys if all(isinstance(r[k], int | float) or r[k] is None for r in rows)
    }
    columns = ["trial", "state", spec.metric, *keys, "time s", "run"]
    page = render(
        "sweep.html",
        name=spec.name,
        method=spec.method,
        metric=spec.metric,
        goal="minimising" if spec.minimise else "maximising",
        count=len(rows),
        states=Counter(r["state"] for r in rows),
        banner=banner,
        columns=[{"title": c, "numeric": c in numeric} for c in columns],
        rows=_trial_cells(rows, keys, spec.metric, best.number if best else None),
        charts=[
            f.to_html(full_html=False, include_plotlyjs=False, default_height="440px")
            for f in figures
        ],
        notes=notes,
        plotly_src=plotly_asset(path.parent),
    )
    atomic_write(path, page)
    return path
