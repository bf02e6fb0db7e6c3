"""What an interrupted run resumes from, saved after every completed epoch.

`last.keras` holds the weights and the optimizer (its moments, step count and
learning rate); `state.json` (the run folder's `ResumeState` record) holds the rest.
Here: saving them at each epoch's end, checking a loaded state against the config's
phases, and putting back what Keras does not restore itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from animalcnn.errors import RunFolderError
from animalcnn.keras_internals import (
    callback_counters,
    ema_swapped_in,
    restore_callback_counters,
)
from animalcnn.run_folder import LAST_MODEL, STATE, ResumeState, RunFolder

if TYPE_CHECKING:
    from animalcnn.training.phases import Phase


@dataclass(frozen=True)
class PhaseWindow:
    """Where a phase stands in the run: its index and its epochs [start, end)."""

    index: int
    start: int
    end: int


def load_state(run: RunFolder, plan: list[Phase]) -> ResumeState | None:
    """The run's resume state, checked against its phases; None if it kept none. A
    damaged or hand-edited one is a one-line error, and can never skip training that
    did not happen (so never mark a run completed early)."""
    state = run.resume_state()
    problem = _inconsistency(state, plan) if state is not None else None
    if problem:
        raise RunFolderError(f"{run.file(STATE)}: damaged ({problem})")
    return state


def _inconsistency(state: ResumeState, plan: list[Phase]) -> str | None:
    n = len(state.rows)
    if [r.epoch for r in state.rows] != list(range(1, n + 1)):
        return "its rows are not epochs 1, 2, ..."
    if not 0 <= state.phase <= len(plan):
        return f"phase {state.phase} is past the config's {len(plan)} phase(s)"
    if not 0 <= state.phase_start <= n:
        return f"phase_start {state.phase_start} is past its {n} epochs"
    names = [p.name for p in plan]
    if any(r.phase not in names[: state.phase + 1] for r in state.rows):
        return "its rows name phases the run has not reached"
    if state.best is not None and state.best not in state.rows:
        return "its best epoch is not among its rows"
    if n > sum(p.epochs for p in plan):
        return f"{n} epochs, more than the config's phases hold"
    if state.phase > 0:
        last = plan[state.phase - 1]
        ran = sum(r.phase == last.name for r in state.rows)
        stopped = state.epochs_without_improvement >= last.val_patience
        if ran < last.epochs and not stopped:
            return f"phase {last.name} ran {ran} of its {last.epochs} epochs"
    return None


def _rng_variables(model: keras.Model) -> list:
    """The seed-generator states: the variables that are not weights, in layer order
    (their names are numbered by creation order, so they differ after loading)."""
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def rng_state(model: keras.Model) -> list[list[int]]:
    return [np.asarray(v).tolist() for v in _rng_variables(model)]


def restore_rng_state(model: keras.Model, state: list[list[int]]) -> None:
    variables = _rng_variables(model)
    shapes = [tuple(v.shape) for v in variables]
    if [np.shape(s) for s in state] != shapes:
        raise RunFolderError(
            f"{STATE}: damaged ({len(state)} random states for {len(variables)} generators)"
        )
    for v, value in zip(variables, state, strict=True):
        v.assign(np.asarray(value, dtype=v.dtype))


class ResumeCheckpoint(keras.callbacks.Callback):
    """Saves `last.keras` and `state.json` at the end of every epoch.

    It must come after EarlyStopping and ReduceLROnPlateau in the callback list, so
    that it saves what they decided at that epoch's end.
    """

    def __init__(
        self,
        run: RunFolder,
        recorder: Any,
        early_stopping: keras.callbacks.EarlyStopping,
        plateau: keras.callbacks.ReduceLROnPlateau | None,
        window: PhaseWindow,
    ) -> None:
        super().__init__()
        self.run, self.recorder = run, recorder
        self.early_stopping, self.plateau = early_stopping, plateau
        self.window = window

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.run.save_model(LAST_MODEL, self.model)
        w = self.window
        done = self.model.stop_training or epoch + 1 >= w.end
        state = ResumeState(
            phase=w.index + 1 if done else w.index,
            phase_start=epoch + 1 if done else w.start,
            rows=self.recorder.rows,
            best=self.recorder.best,
            train_seconds=self.recorder.train_seconds,
            early_stopping=callback_counters(self.early_stopping),
            plateau=callback_counters(self.plateau) if self.plateau else {},
            rng=rng_state(self.model),
        )
        self.run.write_resume_state(state)


class RestoreCounters(keras.callbacks.Callback):
    """Puts the saved counters back after EarlyStopping and ReduceLROnPlateau reset them
    in `on_train_begin` (so it must come after them in the callback list), and tells the
    EMA swap that the checkpoint holds the averaged weights (every epoch ends with them
    swapped in), so that the next epoch swaps the raw ones back before training."""

    def __init__(
        self,
        state: ResumeState,
        early_stopping: keras.callbacks.EarlyStopping,
        plateau: keras.callbacks.ReduceLROnPlateau | None,
        ema: keras.callbacks.SwapEMAWeights | None,
    ) -> None:
        super().__init__()
        self.state, self.early_stopping, self.plateau = state, early_stopping, plateau
        self.ema = ema

    def on_train_begin(self, logs: dict | None = None) -> None:
        restore_callback_counters(self.early_stopping, self.state.early_stopping)
        if self.plateau is not None:
            restore_callback_counters(self.plateau, self.state.plateau)
        if self.ema is not None:
            ema_swapped_in(self.ema)


def remove(run: RunFolder) -> None:
    """Drop the resume files of a finished run (the optimizer state can be large)."""
    for name in (LAST_MODEL, STATE):
        run.file(name).unlink(missing_ok=True)
