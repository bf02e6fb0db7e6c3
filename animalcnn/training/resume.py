"""What an interrupted run resumes from, saved after every completed epoch.

`last.keras` holds the weights and the optimizer (its moments, step count and
learning rate); `state.json` holds the rest a resumed run needs to continue as
if never stopped: the phase, the history so far, the best checkpoint's row, the
EarlyStopping and ReduceLROnPlateau counters, and the random-number states of
dropout and augmentation layers (Keras does not save those with the model).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
from pydantic import TypeAdapter, ValidationError

from animalcnn.errors import RunFolderError
from animalcnn.keras_internals import (
    callback_counters,
    ema_swapped_in,
    restore_callback_counters,
)
from animalcnn.run_folder import LAST_MODEL, STATE, RunFolder

if TYPE_CHECKING:
    from animalcnn.training.phases import Phase


@dataclass(frozen=True)
class PhaseWindow:
    """Where a phase stands in the run: its index and its epochs [start, end)."""

    index: int
    start: int
    end: int


@dataclass
class ResumeState:
    phase: int  # index of the phase to continue (or start)
    phase_start: int  # epochs completed when that phase began
    rows: list[dict[str, Any]]
    best: dict[str, Any] | None
    train_seconds: float
    early_stopping: dict[str, Any] = field(default_factory=dict)
    plateau: dict[str, Any] = field(default_factory=dict)
    rng: list[list[int]] = field(default_factory=list)

    @property
    def mid_phase(self) -> bool:
        """True when the phase was under way, so its optimizer and counters carry over."""
        return len(self.rows) > self.phase_start

    def save(self, run: RunFolder) -> None:
        run.write_json(STATE, asdict(self))

    @classmethod
    def load(cls, run: RunFolder, plan: list[Phase]) -> ResumeState | None:
        """The run's resume state, checked against its phases; None if it kept none. A
        damaged or hand-edited one is a one-line error, and can never skip training that
        did not happen (so never mark a run completed early)."""
        if not run.resumable():
            return None
        path = run.file(STATE)
        try:
            state = TypeAdapter(cls).validate_python(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:  # JSON and validation errors are ValueErrors
            first = exc.errors()[0] if isinstance(exc, ValidationError) else None
            what = (
                f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
                if first
                else type(exc).__name__
            )
            raise RunFolderError(f"{path}: damaged ({what})") from None
        problem = state._inconsistency(plan)
        if problem:
            raise RunFolderError(f"{path}: damaged ({problem})")
        return state

    def _inconsistency(self, plan: list[Phase]) -> str | None:
        n = len(self.rows)
        if [r.get("epoch") for r in self.rows] != list(range(1, n + 1)):
            return "its rows are not epochs 1, 2, ..."
        if not 0 <= self.phase <= len(plan):
            return f"phase {self.phase} is past the config's {len(plan)} phase(s)"
        if not 0 <= self.phase_start <= n:
            return f"phase_start {self.phase_start} is past its {n} epochs"
        names = [p.name for p in plan]
        if any(r.get("phase") not in names[: self.phase + 1] for r in self.rows):
            return "its rows name phases the run has not reached"
        if self.best is not None and self.best not in self.rows:
            return "its best epoch is not among its rows"
        if n > sum(p.epochs for p in plan):
            return f"{n} epochs, more than the config's phases hold"
        for index, phase in enumerate(plan[: self.phase]):
            ran = sum(r.get("phase") == phase.name for r in self.rows)
            stopped = index == self.phase - 1 and self.early_stopping.get("wait", 0) >= (
                phase.val_patience
            )
            if ran < phase.epochs and not stopped and index == self.phase - 1:
                return f"phase {phase.name} ran {ran} of its {phase.epochs} epochs"
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
        ResumeState(
            phase=w.index + 1 if done else w.index,
            phase_start=epoch + 1 if done else w.start,
            rows=self.recorder.rows,
            best=self.recorder.best,
            train_seconds=self.recorder.train_seconds,
            early_stopping=callback_counters(self.early_stopping),
            plateau=callback_counters(self.plateau) if self.plateau else {},
            rng=rng_state(self.model),
        ).save(self.run)


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
