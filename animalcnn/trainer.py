"""Training one experiment into a new run folder.

Order matters for the user: everything that can fail on bad input (config, data
folder, images, weights) fails before the run folder exists, so a failed start
leaves nothing behind; once it exists, `metrics.json` always says how it ended.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import keras
import numpy as np

from animalcnn import pipeline, runtime
from animalcnn.callbacks import ConsoleProgress, RunRecorder
from animalcnn.config import ExperimentConfig
from animalcnn.console import console, err_console, progress_bar
from animalcnn.data import Dataset, Images, decode, discover
from animalcnn.errors import DataError
from animalcnn.models import build_model
from animalcnn.runs import CONFIG, METRICS, SUMMARY, RunFolder
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


def _callbacks(phase: Phase, cfg: ExperimentConfig, run: RunFolder) -> list:
    t = cfg.training
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=phase.val_patience),
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss",
            factor=t.lr_factor,
            patience=phase.lr_patience,
            min_delta=t.lr_min_delta,
            min_lr=t.min_lr,
        ),
        keras.callbacks.TerminateOnNaN(),
    ]
    if cfg.output.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run.file("tensorboard"))))
    return callbacks


def train(cfg: ExperimentConfig, callbacks: Sequence[keras.callbacks.Callback] = ()) -> RunFolder:
    """Train `cfg` into a new run folder and return it; raises TrainingFailed if it stops.

    `callbacks` are added to every phase's `fit` (from a notebook, say).
    """
    rt = runtime.configure(cfg)
    console.print(
        f"[bold]{cfg.name}[/]: {cfg.model.arch} on {rt.device}; "
        f"mixed precision {'on' if rt.mixed_precision else 'off'}, "
        f"XLA {'on' if rt.jit_compile else 'off'}"
    )
    data = load_training_data(cfg)
    classes = data.dataset.classes
    model = build_model(cfg, len(classes))
    plan = phases(cfg)
    set_trainable(model, plan[-1], cfg)  # counts as training ends (fine-tune: unfrozen)
    counts = parameter_counts(model)

    run = RunFolder.create(cfg.output.runs_dir, cfg.name)
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
            "classes": classes,
            "images": {"train": len(data.train), "val": len(data.val)},
            "skipped_files": [str(b) for b in data.train.bad + data.val.bad],
            "params": counts,
        },
    )
    console.print(
        f"run folder: {run.path}  ({len(data.train):,} training, {len(data.val):,} validation "
        f"images, {len(classes)} classes, {counts['trainable']:,} trainable parameters)",
        highlight=False,
    )
    status, reason = _fit(model, plan, cfg, rt, data, run, list(callbacks))
    if status != "completed":
        raise TrainingFailed(run, status, reason)
    return run


def _fit(
    model: keras.Model,
    plan: list[Phase],
    cfg: ExperimentConfig,
    rt: runtime.Runtime,
    data: TrainingData,
    run: RunFolder,
    extra: list[keras.callbacks.Callback],
) -> tuple[str, str]:
    """Run the phases; record and return how the run ended."""
    batch = cfg.data.batch_size
    steps = pipeline.steps_per_epoch(data.train, batch)
    val_ds = pipeline.eval_dataset(data.val, batch)
    recorder = RunRecorder(run, len(data.train))
    progress = ConsoleProgress(console, sum(p.epochs for p in plan), steps, len(data.train))
    start = time.perf_counter()
    status, reason = "completed", ""
    try:
        for phase in plan:
            set_trainable(model, phase, cfg)
            model.compile(
                optimizer=keras.optimizers.Adam(phase.learning_rate),
                loss="sparse_categorical_crossentropy",
                metrics=["accuracy"],
                jit_compile=rt.jit_compile,
            )
            recorder.phase = phase.name
            progress.phase = phase.name if len(plan) > 1 else ""
            first = len(recorder.rows)
            last = first + phase.epochs
            model.fit(
                pipeline.training_dataset(data.train, batch, cfg.seed, first, last),
                steps_per_epoch=steps,
                validation_data=val_ds,
                initial_epoch=first,
                epochs=last,
                callbacks=[recorder, progress, *_callbacks(phase, cfg, run), *extra],
                shuffle=False,  # the dataset shuffles each epoch by its own seed
                verbose=0,
            )
            bad = [r["epoch"] for r in recorder.rows if not np.isfinite(r["loss"] or np.nan)]
            if bad:
                status, reason = "failed", f"loss became NaN or infinite at epoch {bad[0]}"
                break
    except KeyboardInterrupt:
        status, reason = "interrupted", "stopped by the user"
    except Exception as exc:
        run.write_text("error.log", traceback.format_exc())
        status, reason = "failed", f"{type(exc).__name__}: {exc} (see error.log)"
    wall = time.perf_counter() - start
    epochs_seen = len(recorder.rows)
    run.update_metrics(
        status=status,
        reason=reason or None,
        finished=datetime.now().isoformat(timespec="seconds"),
        wall_time_s=round(wall, 2),
        epochs_run=epochs_seen,
        images_per_second=round(len(data.train) * epochs_seen / recorder.train_seconds, 1)
        if recorder.train_seconds
        else None,
    )
    return status, reason
