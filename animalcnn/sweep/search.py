"""Running a sweep on Optuna: one study, shared by every process that runs the sweep.

Each trial is an ordinary run folder under `<runs_dir>/<name>/`, named for its trial
number. The study lives in Optuna storage: by default a journal file in the sweep
folder, which processes on one machine share safely; any URL Optuna accepts (such
as PostgreSQL) spreads a sweep over machines. Trials are taken with Optuna's
ask-and-tell interface under a lock, so processes on one machine never start the
same grid point twice, nor more trials than asked for; a trial whose process died
is marked failed, so it never holds the sweep up.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import optuna
from optuna.trial import TrialState

from animalcnn.config import ExperimentConfig, load_config
from animalcnn.console import console, print_warning
from animalcnn.errors import ConfigError, UserError
from animalcnn.run_folder import process_alive, this_process
from animalcnn.sweep.spec import BASE, Choice, Range, SweepSpec, override

JOURNAL = "sweep.journal"
LOCK = ".sweep.lock"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def storage_for(spec: SweepSpec, sweep_dir: Path, url: str | None) -> Any:
    """`url`, or the journal file in the sweep folder."""
    if url:
        return url
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    sweep_dir.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(sweep_dir / JOURNAL)))


def _grid(spec: SweepSpec) -> dict[str, list[Any]]:
    return {key: [_plain(v) for v in p.values] for key, p in spec.search_space().items()}  # type: ignore[union-attr]


def _plain(value: Any) -> Any:
    """A value Optuna stores as a choice: lists and mappings as JSON text."""
    return json.dumps(value) if isinstance(value, list | dict) else value


class _Grid(optuna.samplers.GridSampler):
    """Optuna's grid, for the ask-and-tell loop: the loop itself stops once every point
    has started (the stock sampler stops `study.optimize`, which this loop does not use)."""

    def after_trial(self, study: optuna.Study, trial: Any, state: Any, values: Any) -> None:
        return None


def open_study(spec: SweepSpec, storage: Any) -> optuna.Study:
    direction = "minimize" if spec.minimise else "maximize"
    if spec.method == "grid":
        sampler: optuna.samplers.BaseSampler = _Grid(_grid(spec), seed=spec.seed)
    elif spec.method == "random":
        sampler = optuna.samplers.RandomSampler(seed=spec.seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=spec.seed)
    pruner: optuna.pruners.BasePruner
    if spec.pruner == "median":
        pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    elif spec.pruner == "hyperband":
        pruner = optuna.pruners.HyperbandPruner()
    else:
        pruner = optuna.pruners.NopPruner()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=spec.name, storage=storage, sampler=sampler, pruner=pruner,
        direction=direction, load_if_exists=True,
    )  # fmt: skip


def planned(spec: SweepSpec) -> int:
    """How many trials the sweep has in all."""
    if spec.method != "grid":
        return spec.trials
    total = 1
    for p in spec.search_space().values():
        total *= len(p.values)  # type: ignore[union-attr]
    return total


@contextlib.contextmanager
def _turn(sweep_dir: Path) -> Iterator[None]:
    """One process at a time takes a trial (on this machine)."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with open(sweep_dir / LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def fail_stale(study: optuna.Study) -> int:
    """Mark failed each running trial whose process is gone; how many."""
    failed = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        record = t.user_attrs.get("process")
        run = t.user_attrs.get("run")
        beat = Path(run) / "heartbeat" if run else None
        age = time.time() - beat.stat().st_mtime if beat and beat.exists() else None
        if process_alive(record, age) is False:
            study.tell(t.number, state=TrialState.FAIL)
            failed += 1
    return failed


class PruneOnMetric(keras.callbacks.Callback):
    """Reports the metric to Optuna after every epoch; stops the run when told to prune."""

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        super().__init__()
        self.trial, self.metric = trial, metric
        self.pruned_at: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.metric)
        if value is None:
            return
        self.trial.report(float(value), step=epoch + 1)
        if self.trial.should_prune():
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


def run_trial(study: optuna.Study, spec: SweepSpec, sweep_dir: Path) -> Outcome | None:
    """Take the next trial, if the sweep has one left, and run it to its end."""
    from animalcnn.training.session import TrainingFailed, start

    with _turn(sweep_dir):
        stale = fail_stale(study)
        if stale:
            print_warning(f"{stale} trial(s) whose process died marked failed")
        trials = study.get_trials(deepcopy=False)
        started = sum(t.state in (*FINISHED, TrialState.RUNNING) for t in trials)
        if started >= planned(spec):
            return None
        trial = study.ask()
        trial.set_user_attr("process", this_process())
        params = _suggest(trial, spec)
    clock = time.perf_counter()
    outcome = Outcome(trial.number, "failed", None, None, params, 0.0)
    try:
        cfg = trial_config(spec, params, trial.number, sweep_dir)
        keras.backend.clear_session()
        pruning = PruneOnMetric(trial, spec.metric)
        run = start(cfg, [pruning])
        outcome.run = str(run.path)
        trial.set_user_attr("run", str(run.path))
        best = run.metrics().get("best") or {}
        outcome.value = best.get(spec.metric)
        run.update_metrics(sweep={"name": spec.name, "trial": trial.number, "parameters": params})
        if pruning.pruned_at is not None:
            run.update_metrics(status="pruned", reason=f"pruned after epoch {pruning.pruned_at}")
            outcome.state = "pruned"
            study.tell(trial, state=TrialState.PRUNED)
        elif outcome.value is None:
            outcome.error = "no value of the metric"
            study.tell(trial, state=TrialState.FAIL)
        else:
            outcome.state = "complete"
            study.tell(trial, outcome.value)
    except (ConfigError, UserError, TrainingFailed) as exc:
        if isinstance(exc, TrainingFailed):
            outcome.run = str(exc.run.path)
            trial.set_user_attr("run", outcome.run)
            if exc.status == "interrupted":
                study.tell(trial, state=TrialState.FAIL)
                raise KeyboardInterrupt from None
        outcome.error = str(exc)
        trial.set_user_attr("error", outcome.error)
        study.tell(trial, state=TrialState.FAIL)
    except KeyboardInterrupt:
        study.tell(trial, state=TrialState.FAIL)
        raise
    outcome.seconds = round(time.perf_counter() - clock, 1)
    return outcome


def run_sweep(spec: SweepSpec, runs_dir: Path, storage_url: str | None) -> optuna.Study:
    """Run trials until the sweep is complete (across every process working on it)."""
    from animalcnn.reporting.sweep import outcome_line

    sweep_dir = runs_dir / spec.name
    study = open_study(spec, storage_for(spec, sweep_dir, storage_url))
    console.print(f"sweep {spec.name}: {planned(spec)} trials, {spec.method}, "
                  f"{'minimising' if spec.minimise else 'maximising'} {spec.metric}; "
                  f"runs in {sweep_dir}", highlight=False, markup=False)  # fmt: skip
    while (outcome := run_trial(study, spec, sweep_dir)) is not None:
        console.print(outcome_line(outcome), highlight=False, markup=False)
    return study


def best_line(study: optuna.Study, spec: SweepSpec) -> str | None:
    """The best trial and the `--set`s that reproduce it from its base config."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not done:
        return None
    best = min(done, key=lambda t: t.value) if spec.minimise else max(done, key=lambda t: t.value)
    base = best.params.get(BASE, str(spec.bases[0]))
    sets = [*(override(k, v) for k, v in spec.set.items()),
            *(f"{k}={v}" for k, v in best.params.items() if k != BASE)]  # fmt: skip
    command = f"animalcnn train {base} " + " ".join(f"--set {s!r}" for s in sets)
    return f"best: trial {best.number}, {spec.metric} {best.value:.4f}; reproduce with: {command}"
