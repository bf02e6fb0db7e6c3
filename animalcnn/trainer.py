"""Training one experiment into a new run folder.

Order matters for the user: everything that can fail on bad input (config, data
folder, images, weights) fails before the run folder exists, so a failed start
leaves nothing behind; once it exists, `metrics.json` always says how it ended.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import keras
import numpy as np

from animalcnn import checkpoint, multiworker, pipeline, runtime
from animalcnn.callbacks import ConsoleProgress, RunRecorder, StopOnSignal
from animalcnn.checkpoint import (
    LAST_MODEL,
    STATE,
    RestoreCounters,
    ResumeCheckpoint,
    ResumeState,
    restore_rng_state,
)
from animalcnn.config import ExperimentConfig
from animalcnn.console import console, err_console, progress_bar
from animalcnn.data import Dataset, Images, decode, discover
from animalcnn.errors import DataError, RunFolderError
from animalcnn.figures import history_figure
from animalcnn.models import build_model
from animalcnn.models.pretrained import pin_inference_mode
from animalcnn.runs import CONFIG, HISTORY_PNG, METRICS, SUMMARY, RunFolder
from animalcnn.strategies import Phase, parameter_counts, phases, set_trainable


class TrainingFailed(Exception):
    """The run ended without completing; its folder says why."""

    def __init__(self, run: RunFolder, status: str, reason: str) -> None:
        super().__init__(f"{run.path}: {status}: {reason}")
        self.run, self.status, self.reason = run, status, reason


@dataclass
class TrainingData:
    dataset: Dataset
    train: Images
    val: Images


def load_training_data(cfg: ExperimentConfig) -> TrainingData:
    """Find, split and decode the training and validation images, checking every file."""
    dataset = discover(cfg.data, cfg.seed)
    decoded = []
    for label, split in (("train", dataset.train), ("validation", dataset.val)):
        with progress_bar(f"decoding {label} images", len(split)) as advance:
            decoded.append(decode(split, cfg.data, advance))
    train, val = decoded
    bad = train.bad + val.bad
    if bad and cfg.data.on_bad_file == "fail":
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise DataError(f"{bad[0]}{more}; data.on_bad_file: skip leaves such files out")
    for b in bad:
        err_console.print(f"[yellow]warning:[/] skipped {b}", highlight=False)
    present = set(np.unique(train.labels))
    empty = [c for i, c in enumerate(dataset.classes) if i not in present]
    if empty:
        raise DataError(f"{cfg.data.dir}: no readable training images for class(es) {empty}")
    return TrainingData(dataset, train, val)


def summary_text(model: keras.Model) -> str:
    lines: list[str] = []
    model.summary(line_length=110, print_fn=lambda s, line_break=True: lines.append(s))
    return "\n".join(lines) + "\n"


def _callbacks(
    phase: Phase,
    cfg: ExperimentConfig,
    run: RunFolder,
    recorder: RunRecorder,
    index: int,
    phase_start: int,
    phase_end: int,
) -> list[keras.callbacks.Callback]:
    """The phase's EarlyStopping, ReduceLROnPlateau and NaN guard, then the resume
    checkpoint (after them: it saves what they decided) and TensorBoard."""
    t = cfg.training
    stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=phase.val_patience)
    plateau = keras.callbacks.ReduceLROnPlateau(
        monitor="val_loss",
        factor=t.lr_factor,
        patience=phase.lr_patience,
        min_delta=t.lr_min_delta,
        min_lr=t.min_lr,
    )
    callbacks = [stopping, plateau, keras.callbacks.TerminateOnNaN()]
    if t.resume_checkpoints:
        callbacks.append(
            ResumeCheckpoint(run, recorder, stopping, plateau, index, phase_start, phase_end)
        )
    if cfg.output.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run.file("tensorboard"))))
    return callbacks


def train(cfg: ExperimentConfig, callbacks: Sequence[keras.callbacks.Callback] = ()) -> RunFolder:
    """Train `cfg` into a new run folder and return it; raises TrainingFailed if it stops.

    `callbacks` are added to every phase's `fit` (from a notebook, say).
    """
    rt = _start(cfg)
    data = load_training_data(cfg)
    classes = data.dataset.classes
    with rt.strategy.scope():
        model = build_model(cfg, len(classes))
    plan = phases(cfg)
    set_trainable(model, plan[-1], cfg)  # counts as training ends (fine-tune: unfrozen)
    counts = parameter_counts(model)

    # In a multi-worker cluster every worker trains; only the chief keeps its run folder.
    runs_dir = cfg.output.runs_dir if rt.chief else _worker_scratch()
    run = RunFolder.create(runs_dir, cfg.name)
    run.write_text(CONFIG, cfg.to_yaml())
    run.write_text(SUMMARY, summary_text(model))
    run.write_json(
        METRICS,
        {
            "status": "running",
            "name": cfg.name,
            "arch": cfg.model.arch,
            "strategy": cfg.transfer.strategy if cfg.transfer else None,
            "started": datetime.now().isoformat(timespec="seconds"),
            "device": rt.device,
            "mixed_precision": rt.mixed_precision,
            "jit_compile": rt.jit_compile,
            "replicas": rt.replicas,
            "classes": classes,
            "images": {"train": len(data.train), "val": len(data.val)},
            "skipped_files": [str(b) for b in data.train.bad + data.val.bad],
            "params": counts,
        },
    )
    where = "run folder" if rt.chief else "worker's scratch copy (the chief keeps the run folder)"
    console.print(
        f"{where}: {run.path}  ({len(data.train):,} training, {len(data.val):,} validation "
        f"images, {len(classes)} classes, {counts['trainable']:,} trainable parameters)",
        highlight=False,
    )
    return _finish(run, rt, *_fit(model, plan, cfg, rt, data, run, list(callbacks), None))


def resume(run: RunFolder, callbacks: Sequence[keras.callbacks.Callback] = ()) -> RunFolder:
    """Continue an interrupted run from its last completed epoch, in the same folder."""
    metrics = run.metrics()
    status = metrics.get("status")
    if status == "completed":
        raise RunFolderError(f"{run.path}: already completed; nothing to resume")
    state = ResumeState.load(run)
    if state is None:
        raise RunFolderError(
            f"{run.path}: no resume state ({LAST_MODEL}, {STATE}); it was trained with "
            "training.resume_checkpoints: false or stopped before its first epoch ended"
        )
    cfg = run.config()
    rt = _start(cfg)
    if not rt.chief:  # the chief alone writes the run folder: this worker resumes a copy
        run = RunFolder(Path(shutil.copytree(run.path, _worker_scratch() / run.name)))
    data = load_training_data(cfg)
    if data.dataset.classes != metrics.get("classes"):
        raise DataError(f"{cfg.data.dir}: its classes are not the run's {metrics.get('classes')}")
    with rt.strategy.scope():
        model = keras.saving.load_model(run.file(LAST_MODEL))
    if cfg.transfer is not None:
        pin_inference_mode(model)
    restore_rng_state(model, state.rng)
    plan = phases(cfg)
    console.print(
        f"resuming {run.path} after epoch {len(state.rows)} "
        f"(phase {plan[min(state.phase, len(plan) - 1)].name})",
        highlight=False,
    )
    run.update_metrics(status="running", reason=None, resumed=len(state.rows))
    return _finish(run, rt, *_fit(model, plan, cfg, rt, data, run, list(callbacks), state))


def _start(cfg: ExperimentConfig) -> runtime.Runtime:
    rt = runtime.configure(cfg)
    console.print(
        f"[bold]{cfg.name}[/]: {cfg.model.arch} on {rt.device}; "
        f"mixed precision {'on' if rt.mixed_precision else 'off'}, "
        f"XLA {'on' if rt.jit_compile else 'off'}"
    )
    return rt


def _worker_scratch() -> Path:
    """Where a non-chief worker writes what the chief writes to the run folder."""
    return Path(tempfile.mkdtemp(prefix="animalcnn-worker-"))


def _finish(run: RunFolder, rt: runtime.Runtime, status: str, reason: str) -> RunFolder:
    """Raise if the run stopped; else drop its resume state (and a worker's scratch copy)."""
    if status != "completed":
        raise TrainingFailed(run, status, reason)
    checkpoint.remove(run)
    if not rt.chief:
        shutil.rmtree(run.path.parent)
    return run


def _fit(
    model: keras.Model,
    plan: list[Phase],
    cfg: ExperimentConfig,
    rt: runtime.Runtime,
    data: TrainingData,
    run: RunFolder,
    extra: list[keras.callbacks.Callback],
    state: ResumeState | None,
) -> tuple[str, str]:
    """Run the phases (from `state` when resuming); record and return how the run ended."""
    batch = cfg.data.batch_size
    steps = pipeline.steps_per_epoch(data.train, batch)
    val_ds = pipeline.eval_dataset(data.val, batch)
    recorder = RunRecorder(run, len(data.train))
    total = sum(p.epochs for p in plan)
    progress = ConsoleProgress(console, total, steps, recorder, show_phase=len(plan) > 1)
    first_phase, phase_start = 0, 0
    if state is not None:
        recorder.rows, recorder.best = state.rows, state.best
        recorder.train_seconds = state.train_seconds
        first_phase, phase_start = state.phase, state.phase_start
    start = time.perf_counter()
    status, reason = "completed", ""
    stopper = StopOnSignal(console)
    with stopper.installed():
        try:
            for index in range(first_phase, len(plan)):
                phase = plan[index]
                carry_on = state is not None and index == state.phase and state.mid_phase
                if not carry_on:
                    set_trainable(model, phase, cfg)
                with rt.strategy.scope():
                    model.compile(
                        optimizer=model.optimizer
                        if carry_on
                        else keras.optimizers.Adam(phase.learning_rate),
                        loss="sparse_categorical_crossentropy",
                        metrics=["accuracy"],
                        jit_compile=rt.jit_compile,
                    )
                multiworker.adapt(model, rt.strategy)
                recorder.phase = phase.name
                first = len(recorder.rows)
                last = phase_start + phase.epochs
                callbacks = _callbacks(phase, cfg, run, recorder, index, phase_start, last)
                if carry_on:
                    callbacks.append(RestoreCounters(state, _counter_callbacks(callbacks)))
                model.fit(
                    pipeline.training_dataset(data.train, batch, cfg.seed, first, last),
                    steps_per_epoch=steps,
                    validation_data=val_ds,
                    initial_epoch=first,
                    epochs=last,
                    callbacks=[stopper, recorder, progress, *callbacks, *extra],
                    shuffle=False,  # the dataset shuffles each epoch by its own seed
                    verbose=0,
                )
                phase_start = len(recorder.rows)
                bad = [
                    r["epoch"]
                    for r in recorder.rows
                    if r["loss"] is None or not np.isfinite(r["loss"])
                ]
                if bad:
                    status, reason = "failed", f"loss became NaN or infinite at epoch {bad[0]}"
                    break
        except KeyboardInterrupt:
            status, reason = "interrupted", f"stopped after epoch {len(recorder.rows)}"
        except Exception as exc:
            run.write_text("error.log", traceback.format_exc())
            status, reason = "failed", f"{type(exc).__name__}: {_gist(exc)} (see error.log)"
    epochs_seen = len(recorder.rows)
    if epochs_seen:
        history_figure(run.history(), run.name, run.file(HISTORY_PNG))
    previous = (run.metrics().get("wall_time_s") or 0.0) if state is not None else 0.0
    run.update_metrics(
        status=status,
        reason=reason or None,
        finished=datetime.now().isoformat(timespec="seconds"),
        wall_time_s=round(previous + time.perf_counter() - start, 2),
        epochs_run=epochs_seen,
        images_per_second=round(len(data.train) * epochs_seen / recorder.train_seconds, 1)
        if recorder.train_seconds
        else None,
    )
    return status, reason


def _gist(exc: Exception) -> str:
    """The line of an error message that says what went wrong: TensorFlow's messages
    open with "Graph execution error:" and the stack of the failing op."""
    noise = ("Graph execution error:", "Detected at node", "File ")
    lines = (line.strip() for line in str(exc).splitlines())
    return next((line for line in lines if line and not line.startswith(noise)), "")


def _counter_callbacks(callbacks: list) -> dict[str, keras.callbacks.Callback]:
    by_type = {type(c): c for c in callbacks}
    return {
        "early_stopping": by_type[keras.callbacks.EarlyStopping],
        "plateau": by_type[keras.callbacks.ReduceLROnPlateau],
    }
