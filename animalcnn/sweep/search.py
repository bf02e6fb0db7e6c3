"""Running a sweep on Optuna: one study, shared by every process that runs the sweep.

Each trial is an ordinary run folder under `<runs_dir>/<name>/`, named for its trial
number. The study lives in Optuna storage: by default a journal file in the sweep
folder, which processes on one machine share safely; a database URL (such as
PostgreSQL) spreads a sweep over machines.

- A process takes its next trial under the sweep's lock (`storage.exclusive`: the
  database's on PostgreSQL and MySQL, a file lock otherwise). A grid queues each of
  its points without a value once (WAITING) and every process pulls the oldest, so no
  point runs twice; random and TPE ask for a new trial while the budget lasts.
- A trial records its process (host, pid, start) and, as soon as it exists, its run
  folder. A running trial whose process died is failed and its point queued again
  with those attributes, so it resumes its run folder where that kept a resume state.
  On a database, Optuna judges: a heartbeat every `heartbeat_seconds`, stamped with
  the server's clock, older than `grace_seconds`. On the journal (one machine), its
  pid judges, or for another host's trial its run folder's heartbeat.
- A grid point left without a value (its trial failed or was interrupted) is queued
  again by the next run of the sweep, resuming its run folder, or recording its
  result where the run was finished by hand (`train --resume`).
- The study keeps the settings it was made with (search space, metric, direction,
  method, fixed overrides): a rerun with others is refused, so old results are never
  read as new ones.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import optuna
import sqlalchemy
from optuna.exceptions import StorageInternalError, UpdateFinishedTrialError
from optuna.trial import TrialState

from animalcnn.config import ExperimentConfig
from animalcnn.console import console, print_warning
from animalcnn.errors import ConfigError, RunFolderError, UserError
from animalcnn.models.configs import load_config
from animalcnn.reporting.sweep import params_text
from animalcnn.run_folder import (
    HEARTBEAT,
    Process,
    RunFolder,
    heartbeat,
    process_alive,
    this_process,
)
from animalcnn.sweep.spec import BASE, Choice, Range, SweepSpec, override
from animalcnn.sweep.storage import REQUEUE, exclusive, gist, open_study, storage_for
from animalcnn.sweep.trials import (
    FINISHED,
    TAKEN,
    grid_points,
    plain,
    planned,
    point_of,
    problems,
    retried,
    run_of,
)


def requeue_dead(study: optuna.Study, on_database: bool) -> int:
    """Fail each running trial whose process is gone and queue its point again; how many.
    On a database, by Optuna's heartbeat; on the journal, by `_gone`."""
    before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    if on_database:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    else:
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if _gone(t):
                try:
                    study.tell(t.number, state=TrialState.FAIL)
                except (ValueError, UpdateFinishedTrialError):  # its process told first
                    continue
                REQUEUE(study, t)
    return len(before & retried(study.get_trials(deepcopy=False)))


def _gone(t: optuna.trial.FrozenTrial) -> bool:
    """Whether a running trial's process is gone: by pid on its own host; for another
    host's trial by its run folder's heartbeat, and never before that folder exists."""
    record, run = t.user_attrs.get("process"), run_of(t)
    process = Process.model_validate(record) if record else None
    beat = Path(run) / HEARTBEAT if run else None
    age = time.time() - beat.stat().st_mtime if beat is not None and beat.exists() else None
    if age is None and (process is None or process.host != socket.gethostname()):
        return False
    return process_alive(process, age) is False


class PruneOnMetric(keras.callbacks.Callback):
    """Reports the metric to Optuna after every epoch; stops the run when told to prune.
    A trial another process has (wrongly) failed keeps training, and so does one whose
    database cannot be reached: its value is recorded at the end."""

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
        except (UpdateFinishedTrialError, StorageInternalError):
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
    base = spec.base_of(params)
    sets = [override(k, v) for k, v in spec.set.items()]
    sets += [
        override(k, json.loads(v) if isinstance(v, str) and v[:1] in "[{" else v)
        for k, v in params.items()
        if k != BASE
    ]
    sets.append(override("name", f"{spec.name}-trial{number:03d}"))
    return load_config(base, sets, runs_dir)


def _suggest(trial: optuna.Trial, spec: SweepSpec) -> dict[str, Any]:
    params = {}
    for key, p in spec.search_space().items():
        if isinstance(p, Choice):
            params[key] = trial.suggest_categorical(key, [plain(v) for v in p.values])
        elif isinstance(p, Range) and p.is_int():
            params[key] = trial.suggest_int(key, int(p.low), int(p.high))
        else:
            params[key] = trial.suggest_float(key, p.low, p.high, log=p.log)
    return params


class Sweep:
    """One process's work on a sweep: take trials until none is left, run each."""

    def __init__(
        self,
        spec: SweepSpec,
        study: optuna.Study,
        sweep_dir: Path,
        say: Callable[[str], None] = lambda line: None,
        storage_url: str | None = None,
    ) -> None:
        self.spec, self.study, self.sweep_dir, self.say = spec, study, sweep_dir, say
        self.storage_url = storage_url  # a database's: its lock and Optuna's heartbeat
        self.keys = list(spec.search_space())
        self.tried: set[tuple] = set()  # grid points this process has run (never twice)

    def _queue_grid(self, trials: list[optuna.trial.FrozenTrial]) -> None:
        """Queue each grid point that has no value and no trial under way or waiting, with
        the run folder of its last trial (to resume or record)."""
        by_point: dict[tuple, list[optuna.trial.FrozenTrial]] = {}
        for t in trials:
            by_point.setdefault(point_of(t, self.keys), []).append(t)
        for point in grid_points(self.spec):
            key = tuple(point[k] for k in self.keys)
            tried = by_point.get(key, [])
            if key in self.tried or any(t.state in TAKEN for t in tried):
                continue
            if any(_training(run_of(t)) for t in tried):
                continue  # failed in the study, but its run still trains: under way
            run = run_of(max(tried, key=lambda t: t.number)) if tried else None
            self.study.enqueue_trial(point, user_attrs={"run": run} if run else None)

    def take(self) -> tuple[optuna.Trial, str | None] | None:
        """The next trial, with the run folder to resume or record (a failed point's), if
        the sweep has one left; under the sweep's lock (`storage.exclusive`), so processes
        never take the same one, on one machine or several."""
        with exclusive(self.spec.name, self.sweep_dir, self.storage_url):
            dead = requeue_dead(self.study, self.storage_url is not None)
            if dead:
                print_warning(
                    f"{dead} trial(s) whose process died marked failed, their points queued again"
                )
            trials = self.study.get_trials(deepcopy=False)
            if self.spec.method == "grid":
                self._queue_grid(trials)
                trials = self.study.get_trials(deepcopy=False)
            requeued = retried(trials)
            counted = (*FINISHED, TrialState.RUNNING)
            used = sum(t.state in counted and t.number not in requeued for t in trials)
            if not any(t.state == TrialState.WAITING for t in trials) and (
                self.spec.method == "grid" or used >= planned(self.spec)
            ):
                return None
            with warnings.catch_warnings():  # the heartbeat is ours to run, not optimize's
                warnings.filterwarnings("ignore", "Heartbeat of storage")
                trial = self.study.ask()  # the oldest waiting trial first
            trial.set_user_attr("process", this_process())
            self._beat(trial)
        return trial, run_of(trial)

    def _beat(self, trial: optuna.Trial) -> None:
        """On a database, write the trial's heartbeat (Optuna's record of it)."""
        if self.storage_url is not None:
            self.study._storage.record_heartbeat(trial._trial_id)

    def run_trial(self) -> Outcome | None:
        """Take the next trial, if the sweep has one left, and run it to its end."""
        try:
            taken = self.take()
        except (StorageInternalError, sqlalchemy.exc.SQLAlchemyError) as exc:
            raise UserError(
                f"sweep {self.spec.name}: its storage cannot be reached "
                f"({gist(exc, self.storage_url)}); run the sweep again when it is back"
            ) from None
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
        beating = heartbeat(lambda: self._beat(trial), self.spec.heartbeat_seconds)
        with beating if self.storage_url else contextlib.nullcontext():
            try:
                self._train(trial, params, previous_run, outcome)
            except KeyboardInterrupt:
                self._tell(trial, outcome, TrialState.FAIL)
                raise
        outcome.seconds = round(time.perf_counter() - clock, 1)
        return outcome

    def _record_run(self, trial: optuna.Trial, run: RunFolder, params: dict[str, Any]) -> None:
        """Tie the run folder to the trial as soon as it exists (before it trains)."""
        _set_attr(trial, "run", str(run.path))
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
                o.notes.append(f"result of {old.path} recorded (its run had finished)")
                self._record_run(trial, old, params)
                run = old
            elif old is not None:
                o.notes.append(f"resuming {old.path}")
                self._record_run(trial, old, params)
                run = resume(old, [pruning])
            else:
                run = start(cfg, [pruning], lambda r: self._record_run(trial, r, params))
            o.run = str(run.path)
            best = run.metrics().best
            o.value = best.value(self.spec.metric) if best else None
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
        """Tell the study how the trial ended, waiting up to `grace_seconds` for a database
        that cannot be reached (restarting, say); past that, one note, and the sweep's next
        run records the result from the run folder."""
        value = o.value if state in (TrialState.COMPLETE, TrialState.PRUNED) else None
        o.state = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned"}.get(
            state, "failed"
        )
        deadline = time.monotonic() + self.spec.grace_seconds
        while True:
            try:
                return self._tell_once(trial, o, state, value)
            except (StorageInternalError, sqlalchemy.exc.SQLAlchemyError) as exc:
                if time.monotonic() >= deadline:
                    why = gist(exc, self.storage_url)
                    o.notes.append(
                        f"its result could not be recorded ({why}); the sweep's next run "
                        "records it from its run folder"
                    )
                    return
                time.sleep(1.0)

    def _tell_once(
        self, trial: optuna.Trial, o: Outcome, state: TrialState, value: float | None
    ) -> None:
        """If another process failed the trial meanwhile (it took this one for dead), the
        result goes to the trial that queued its point again, or to a new trial where
        that one has been taken."""
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
        attrs = {"run": o.run, "replaces": trial.number, "process": this_process()}
        queued = self._claim_retry(trial.number)
        if queued is not None:
            for key, v in attrs.items():
                self.study._storage.set_trial_user_attr(queued._trial_id, key, v)
            shown = value if state == TrialState.COMPLETE else None
            self.study.tell(queued.number, shown, state=state)
            o.notes.append(
                "another process had marked it failed: its result is recorded as trial "
                f"{queued.number}, which had queued its point again"
            )
            return
        self.study.add_trial(
            optuna.trial.create_trial(
                state=state,
                value=value if state == TrialState.COMPLETE else None,
                params=trial.params,
                distributions=trial.distributions,
                user_attrs=attrs,
            )
        )
        o.notes.append(
            "another process had marked it failed: its result is recorded as a new trial"
        )

    def _claim_retry(self, number: int) -> optuna.trial.FrozenTrial | None:
        """The waiting trial that re-queued trial `number`'s point, taken (RUNNING) so no
        process runs it; None when there is none left to take."""
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            if number in t.system_attrs.get("retry_history", []) and (
                self.study._storage.set_trial_state_values(t._trial_id, TrialState.RUNNING)
            ):
                return t
        return None


def _set_attr(trial: optuna.Trial, key: str, value: Any) -> None:
    """Set a user attribute where the trial is still ours and its storage reachable."""
    with contextlib.suppress(UpdateFinishedTrialError, StorageInternalError):
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
    say(
        f"sweep {spec.name}: {planned(spec)} trials, {spec.method}, "
        f"{'minimising' if spec.minimise else 'maximising'} {spec.metric}; "
        f"runs in {sweep_dir}"
    )
    sweep = Sweep(spec, study, sweep_dir, say, storage_url)
    while (outcome := sweep.run_trial()) is not None:
        say(outcome_line(outcome, spec.metric))
    return Result(study, problems(study, spec))
