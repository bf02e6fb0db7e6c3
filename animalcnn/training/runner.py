"""`animalcnn train`: several configs in turn, or one run resumed, each ending in one line.

Every config is validated before the first (long) training starts; a config that
fails does not stop the rest, an interruption does. In a multi-worker cluster
only the chief keeps the run folder, and the lines say so.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.markup import escape

from animalcnn import backends
from animalcnn.backends.runtime import keeps_run_folder
from animalcnn.config import ExperimentConfig
from animalcnn.console import console, err_console, print_error, print_warning
from animalcnn.data.discovery import check_data_dir
from animalcnn.errors import TrainingFailed, UserError
from animalcnn.models.configs import load_config
from animalcnn.run_folder import RunFolder
from animalcnn.run_folder.flags import CHANCE_HINT, run_flags

EXIT_INTERRUPTED = 130
EXIT_FAILED = 1


def load_all(
    paths: list[Path], overrides: list[str], runs_dir: Path | None
) -> list[ExperimentConfig | UserError]:
    """Each config validated (with `--set` and `--runs-dir`), or the error that stopped it;
    with a single config its error is raised."""
    loaded: list[ExperimentConfig | UserError] = []
    for path in paths:
        try:
            cfg = load_config(path, overrides, runs_dir)
            check_data_dir(cfg.data, path)
            RunFolder.check_runs_dir(cfg.output.runs_dir)
            loaded.append(cfg)
        except UserError as exc:
            if len(paths) == 1:
                raise
            print_error(exc)
            loaded.append(exc)
    return loaded


def train_all(paths: list[Path], overrides: list[str], runs_dir: Path | None) -> int:
    """Train each config into its run folder; returns the exit code (0: all completed).
    A config on another Keras backend than the first one's trains in a process of its
    own (Keras takes one backend per process)."""
    loaded = load_all(paths, overrides, runs_dir)
    wanted = [
        None if isinstance(c, UserError) else backends.choose(c.training.backend) for c in loaded
    ]
    here = next((name for name in wanted if name), None)
    if here is None:
        return EXIT_FAILED
    backends.activate(here)
    outcomes: list[tuple[Path, str]] = []
    code = 0
    for path, cfg, name in zip(paths, loaded, wanted, strict=True):
        if isinstance(cfg, UserError):
            outcomes.append((path, "config error"))
            code = EXIT_FAILED
            continue
        if name != here:
            status = _in_own_process(path, overrides, runs_dir, name)
            outcomes.append((path, f"on {name} in a process of its own: exit {status}"))
            if status == EXIT_INTERRUPTED:
                code = EXIT_INTERRUPTED
                break
            code = code or (EXIT_FAILED if status else 0)
            continue
        try:
            run = train_config(cfg)
        except TrainingFailed as exc:
            outcomes.append((path, f"{exc.status}: {exc.run.path}"))
            if exc.status == "interrupted":
                code = EXIT_INTERRUPTED
                break
            code = EXIT_FAILED
            continue
        except UserError as exc:
            if len(paths) == 1:
                raise
            print_error(exc)
            outcomes.append((path, "error"))
            code = EXIT_FAILED
            continue
        kept = run.path if keeps_run_folder(cfg) else "this worker's share"
        outcomes.append((path, f"completed: {kept}"))
    if len(paths) > 1:
        for path, outcome in outcomes:
            console.print(f"{path}: {outcome}", highlight=False, markup=False)
    return code


def train_config(cfg: ExperimentConfig, callbacks: Sequence[Any] = ()) -> RunFolder:
    """Train one checked config in this process, on its backend (active already, or made
    so), and say how it ended: the completed run, or TrainingFailed once reported.
    `callbacks` (Keras callbacks) join every phase's `fit`."""
    backends.activate(backends.choose(cfg.training.backend))
    import keras

    from animalcnn.training.session import start

    keras.backend.clear_session()
    return _reported(cfg, lambda: start(cfg, callbacks))


def _reported(cfg: ExperimentConfig, training: Callable[[], RunFolder]) -> RunFolder:
    """Run `training` and say how it ended, in one line and its flags; a failure raises
    on once said."""
    try:
        run = training()
    except TrainingFailed as exc:
        report_failure(exc, cfg)
        raise
    report_success(run, cfg)
    return run


def _in_own_process(path: Path, overrides: list[str], runs_dir: Path | None, name: str) -> int:
    """Train one config in a new process on backend `name`; its exit code."""
    command = [sys.executable, "-m", "animalcnn", "train", str(path)]
    command += [arg for o in overrides for arg in ("--set", o)]
    command += ["--set", f"training.backend={name}"]
    if runs_dir is not None:
        command += ["--runs-dir", str(runs_dir)]
    console.print(
        f"{path}: training on {name} in a process of its own", highlight=False, markup=False
    )
    return subprocess.run(command, env={**os.environ, "KERAS_BACKEND": name}).returncode


def resume_one(path: Path) -> int:
    """Continue a stopped run in its folder (on the backend it trained on); returns the
    exit code."""
    try:
        resume_run(RunFolder.open(path))
    except TrainingFailed as exc:
        return EXIT_INTERRUPTED if exc.status == "interrupted" else EXIT_FAILED
    return 0


def resume_run(folder: RunFolder) -> RunFolder:
    """Continue a stopped run in its folder, on the backend it trained on, and say how it
    ended: the completed run, or TrainingFailed once reported."""
    cfg = folder.config()
    backends.activate(backends.choose(cfg.training.backend))
    from animalcnn.training.session import resume

    return _reported(cfg, lambda: resume(folder))


def report_failure(exc: TrainingFailed, cfg: ExperimentConfig) -> None:
    """`interrupted:` or `failed:` with the reason, and how to resume the run where it can
    be (it completed an epoch and kept its resume state)."""
    chief = keeps_run_folder(cfg)
    run = exc.run.path if chief else "<the chief's run folder>"
    every = ", on every worker" if cfg.distribute.strategy == "multi_worker" else ""
    interrupted = exc.status == "interrupted"
    what = str(exc)
    if interrupted and not chief:  # its scratch copy is gone: the chief's folder resumes
        what = f"this worker's share: {exc.status}: {exc.reason}"
    resumable = interrupted and (exc.run.resumable() if chief else True)
    hint = f"; continue with: animalcnn train --resume {run}{every}" if resumable else ""
    err_console.print(f"[red]{exc.status}:[/] {escape(what + hint)}", highlight=False)


def report_success(run: RunFolder, cfg: ExperimentConfig) -> None:
    if not keeps_run_folder(cfg):
        console.print("[green]completed[/] this worker's share; the chief keeps the run folder")
        return
    best = run.metrics().best
    shown = ""
    if best is not None and best.val_accuracy is not None:
        shown = f"  best val accuracy {best.val_accuracy:.2%} (epoch {best.epoch})"
    console.print(
        f"[green]completed[/] {escape(str(run.path))}" + shown,
        highlight=False,
    )
    for flag in run_flags(run):
        if flag.name != "not evaluated":  # (it has only just finished)
            hint = f"; {CHANCE_HINT}" if flag.name == "chance" else ""
            print_warning(f"{flag}{hint}")
