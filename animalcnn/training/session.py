"""Training one experiment into a run folder: a new run, or a stopped one resumed.

Order matters for the user: everything that can fail on bad input (config, data
folder, images, weights) fails before the run folder exists, so a failed start
leaves nothing behind; once it exists, `metrics.json` always says how it ended.
`start` and `resume` share their set-up (`_prepare`) and their training loop
(`TrainingSession.run`).
"""

from __future__ import annotations

import contextlib
import errno
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import keras
import numpy as np
from rich.markup import escape

from animalcnn.backends.runtime import Runtime, configure, keeps_run_folder
from animalcnn.config import ExperimentConfig
from animalcnn.console import console, print_warning
from animalcnn.data.batches import steps_per_epoch
from animalcnn.data.files import file_digest
from animalcnn.data.loading import TrainingData, load_training_data
from animalcnn.data.targets import Targets
from animalcnn.errors import ConfigError, DataError, RunFolderError, TrainingFailed, gist
from animalcnn.figures.charts import history_chart, write_png
from animalcnn.models import build_model
from animalcnn.models.summary import layer_table, parameter_counts
from animalcnn.models.warm_start import classifier, copy_matching_weights
from animalcnn.run_folder import (
    CONFIG,
    HISTORY_PNG,
    LAST_MODEL,
    MODEL,
    STATE,
    SUMMARY,
    TEST_FILES,
    HeldOutTest,
    History,
    ResumeState,
    RunFolder,
)
from animalcnn.training import resume as resume_state
from animalcnn.training.callbacks import (
    ConsoleProgress,
    PaddedValidation,
    PhaseCallbacks,
    RunRecorder,
    StopOnSignal,
    TtaValidation,
)
from animalcnn.training.compiling import compile_for_training, eval_batches, training_batches
from animalcnn.training.optimizers import carry_over, make_optimizer
from animalcnn.training.phases import Phase, phases, set_trainable
from animalcnn.training.resume import (
    PhaseWindow,
    RestoreCounters,
    ResumeCheckpoint,
    load_state,
    restore_rng_state,
)


def _prepare(cfg: ExperimentConfig) -> tuple[Runtime, TrainingData]:
    """What a new and a resumed run both need first: the runtime, then the checked data."""
    from animalcnn import backends

    backends.activate(backends.choose(cfg.training.backend))  # (refused if Keras runs on another)
    rt = configure(cfg)
    console.print(
        f"[bold]{escape(cfg.name)}[/]: {cfg.model.arch} on {rt.device}; backend {rt.backend}, "
        f"precision {rt.precision}, XLA {'on' if rt.jit_compile else 'off'}",
        highlight=False,
    )
    return rt, load_training_data(cfg)


WORKER_SCRATCH = "animalcnn-worker-"  # the prefix of a worker's scratch folder


def _worker_scratch() -> Path:
    """Where a non-chief worker writes what the chief writes to the run folder."""
    return Path(tempfile.mkdtemp(prefix=WORKER_SCRATCH))


def _drop_worker_scratch(run: RunFolder) -> None:
    """Remove the scratch folder holding a worker's copy of the run: only a folder that
    `_worker_scratch` made (in the system's temporary folder, with its prefix)."""
    scratch = run.path.parent
    if scratch.parent != Path(tempfile.gettempdir()) or not scratch.name.startswith(WORKER_SCRATCH):
        print_warning(f"{scratch}: not a worker's scratch folder; left as it is")
        return
    shutil.rmtree(scratch)


def start(
    cfg: ExperimentConfig,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    on_created: Callable[[RunFolder], None] | None = None,
) -> RunFolder:
    """Train `cfg` into a new run folder and return it; raises TrainingFailed if it stops.

    `callbacks` are added to every phase's `fit` (from a notebook, say); `on_created` is
    called with the run folder once it exists, before training (a sweep ties it to its
    trial there).
    """
    rt, data = _prepare(cfg)
    classes = data.dataset.classes
    with rt.scope():
        model = build_model(cfg, len(classes))
    warm = _warm_start(cfg, model, classes) if cfg.model.init_from is not None else None
    set_trainable(model, phases(cfg)[-1], cfg)  # counts as training ends (fine-tune: unfrozen)
    run = _new_run_folder(cfg, rt, data, model, warm)
    with run.claim():
        if on_created is not None:
            on_created(run)
        return TrainingSession(cfg, rt, data, run, model, None, callbacks).run()


def _new_run_folder(
    cfg: ExperimentConfig,
    rt: Runtime,
    data: TrainingData,
    model: keras.Model,
    warm: dict[str, object] | None,
) -> RunFolder:
    """A new run folder with what is known before training: the config, the held-out
    test files, the layer table and the run's metrics so far; said in one line."""
    classes = data.dataset.classes
    counts = parameter_counts(model)
    # In a multi-worker cluster every worker trains; only the chief keeps its run folder.
    runs_dir = cfg.output.runs_dir if keeps_run_folder(cfg) else _worker_scratch()
    run = RunFolder.create(runs_dir, cfg.name)
    run.write_text(CONFIG, cfg.to_yaml())
    test = data.dataset.test
    if data.dataset.held_out:  # exactly these files are the test split, never trained on
        files = [str(p.relative_to(cfg.data.dir)) for p in test.paths]
        held_out = HeldOutTest(files=files, labels=test.labels.tolist())
        run.write_json(TEST_FILES, held_out.model_dump())
    run.write_text(SUMMARY, layer_table(model))
    run.update_metrics(
        status="running",
        name=cfg.name,
        tags=cfg.tags,
        notes=cfg.notes or None,
        arch=cfg.model.arch,
        strategy=cfg.transfer.strategy if cfg.transfer else None,
        started=datetime.now().isoformat(timespec="seconds"),
        device=rt.device,
        backend=rt.backend,
        precision=rt.precision,
        jit_compile=rt.jit_compile,
        replicas=rt.replicas,
        classes=classes,
        images={"train": len(data.train), "val": len(data.val)},
        skipped_files=[str(b) for b in data.train.bad + data.val.bad],
        params=counts,
        init_from=warm,
    )
    where = (
        "run folder"
        if keeps_run_folder(cfg)
        else "worker's scratch copy (the chief keeps the run folder)"
    )
    console.print(
        f"{where}: {run.path}  ({len(data.train):,} training, {len(data.val):,} validation "
        f"images, {len(classes)} classes, {counts['trainable']:,} trainable parameters)",
        highlight=False,
        markup=False,
    )
    return run


def _warm_start(cfg: ExperimentConfig, model: keras.Model, classes: list[str]) -> dict[str, object]:
    """Copy the best weights of the run `model.init_from` into `model` where layers match;
    its classifier only when the two runs' classes are the same, in the same order (else
    output 0 would mean another class). A one-line error when nothing matches (before
    any run folder exists)."""
    try:
        source = RunFolder.open(cfg.model.init_from)
        theirs = source.metrics().classes
        keep = frozenset() if theirs == classes else frozenset({classifier(model)})
        copied, fresh = copy_matching_weights(source.best_model(), model, keep)
        status = source.status()
        best = source.metrics().best
    except RunFolderError as exc:
        raise ConfigError(f"model.init_from: {exc}") from None
    if not copied:
        raise ConfigError(
            f"model.init_from: {source.path}: none of its layers matches this model's by "
            "name and shape"
        )
    if status == "running":
        print_warning(
            f"model.init_from: {source.path} is still training: starting from its "
            "best checkpoint so far"
        )
    why = f" (its classes {theirs} are not {classes})" if keep else ""
    left = f"; left fresh: {', '.join(fresh)}{why}" if fresh else ""
    console.print(
        f"starting from {source.path}: {len(copied)} layers' weights{left}",
        highlight=False,
        markup=False,
    )
    return {
        "run": str(source.path),
        "checkpoint": {
            "epoch": best.epoch if best else None,
            "sha256": file_digest(source.file(MODEL)),
            "run_status": status,
        },
        "classes_match": not keep,
        "layers_copied": len(copied),
        "layers_fresh": fresh,
    }


def resume(run: RunFolder, callbacks: Sequence[keras.callbacks.Callback] = ()) -> RunFolder:
    """Continue an interrupted run from its last completed epoch, in the same folder."""
    metrics, cfg = run.metrics(), run.config()
    status = run.status()
    if status == "completed":
        raise RunFolderError(f"{run.path}: already completed; nothing to resume")
    if status == "running" and keeps_run_folder(cfg):  # (a cluster's other workers read it)
        who = metrics.process
        by = f" (pid {who.pid} on {who.host})" if who else ""
        raise RunFolderError(f"{run.path}: another process is training this run{by}")
    plan = phases(cfg)
    state = load_state(run, plan)
    if state is None:
        raise RunFolderError(
            f"{run.path}: no resume state ({LAST_MODEL}, {STATE}); it was trained with "
            "training.resume_checkpoints: false or stopped before its first epoch ended"
        )
    rt, data = _prepare(cfg)
    if not keeps_run_folder(
        cfg
    ):  # the chief alone writes the run folder: this worker resumes a copy
        run = RunFolder(Path(shutil.copytree(run.path, _worker_scratch() / run.name)))
    if data.dataset.classes != metrics.classes:
        raise DataError(f"{cfg.data.dir}: its classes are not the run's {metrics.classes}")
    with rt.scope():
        model = run.load_model(LAST_MODEL, compile=True)
    restore_rng_state(model, state.rng)
    console.print(
        f"resuming {run.path} after epoch {len(state.rows)} "
        f"(phase {plan[min(state.phase, len(plan) - 1)].name})",
        highlight=False,
        markup=False,
    )
    with run.claim():
        run.update_metrics(status="running", reason=None, resumed=len(state.rows))
        return TrainingSession(cfg, rt, data, run, model, state, callbacks).run()


class TrainingSession:
    """The phases of one run, trained from the start or from a resume state."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        rt: Runtime,
        data: TrainingData,
        run: RunFolder,
        model: keras.Model,
        state: ResumeState | None,
        extra: Sequence[keras.callbacks.Callback] = (),
    ) -> None:
        self.cfg, self.rt, self.data, self.run_folder = cfg, rt, data, run
        self.model, self.state, self.extra = model, state, list(extra)
        self.plan = phases(cfg)
        self._told_tensorboard = False
        self.steps = steps_per_epoch(data.train, cfg.data.batch_size, rt.share)
        self.targets = Targets.of(cfg.training, len(data.dataset.classes))
        self.val_ds = eval_batches(rt, data.val, cfg.data.batch_size, self.targets)
        self.recorder = RunRecorder(run, len(data.train))
        self.stopper = StopOnSignal(console, rt.any_process)
        total = sum(p.epochs for p in self.plan)
        self.progress = ConsoleProgress(
            console, total, self.steps, self.recorder, show_phase=len(self.plan) > 1
        )
        if state is not None:
            self.recorder.rows, self.recorder.best = state.rows, state.best
            self.recorder.train_seconds = state.train_seconds

    def run(self) -> RunFolder:
        """Train the remaining phases; record how the run ended; raise TrainingFailed if it
        did not complete, else drop the resume state. A worker's scratch copy goes unless it
        failed (the chief's run folder is the one that resumes)."""
        start = time.perf_counter()
        status, reason = "completed", ""
        first, phase_start = (self.state.phase, self.state.phase_start) if self.state else (0, 0)
        with self.stopper.installed():
            try:
                for index in range(first, len(self.plan)):
                    window = PhaseWindow(index, phase_start, phase_start + self.plan[index].epochs)
                    self._fit_phase(window)
                    phase_start = len(self.recorder.rows)
                    nan_at = self._first_nan_epoch()
                    if nan_at is not None:
                        status, reason = "failed", f"loss became NaN or infinite at epoch {nan_at}"
                        break
            except KeyboardInterrupt:
                status, reason = "interrupted", f"stopped after epoch {len(self.recorder.rows)}"
            except OSError as exc:
                full = exc.errno == errno.ENOSPC
                status, reason = "failed", self._disk_full(exc) if full else self._failure(exc)
            except Exception as exc:
                status, reason = "failed", self._failure(exc)
        self._record_end(status, reason, time.perf_counter() - start)
        if (
            not keeps_run_folder(self.cfg) and status != "failed"
        ):  # (a failure keeps its error.log there)
            _drop_worker_scratch(self.run_folder)
        if status != "completed":
            raise TrainingFailed(self.run_folder, status, reason)
        resume_state.remove(self.run_folder)
        return self.run_folder

    def _failure(self, exc: BaseException) -> str:
        """The reason line for an unexpected error, its traceback kept in error.log."""
        try:
            self.run_folder.write_text("error.log", traceback.format_exc())
            where = " (see error.log)"
        except OSError:
            where = ""
        return f"{gist(exc)}{where}"

    def _disk_full(self, exc: OSError) -> str:
        """Which file could not be written, and about how much room the run needs: its
        largest checkpoint, which every epoch writes again."""
        sizes = [p.stat().st_size for p in self.run_folder.path.glob("*.keras")]
        need = max(sizes, default=0) + (1 << 20)
        free = shutil.disk_usage(self.run_folder.path).free
        return (
            f"disk full: could not write {exc.filename or 'a file'} "
            f"({free / 2**20:,.1f} MiB free; the run needs about {need / 2**20:,.1f} MiB "
            "for each checkpoint); the last good checkpoint and resume state are kept"
        )

    def _carries_on(self, index: int) -> bool:
        """Whether phase `index` was under way when the run stopped (its optimizer and
        counters carry over)."""
        return self.state is not None and index == self.state.phase and self.state.mid_phase

    def _fit_phase(self, window: PhaseWindow) -> None:
        phase = self.plan[window.index]
        carry_on = self._carries_on(window.index)
        if not carry_on:
            set_trainable(self.model, phase, self.cfg)
        t, model = self.cfg.training, self.model
        loaded = model.optimizer if carry_on else None

        def optimizer() -> keras.optimizers.Optimizer:
            made = make_optimizer(t, phase, self.steps, model)
            return made if loaded is None else carry_over(made, loaded, model)

        compile_for_training(model, self.rt, t, optimizer)
        self.recorder.phase = phase.name
        first = len(self.recorder.rows)
        batches = training_batches(
            self.rt,
            self.data.train,
            self.cfg.data.batch_size,
            self.cfg.seed,
            first,
            window.end,
            self.targets,
        )
        model.fit(
            batches,
            steps_per_epoch=self.steps,
            validation_data=self.val_ds,
            initial_epoch=first,
            epochs=window.end,
            callbacks=self._callbacks(phase, window, carry_on).in_order(),
            shuffle=False,  # the dataset shuffles each epoch by its own seed
            verbose=0,
        )

    def _callbacks(self, phase: Phase, window: PhaseWindow, carry_on: bool) -> PhaseCallbacks:
        t = self.cfg.training
        stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=phase.val_patience)
        plateau = (
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss",
                factor=t.lr_factor,
                patience=phase.lr_patience,
                min_delta=t.lr_min_delta,
                min_lr=t.min_lr,
            )
            if phase.schedule == "plateau"
            else None
        )
        ema = keras.callbacks.SwapEMAWeights(swap_on_epoch=True) if t.ema is not None else None
        run = self.run_folder
        padding = self.rt.share.padding(len(self.data.val))
        return PhaseCallbacks(
            stopper=self.stopper,
            padded=PaddedValidation(len(self.data.val), padding) if padding else None,
            ema=ema,
            tta=TtaValidation(self.data.val, self.cfg.data.batch_size, t.tta)
            if t.tta != "none"
            else None,
            recorder=self.recorder,
            progress=self.progress,
            early_stopping=stopping,
            plateau=plateau,
            nan_guard=keras.callbacks.TerminateOnNaN(),
            restore=RestoreCounters(self.state, stopping, plateau, ema) if carry_on else None,
            checkpoint=ResumeCheckpoint(run, self.recorder, stopping, plateau, window)
            if t.resume_checkpoints
            else None,
            tensorboard=self._tensorboard(),
            extra=self.extra,
        )

    def _tensorboard(self) -> keras.callbacks.Callback | None:
        """Keras's TensorBoard callback, where TensorFlow's summary writer is installed;
        without it the run says so once (at its first phase) and trains on."""
        if not self.cfg.output.tensorboard:
            return None
        from animalcnn import backends

        if not backends.installed("tensorflow"):
            if not self._told_tensorboard:
                print_warning(
                    "output.tensorboard: TensorBoard logs need TensorFlow's summary "
                    "writer, which is not installed; this run writes none"
                )
                self._told_tensorboard = True
            return None
        return keras.callbacks.TensorBoard(log_dir=str(self.run_folder.file("tensorboard")))

    def _first_nan_epoch(self) -> int | None:
        rows = self.recorder.rows
        return next((r.epoch for r in rows if r.loss is None or not np.isfinite(r.loss)), None)

    def _record_end(self, status: str, reason: str, seconds: float) -> None:
        run, recorder = self.run_folder, self.recorder
        epochs = len(recorder.rows)
        if epochs:
            with contextlib.suppress(OSError):  # a full disk: the figure can wait
                chart = history_chart(History(rows=recorder.rows).frame(), run.name)
                write_png(chart, run.file(HISTORY_PNG))
        previous = (run.metrics().wall_time_s or 0.0) if self.state is not None else 0.0
        run.update_metrics(
            status=status,
            reason=reason or None,
            finished=datetime.now().isoformat(timespec="seconds"),
            wall_time_s=round(previous + seconds, 2),
            epochs_run=epochs,
            images_per_second=round(len(self.data.train) * epochs / recorder.train_seconds, 1)
            if recorder.train_seconds
            else None,
        )
