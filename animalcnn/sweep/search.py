"""Running a sweep on Optuna: one study, shared by every process that runs the sweep.

Each trial is an ordinary run folder under `<runs_dir>/<name>/`, named for its trial
number. The study lives in Optuna storage: by default a journal file in the sweep
folder, which processes on one machine share safely; any URL Optuna accepts (such
as PostgreSQL) spreads a sweep over machines.

- A trial records its process (host, pid, start) before it trains, its run folder as
  soon as that exists, and a heartbeat in the storage every HEARTBEAT_SECONDS. A
  running trial is failed as stale only when its process is gone: judged by pid on
  its own host, by a heartbeat older than STALE_AFTER_SECONDS from any other.
- A process takes its next trial under the sweep's lock (`storage.exclusive`: the
  database's on PostgreSQL and MySQL, a file lock otherwise), so no point runs twice.
- A grid takes its points in order; a point left without a value (its trial failed,
  was interrupted or killed) is taken again by the next run of the sweep, resuming
  its run folder where that kept a resume state, or recording its result where the
  run was finished by hand (`train --resume`).
- The study keeps the settings it was made with (search space, metric, direction,
  method, fixed overrides): a rerun with others is refused, so old results are never
  read as new ones.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from animalcnn.config import ExperimentConfig
from animalcnn.console import console, print_warning
from animalcnn.errors import ConfigError, RunFolderError, UserError
from animalcnn.models.configs import load_config
from animalcnn.reporting.sweep import params_text
from animalcnn.run_folder import (
    HEARTBEAT,
    RunFolder,
    heartbeat,
    process_alive,
    this_process,
)
from animalcnn.sweep.spec import BASE, Choice, Range, SweepSpec, override
from animalcnn.sweep.storage import exclusive, gist, open_study, storage_for

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
TAKEN = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


def _plain(value: Any) -> Any:
    """A value Optuna stores as a choice: lists and mappings as JSON text."""
    return json.dumps(value) if isinstance(value, list | dict) else value


def grid_points(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every point of a grid, in the order a sweep takes them (the values' order)."""
    space = {k: [_plain(v) for v in p.values] for k, p in spec.search_space().items()}  # type: ignore[union-attr]
    return [dict(zip(space, combo, strict=True)) for combo in itertools.product(*space.values())]


def planned(spec: SweepSpec) -> int:
    """How many trials the sweep has in all."""
    return spec.grid_size() if spec.method == "grid" else spec.trials


def _point(trial: optuna.trial.FrozenTrial, keys: list[str]) -> tuple:
    params = trial.params or trial.system_attrs.get("fixed_params") or {}
    return tuple(params.get(k) for k in keys)


def fail_stale(study: optuna.Study) -> int:
    """Mark failed each running trial whose process is gone; how many."""
    failed = 0
    now = time.time()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        ages = []
        if isinstance(t.user_attrs.get("heartbeat"), int | float):
            ages.append(now - t.user_attrs["heartbeat"])
        run = t.user_attrs.get("run")
        beat = Path(run) / HEARTBEAT if run else None
        if beat is not None and beat.exists():
            ages.append(now - beat.stat().st_mtime)
        if process_alive(t.user_attrs.get("process"), min(ages, default=None)) is False:
            try:
                study.tell(t.number, state=TrialState.FAIL)
            except (ValueError, UpdateFinishedTrialError):  # its process told first
                continue
            failed += 1
    return failed


class PruneOnMetric(keras.callbacks.Callback):
    """Reports the metric to Optuna after every epoch; stops the run when told to prune.
    A trial another process has (wrongly) failed keeps training: its value is recorded
    afterwards as a new trial."""

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        super().__init__()
        self.trial, self.metric = trial, metric
        self.pruned_at: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.metric)
        if value is None:
            return
        try:
            self.trial.report(float(value), step=epoch + 1)
            prune = self.trial.should_prune()
        except UpdateFinishedTrialError:
            return
        if prune:
            self.pruned_at = epoch + 1
            self.model.stop_training = True


@dataclass
class Outcome:
    number: int
    state: str
    value: float | None
    run: str | None
    params: dict[str, Any]
    seconds: float
    error: str | None = None
    notes: list[str] = field(default_factory=list)


def trial_config(
    spec: SweepSpec, params: dict[str, Any], number: int, runs_dir: Path
) -> ExperimentConfig:
    base = Path(params.get(BASE, spec.bases[0]))
    sets = [override(k, v) for k, v in spec.set.items()]
    sets += [override(k, json.loads(v) if isinstance(v, str) and v[:1] in "[{" else v)
             for k, v in params.items() if k != BASE]  # fmt: skip
    sets.append(override("name", f"{spec.name}-trial{number:03d}"))
    return load_config(base, sets, runs_dir)


def _suggest(trial: optuna.Trial, spec: SweepSpec) -> dict[str, Any]:
    params = {}
    for key, p in spec.search_space().items():
        if isinstance(p, Choice):
            params[key] = trial.suggest_categorical(key, [_plain(v) for v in p.values])
        elif isinstance(p, Range) and p.is_int():
            params[key] = trial.suggest_int(key, int(p.low), int(p.high))
        else:
            params[key] = trial.suggest_float(key, p.low, p.high, log=p.log)
    return params


class Sweep:
    """One process's work on a sweep: take trials until none is left, run each."""

    def __init__(
        self, spec: SweepSpec, study: optuna.Study, sweep_dir: Path,
        say: Callable[[str], None] = lambda line: None, storage_url: str | None = None,
    ) -> None:  # fmt: skip
        self.spec, self.study, self.sweep_dir, self.say = spec, study, sweep_dir, say
        self.storage_url = storage_url  # a database's: its own lock guards taking a trial
        self.keys = list(spec.search_space())
        self.tried: set[tuple] = set()  # grid points this process has run (never twice)

    def _next_point(self) -> tuple[dict[str, Any], optuna.trial.FrozenTrial | None] | None:
        """The first grid point that has no value and no trial under way, with its last
        failed trial (whose run folder may be resumed)."""
        by_point: dict[tuple, list[optuna.trial.FrozenTrial]] = {}
        for t in self.study.get_trials(deepcopy=False):
            by_point.setdefault(_point(t, self.keys), []).append(t)
        for point in grid_points(self.spec):
            key = tuple(point[k] for k in self.keys)
            trials = by_point.get(key, [])
            if key in self.tried or any(t.state in TAKEN for t in trials):
                continue
            if any(_training(t.user_attrs.get("run")) for t in trials):
                continue  # failed in the study, but its run still trains: under way
            return point, max(trials, key=lambda t: t.number) if trials else None
        return None

    def take(self) -> tuple[optuna.Trial, str | None] | None:
        """The next trial, with the run folder to resume or record (a failed point's), if
        the sweep has one left; under the sweep's lock (`storage.exclusive`), so processes
        never take the same one, on one machine or several."""
        with exclusive(self.spec.name, self.sweep_dir, self.storage_url):
            stale = fail_stale(self.study)
            if stale:
                print_warning(f"{stale} trial(s) whose process died marked failed")
            previous_run = None
            if self.spec.method == "grid":
                chosen = self._next_point()
                if chosen is None:
                    return None
                point, previous = chosen
                self.study.enqueue_trial(point)
                if previous is not None:
                    previous_run = previous.user_attrs.get("run")
            else:
                trials = self.study.get_trials(deepcopy=False)
                if sum(t.state in (*FINISHED, TrialState.RUNNING) for t in trials) >= planned(
                    self.spec
                ):
                    return None
            trial = self.study.ask()
            trial.set_user_attr("process", this_process())
            trial.set_user_attr("heartbeat", time.time())
        return trial, previous_run

    def run_trial(self) -> Outcome | None:
        """Take the next trial, if the sweep has one left, and run it to its end."""
        taken = self.take()
        if taken is None:
            return None
        trial, previous_run = taken
        params = _suggest(trial, self.spec)
        self.tried.add(tuple(params.get(k) for k in self.keys))
        done = trial.number + 1
        shown = params_text(params)
        self.say(f"trial {trial.number} ({done}/{max(done, planned(self.spec))}) starts: {shown}")
        clock = time.perf_counter()
        outcome = Outcome(trial.number, "failed", None, None, params, 0.0)
        beat = lambda: trial.set_user_attr("heartbeat", time.time())  # noqa: E731
        with heartbeat(beat):
            try:
                self._train(trial, params, previous_run, outcome)
            except KeyboardInterrupt:
                self._tell(trial, outcome, TrialState.FAIL)
                raise
        outcome.seconds = round(time.perf_counter() - clock, 1)
        return outcome

    def _record_run(self, trial: optuna.Trial, run: RunFolder, params: dict[str, Any]) -> None:
        """Tie the run folder to the trial as soon as it exists (before it trains)."""
        trial.set_user_attr("run", str(run.path))
        run.update_metrics(
            sweep={"name": self.spec.name, "trial": trial.number, "parameters": params}
        )

    def _train(
        self, trial: optuna.Trial, params: dict[str, Any], previous_run: str | None, o: Outcome
    ) -> None:
        from animalcnn.training.session import TrainingFailed, resume, start

        pruning = PruneOnMetric(trial, self.spec.metric)
        try:
            cfg = trial_config(self.spec, params, trial.number, self.sweep_dir)
            keras.backend.clear_session()
            old = _reusable(previous_run)
            if old is not None and old.status() == "completed":
                o.notes.append(f"result of {old.path} recorded (it was finished by hand)")
                self._record_run(trial, old, params)
                run = old
            elif old is not None:
                o.notes.append(f"resuming {old.path}")
                self._record_run(trial, old, params)
                run = resume(old, [pruning])
            else:
                run = start(cfg, [pruning], lambda r: self._record_run(trial, r, params))
            o.run = str(run.path)
            o.value = (run.metrics().get("best") or {}).get(self.spec.metric)
            if pruning.pruned_at is not None:
                run.update_metrics(
                    status="pruned", reason=f"pruned after epoch {pruning.pruned_at}"
                )
                self._tell(trial, o, TrialState.PRUNED)
            elif o.value is None:
                o.error = "no value of the metric"
                self._tell(trial, o, TrialState.FAIL)
            else:
                self._tell(trial, o, TrialState.COMPLETE)
        except (ConfigError, UserError, TrainingFailed) as exc:
            if isinstance(exc, TrainingFailed):
                o.run = str(exc.run.path)
                if exc.status == "interrupted":
                    self._tell(trial, o, TrialState.FAIL)
                    raise KeyboardInterrupt from None
            o.error = str(exc)
            _set_attr(trial, "error", o.error)
            self._tell(trial, o, TrialState.FAIL)

    def _tell(self, trial: optuna.Trial, o: Outcome, state: TrialState) -> None:
        """Tell the study how the trial ended. If another process has failed it meanwhile
        (it took this one for dead), the result is recorded as a new trial instead."""
        value = o.value if state in (TrialState.COMPLETE, TrialState.PRUNED) else None
        o.state = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned"}.get(
            state, "failed"
        )
        try:
            if state == TrialState.COMPLETE:
                self.study.tell(trial, value)
            else:
                self.study.tell(trial, state=state)
            return
        except (ValueError, UpdateFinishedTrialError):
            pass
        if state == TrialState.FAIL:
            return  # (failed either way)
        try:
            attrs = {"run": o.run, "replaces": trial.number, "process": this_process()}
            self.study.add_trial(
                optuna.trial.create_trial(
                    state=state, value=value if state == TrialState.COMPLETE else None,
                    params=trial.params, distributions=trial.distributions, user_attrs=attrs,
                )
            )  # fmt: skip
            o.notes.append("another process had marked it failed: its result is recorded as a "
                           "new trial")  # fmt: skip
        except Exception as exc:  # the storage went away, say
            o.notes.append(f"its result could not be recorded ({gist(exc)})")


def _set_attr(trial: optuna.Trial, key: str, value: Any) -> None:
    with contextlib.suppress(UpdateFinishedTrialError):
        trial.set_user_attr(key, value)


def _training(path: str | None) -> bool:
    """Whether a run folder (on this machine's view of the disk) is being trained now."""
    if not path:
        return False
    try:
        return RunFolder.open(Path(path)).status() == "running"
    except RunFolderError:
        return False


def _reusable(path: str | None) -> RunFolder | None:
    """A failed trial's run folder that can be resumed or whose result stands."""
    if not path:
        return None
    try:
        run = RunFolder.open(Path(path))
        status = run.status()
    except RunFolderError:
        return None
    return run if status == "completed" or (status != "running" and run.resumable()) else None


@dataclass
class Result:
    study: optuna.Study
    problems: list[str]  # why the sweep is not done (the exit status is then non-zero)


def run_sweep(
    spec: SweepSpec,
    runs_dir: Path,
    storage_url: str | None,
    new_study: bool = False,
    say: Callable[[str], None] | None = None,
) -> Result:
    """Run trials until the sweep is complete (across every process working on it)."""
    from animalcnn.reporting.sweep import outcome_line

    say = say or (lambda line: console.print(line, highlight=False, markup=False))
    sweep_dir = runs_dir / spec.name
    study = open_study(spec, storage_for(spec, sweep_dir, storage_url), new_study)
    say(f"sweep {spec.name}: {planned(spec)} trials, {spec.method}, "
        f"{'minimising' if spec.minimise else 'maximising'} {spec.metric}; "
        f"runs in {sweep_dir}")  # fmt: skip
    sweep = Sweep(spec, study, sweep_dir, say, storage_url)
    while (outcome := sweep.run_trial()) is not None:
        say(outcome_line(outcome, spec.metric))
    return Result(study, problems(study, spec))


def problems(study: optuna.Study, spec: SweepSpec) -> list[str]:
    """Why the sweep is not done: grid points without a value, or no completed trial."""
    trials = study.get_trials(deepcopy=False)
    found = []
    if spec.method == "grid":
        keys = list(spec.search_space())
        states: dict[tuple, set[TrialState]] = {}
        for t in trials:
            states.setdefault(_point(t, keys), set()).add(t.state)
        missing = [p for p in grid_points(spec)
                   if not states.get(tuple(p[k] for k in keys), set()) & set(TAKEN)]  # fmt: skip
        if missing:
            shown = "; ".join(", ".join(f"{k}={v}" for k, v in p.items()) for p in missing[:3])
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            found.append(f"{len(missing)} grid point(s) have no value: {shown}{more}; run the "
                         "sweep again to retry them")  # fmt: skip
    if not any(t.state == TrialState.COMPLETE for t in trials):
        found.append("no trial completed")
    return found
