"""What a sweep's trials say, read from its study: the grid's points in order, which
have a value, which failed trials were queued again, and why a sweep is not done. No
Keras: the report reads these without training anything."""

from __future__ import annotations

import itertools
import json
from typing import Any

import optuna
from optuna.trial import TrialState

from animalcnn.sweep.spec import SweepSpec

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
TAKEN = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


def plain(value: Any) -> Any:
    """A value Optuna stores as a choice: lists and mappings as JSON text."""
    return json.dumps(value) if isinstance(value, list | dict) else value


def grid_points(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every point of a grid, in the order a sweep takes them (the values' order)."""
    space = {k: [plain(v) for v in p.values] for k, p in spec.search_space().items()}  # type: ignore[union-attr]
    return [dict(zip(space, combo, strict=True)) for combo in itertools.product(*space.values())]


def planned(spec: SweepSpec) -> int:
    """How many trials the sweep has in all."""
    return spec.grid_size() if spec.method == "grid" else spec.trials


def point_of(trial: optuna.trial.FrozenTrial, keys: list[str]) -> tuple:
    """A trial's grid point: the parameters it was queued with, and those it has suggested
    (a trial another process is still suggesting has only some of them)."""
    params = {**trial.system_attrs.get("fixed_params", {}), **trial.params}
    return tuple(params.get(k) for k in keys)


def run_of(trial: optuna.trial.FrozenTrial | optuna.Trial) -> str | None:
    """The run folder a trial trains (or trained) in, once it has one."""
    return trial.user_attrs.get("run")


def retried(trials: list[optuna.trial.FrozenTrial]) -> set[int]:
    """The numbers of the failed trials whose point was queued again."""
    return {n for t in trials for n in t.system_attrs.get("retry_history", [])}


def problems(study: optuna.Study, spec: SweepSpec) -> list[str]:
    """Why the sweep is not done: grid points without a value, or no completed trial."""
    trials = study.get_trials(deepcopy=False)
    found = []
    if spec.method == "grid":
        keys = list(spec.search_space())
        states: dict[tuple, set[TrialState]] = {}
        for t in trials:
            states.setdefault(point_of(t, keys), set()).add(t.state)
        missing = [
            p
            for p in grid_points(spec)
            if not states.get(tuple(p[k] for k in keys), set()) & set(TAKEN)
        ]
        if missing:
            shown = "; ".join(", ".join(f"{k}={v}" for k, v in p.items()) for p in missing[:3])
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            found.append(
                f"{len(missing)} grid point(s) have no value: {shown}{more}; run the sweep "
                "again to retry them"
            )
    if not any(t.state == TrialState.COMPLETE for t in trials):
        found.append("no trial completed")
    return found
