"""Keras callbacks that keep the run folder current and show progress, and the order
in which a phase's `fit` calls them (`PhaseCallbacks`)."""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any

import keras
import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from animalcnn.config.schema import Tta
from animalcnn.console import NotebookOutput, fields_lines, text_bar
from animalcnn.data.decoding import Images
from animalcnn.run_folder import EPOCH_METRICS, MODEL, EpochRow, RunFolder
from animalcnn.training.resume import RestoreCounters, ResumeCheckpoint

NOTEBOOK_REDRAW_S = 0.5  # how often a notebook's progress output is redrawn within an epoch


def current_lr(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


class RunRecorder(keras.callbacks.Callback):
    """After every epoch: a history row, the best checkpoint (on val_loss) and metrics.json.

    One instance spans all phases, so the best checkpoint is taken across them.
    """

    def __init__(self, run: RunFolder, n_train: int) -> None:
        super().__init__()
        self.run = run
        self.n_train = n_train
        self.rows: list[EpochRow] = []
        self.phase = ""
        self.best: EpochRow | None = None
        self.train_seconds = 0.0
        self.images_per_second = 0.0  # of the last epoch's training part

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._lr = current_lr(self.model)
        self._start = self._test_start = time.perf_counter()

    def on_test_begin(self, logs: dict | None = None) -> None:
        self._test_start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        now = time.perf_counter()
        train_time = max(self._test_start - self._start, 1e-9)
        self.train_seconds += train_time
        self.images_per_second = self.n_train / train_time
        row = EpochRow(
            epoch=epoch + 1,
            phase=self.phase,
            **{metric: _number(logs.get(metric)) for metric in EPOCH_METRICS},
            lr=self._lr,
            seconds=round(now - self._start, 3),
        )
        self.rows.append(row)
        self.run.write_history(self.rows)
        val_loss = row.val_loss
        if (
            val_loss is not None
            and math.isfinite(val_loss)
            and (self.best is None or val_loss < self.best.val_loss)
        ):
            self.best = row
            self.run.save_model(MODEL, self.model)
        self.run.update_metrics(
            epochs_run=len(self.rows),
            best_epoch=self.best.epoch if self.best else None,
            best=self.best.model_dump() if self.best else None,
            images_per_second=round(self.images_per_second, 1),
        )


def _number(value: Any) -> float | None:
    """A logged figure as a Python float (Keras may log numpy or backend scalars)."""
    return None if value is None else float(value)


# Ctrl-C, a pre-empted or cancelled job, a closed terminal or dropped SSH session.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class StopOnSignal(keras.callbacks.Callback):
    """Turns SIGINT, SIGTERM and SIGHUP into a stop at the next batch boundary.

    The run then ends with the state of its last completed epoch, never half-way
    through saving it; a second signal stops at once. With `any_process` (the processes
    of a multi-host JAX run, which step together), all stop after the epoch that one was
    signalled in: they agree at its end, since one stopping alone would leave the others
    waiting in their next step.
    """

    def __init__(self, console: Console, any_process: Callable[[bool], bool] | None = None) -> None:
        super().__init__()
        self.console, self.any_process = console, any_process
        self.requested: str | None = None
        self.agreed = False  # (with `any_process`) every process stops

    def request(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name
        when = "after this epoch, with the other processes " if self.any_process else ""
        self.console.print(f"\n{self.requested}: stopping {when}(again to stop at once)")

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Route the signals here for the duration (main thread only; else a no-op)."""
        try:
            previous = {s: signal.signal(s, self.request) for s in STOP_SIGNALS}
        except ValueError:
            yield
            return
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _check(self, *args: Any, **kwargs: Any) -> None:
        if self.agreed if self.any_process else self.requested:
            raise KeyboardInterrupt

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.any_process is not None and self.any_process(self.requested is not None):
            self.requested, self.agreed = self.requested or "another process's signal", True

    on_epoch_begin = on_train_batch_end = on_test_batch_end = _check


def duration(seconds: float) -> str:
    """1h02m, 3m05s or 42s."""
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class ConsoleProgress(keras.callbacks.Callback):
    """A step bar within each epoch (on a terminal, with the epoch's time remaining) and one
    line per epoch: the row the recorder wrote (so it must come after the recorder in the
    callback list), the run's time remaining at most (every epoch left run at the mean
    pace so far; early stopping can only shorten it) and a mark on a new best checkpoint.
    In a Jupyter cell, one output instead, redrawn in place: the last epoch's line and the
    current epoch's bar."""

    def __init__(
        self,
        console: Console,
        total_epochs: int,
        steps: int,
        recorder: RunRecorder,
        show_phase: bool = False,
    ) -> None:
        super().__init__()
        self.console = console
        self.total_epochs = total_epochs
        self.steps = steps
        self.recorder = recorder
        self.show_phase = show_phase
        self._cell: NotebookOutput | None = None  # in Jupyter: one output, updated
        self._epoch_line, self._drawn = "", 0.0

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self._cell is None:
            self._cell = NotebookOutput.open()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch
        self._bar = Progress(
            TextColumn(f"epoch {epoch + 1}/{self.total_epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
            disable=not self.console.is_terminal,
        )
        self._task = self._bar.add_task("train", total=self.steps, info="")
        self._bar.start()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        info = f"loss {logs.get('loss', float('nan')):.4f} acc {logs.get('accuracy', 0):.2%}"
        self._bar.update(self._task, completed=batch + 1, info=info)
        if self._cell is not None and time.monotonic() - self._drawn >= NOTEBOOK_REDRAW_S:
            self._drawn = time.monotonic()
            bar = f"epoch {self._epoch + 1}/{self.total_epochs}  {text_bar(batch + 1, self.steps)}"
            self._cell.show(f"{self._epoch_line}\n{bar}  {batch + 1}/{self.steps}  {info}".lstrip())

    def on_test_begin(self, logs: dict | None = None) -> None:
        self._bar.update(self._task, info="validating")

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._bar.stop()
        rows = self.recorder.rows
        r = {k: float("nan") if v is None else v for k, v in rows[-1].model_dump().items()}
        phase = f"[{r['phase']}] " if self.show_phase else ""
        left = self.total_epochs - r["epoch"]
        pace = sum(row.seconds or 0.0 for row in rows) / len(rows)
        best = self.recorder.best is not None and self.recorder.best.epoch == r["epoch"]
        fields = [
            f"{phase}epoch {r['epoch']:>3}/{self.total_epochs}",
            f"loss {r['loss']:.4f}",
            f"acc {r['accuracy']:.2%}",
            f"val_loss {r['val_loss']:.4f}",
            f"val_acc {r['val_accuracy']:.2%}",
            f"lr {r['lr']:.2e}",
            f"{r['seconds']:.1f}s",
            f"{self.recorder.images_per_second:,.0f} img/s",
            *([f"eta ≤ {duration(left * pace)}"] if left > 0 else []),
            *(["* best"] if best else []),
        ]
        if self._cell is not None:
            self._epoch_line = "  ".join(fields)
            self._cell.show(self._epoch_line)
            return
        self.console.print(
            fields_lines(fields, self.console.width),
            highlight=False,
            markup=False,  # "[head]" is a phase name, not a style
            soft_wrap=True,  # broken between fields above, never inside one
        )

    def on_train_end(self, logs: dict | None = None) -> None:
        if getattr(self, "_bar", None) is not None:
            self._bar.stop()


class TtaValidation(keras.callbacks.Callback):
    """`training.tta`: after Keras's validation, the epoch's val_loss and val_accuracy
    become those of the mean of each validation image's views, so the best checkpoint,
    early stopping, the rate and the history all follow them."""

    def __init__(self, images: Images, batch_size: int, tta: Tta) -> None:
        super().__init__()
        self.images, self.batch_size, self.tta = images, batch_size, tta

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        from animalcnn.evaluation.inference import probabilities

        if logs is None or "val_loss" not in logs or not len(self.images):
            return
        probs = probabilities(self.model, self.images, self.batch_size, self.tta, within_fit=True)
        labels = np.asarray(self.images.labels)
        true = np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1.0)
        logs["val_loss"] = float(-np.log(true).mean())
        logs["val_accuracy"] = float((probs.argmax(axis=1) == labels).mean())


class PaddedValidation(keras.callbacks.Callback):
    """Validation split over devices pads its last batch with rows weighted 0 (`Share`).
    Accuracy weighs them out; Keras averages the loss over every row fed, so val_loss is
    scaled back to the images."""

    def __init__(self, images: int, padding: int) -> None:
        super().__init__()
        self.scale = (images + padding) / images

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None and "val_loss" in logs:
            logs["val_loss"] = float(logs["val_loss"]) * self.scale


@dataclass(kw_only=True)
class PhaseCallbacks:
    """One phase's callbacks, in the order `fit` must call them: `in_order` follows the
    fields, and each field's place is part of what a resumed run relies on."""

    # First: a stop request ends the epoch before anything records it.
    stopper: StopOnSignal
    # Validation padded to split over devices: its loss over the images alone.
    padded: PaddedValidation | None = None
    # With an EMA of the weights: swaps the average in for validation and at the epoch's
    # end (out again when the next begins), so the recorder saves the average.
    ema: keras.callbacks.SwapEMAWeights | None = None
    # With `training.tta`: the validation figures of the averaged views, in the logs
    # before anything reads them (with the EMA weights in, when there are some).
    tta: TtaValidation | None = None
    # The history row and best checkpoint, before anything that reads them.
    recorder: RunRecorder
    # Prints the row the recorder has just written.
    progress: ConsoleProgress
    early_stopping: keras.callbacks.EarlyStopping
    plateau: keras.callbacks.ReduceLROnPlateau | None  # with schedule: plateau only
    nan_guard: keras.callbacks.TerminateOnNaN
    # Resuming mid-phase: after EarlyStopping and ReduceLROnPlateau, whose
    # `on_train_begin` resets the counters it puts back.
    restore: RestoreCounters | None = None
    # After EarlyStopping and ReduceLROnPlateau: saves what they decided this epoch.
    checkpoint: ResumeCheckpoint | None = None
    tensorboard: keras.callbacks.TensorBoard | None = None
    # The caller's own (a notebook's, a test's), last.
    extra: list[keras.callbacks.Callback] = field(default_factory=list)

    def in_order(self) -> list[keras.callbacks.Callback]:
        ordered: list[keras.callbacks.Callback] = []
        for f in fields(self):
            value = getattr(self, f.name)
            ordered += value if isinstance(value, list) else [] if value is None else [value]
        return ordered
