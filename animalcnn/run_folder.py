"""The run folder: everything one experiment produced, written atomically.

A run folder is `<runs_dir>/<name>-<YYYYmmdd-HHMMSS>[-N]`, created exclusively (never
reused) and holding `config.yaml`, `metrics.json`, `history.csv`, `model.keras`,
`summary.txt`, and after `evaluate`, `evaluation.json`. `metrics.json`'s `status`
says whether the run is `running`, `completed`, `interrupted` or `failed`; the
process training it is recorded there too, and a `heartbeat` file is touched while
it lives, so a reader tells a live run from one whose process is gone (`stopped`).
One process at a time trains a run folder (`RunFolder.claim`).
Reading a run folder never imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from animalcnn.atomic import atomic_path, atomic_write
from animalcnn.errors import ConfigError, RunFolderError

if TYPE_CHECKING:  # imported on use: reading metrics stays fast (compare)
    import keras
    import pandas as pd

    from animalcnn.config import ExperimentConfig

CONFIG = "config.yaml"
METRICS = "metrics.json"
HISTORY = "history.csv"
MODEL = "model.keras"
SUMMARY = "summary.txt"
EVALUATION = "evaluation.json"  # the best checkpoint on the run's own test split
OTHER_EVALUATIONS = "evaluations"  # on other data folders, one file each
HISTORY_PNG = "history.png"
CONFUSION_PNG = "confusion.png"
ERRORS_PNG = "errors.png"  # the mistakes gallery
TEST_FILES = "test_files.json"  # a test split held out of the training images
LAST_MODEL = "last.keras"  # with STATE: what `train --resume` continues from
STATE = "state.json"
HEARTBEAT = "heartbeat"
HEARTBEAT_SECONDS = 10.0  # how often a training process touches `heartbeat`
# A process on another host whose heartbeat is older than this is taken for dead (hosts'
# clocks must agree to well within it).
STALE_AFTER_SECONDS = 60.0
LOCK = ".lock"  # held by the process training the run (filelock); readers never need it
HISTORY_COLUMNS = [
    "epoch",
    "phase",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "lr",
    "seconds",
]


class EpochRow(BaseModel):
    """One epoch's figures, as `metrics.json` keeps the best one."""

    model_config = ConfigDict(extra="allow")
    epoch: int
    phase: str | None = None
    loss: float | None = None
    accuracy: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None

    def value(self, metric: str) -> float | None:
        """A history column's value (loss, accuracy, val_loss, val_accuracy)."""
        found = getattr(self, metric, None)
        return found if isinstance(found, int | float) else None


class Process(BaseModel):
    """The process working on a run or a trial: where it runs and since when."""

    model_config = ConfigDict(extra="allow")
    host: str | None = None
    pid: int | None = None
    start: float | None = None


class ParamCounts(BaseModel):
    model_config = ConfigDict(extra="allow")
    total: int | None = None
    trainable: int | None = None


METRICS_FORMAT = 1  # metrics.json's format; files without one are 0 (before it was kept)


class Metrics(BaseModel):
    """`metrics.json`: the one record its writers (training, the sweep) and its readers
    (the tables, the report, the API) share. Every write is checked against it; a
    damaged or hand-edited file is a one-line error on reading. A file of an older
    format is upgraded as it is read (`_upgrade`); keys a later version adds are kept
    (extra keys are allowed)."""

    model_config = ConfigDict(extra="allow")
    format: int = METRICS_FORMAT
    status: Literal["running", "completed", "interrupted", "failed", "pruned"]
    reason: str | None = None
    name: str | None = None
    arch: str | None = None
    strategy: str | None = None  # the transfer strategy
    started: str | None = None
    finished: str | None = None
    device: str | None = None
    backend: Literal["tensorflow", "jax", "torch"] = "tensorflow"
    precision: str | None = None
    jit_compile: bool | None = None
    replicas: int | None = None
    classes: list[str] = Field(default_factory=list)
    images: dict[str, int] | None = None
    skipped_files: list[str] | None = None
    params: ParamCounts = Field(default_factory=ParamCounts)
    init_from: dict[str, Any] | None = None
    process: Process | None = None
    resumed: int | None = None
    epochs_run: int | None = None
    best_epoch: int | None = None
    best: EpochRow | None = None
    wall_time_s: float | None = None
    images_per_second: float | None = None
    sweep: dict[str, Any] | None = None
    tags: list[str] = Field(default_factory=list)
    notes: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, data: Any) -> Any:
        """Format 0 (no `format`): TensorFlow was the only backend, `mixed_precision` a
        flag rather than the dtype policy, and absent lists were written as null."""
        if not isinstance(data, dict) or data.get("format", 0) >= 1:
            return data
        data = {k: v for k, v in data.items() if not (k in ("classes", "tags") and v is None)}
        if "precision" not in data and isinstance(data.get("mixed_precision"), bool):
            data["precision"] = "mixed_float16" if data.pop("mixed_precision") else "float32"
        data.setdefault("backend", "tensorflow")
        return {**data, "format": 1}


EVALUATION_FORMAT = 1  # evaluation.json's format; files without one are 0


class Checkpoint(BaseModel):
    """Which checkpoint an evaluation scored."""

    model_config = ConfigDict(extra="allow")
    epoch: int | None = None
    phase: str | None = None
    sha256: str | None = None


class Evaluation(BaseModel):
    """`evaluation.json` (and `evaluations/<name>.json`): a checkpoint's scores on a
    labelled split, written by `evaluate` and read by the tables, the report and the
    server. Format 0 (no `format`) had no TTA (`tta` is then `none`) and may lack the
    checkpoint it scored (the run's best epoch is then taken)."""

    model_config = ConfigDict(extra="allow")
    format: int = EVALUATION_FORMAT
    accuracy: float = Field(ge=0, le=1)
    loss: float | None = None
    classes: list[str] = Field(default_factory=list)
    images: int | None = None
    confusion_matrix: list[list[int]] = Field(default_factory=list)
    data: str | None = None
    tta: str = "none"
    checkpoint: Checkpoint | None = None
    train_accuracy: float | None = None


class TestResult(BaseModel):
    """The state of a run's result on its own test split: `scored` (on the current best
    epoch), `stale` (scored on an earlier best: the run was resumed since), `damaged`
    (its file does not hold a score) or `none` (not evaluated)."""

    state: Literal["scored", "stale", "damaged", "none"]
    epoch: int | None = None  # the epoch it scored
    best_epoch: int | None = None  # the run's best epoch now
    evaluation: Evaluation | None = None  # when scored

    def text(self) -> str | None:
        """What the runs table's `test_data` column says of it."""
        if self.state == "scored":
            return self.evaluation.data if self.evaluation else None
        if self.state == "stale":
            return f"stale: scored epoch {self.epoch}, best is now {self.best_epoch}"
        return f"damaged {EVALUATION}" if self.state == "damaged" else None


def _process_start(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), to tell it from a later
    process given the same pid; None where there is no such process."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:  # it exists, but its start time is not ours to read
        return -1.0


def this_process() -> dict[str, Any]:
    """Where this process runs (host, pid, start time): how a run or a trial names the
    process working on it."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start": _process_start(pid)}


def process_alive(record: Process | None, heartbeat_age: float | None) -> bool | None:
    """Whether the process in `record` still runs. A host judges only its own processes,
    by pid and start time; a process on another host is alive while its heartbeat is
    younger than STALE_AFTER_SECONDS. None when nothing was recorded."""
    if record is None:
        return None
    if record.host == socket.gethostname():
        if record.pid is None or record.pid <= 0:
            return False
        now = _process_start(record.pid)
        if now is None:
            return False
        if now < 0 or record.start is None:
            return True  # the pid runs; its start cannot be compared
        return abs(now - record.start) < 1.0
    return heartbeat_age is not None and heartbeat_age < STALE_AFTER_SECONDS


@contextmanager
def heartbeat(beat: Callable[[], None], seconds: float = HEARTBEAT_SECONDS) -> Iterator[None]:
    """Call `beat` now and every `seconds` from a thread until the block ends: how a live
    process shows it lives to readers elsewhere."""
    stop = threading.Event()

    def loop() -> None:
        while True:
            with contextlib.suppress(Exception):  # a missed beat is no reason to stop
                beat()
            if stop.wait(seconds):
                return

    thread = threading.Thread(target=loop, name="heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def significant(value: Any, digits: int = 6) -> Any:
    """Floats in `value` (a float, or lists and dicts of them) to `digits` significant
    digits: what a file people read keeps of a fraction."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: significant(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [significant(v, digits) for v in value]
    return value


class RunFolder:
    """One run's folder; `create` makes a new one, `open` checks an existing one."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @staticmethod
    def check_runs_dir(runs_dir: Path) -> None:
        """A runs dir that cannot hold run folders (it, or a folder above it, is a file),
        said in one line before any work."""
        for path in (runs_dir, *runs_dir.parents):
            if path.exists():
                if not path.is_dir():
                    raise RunFolderError(
                        f"output.runs_dir: {runs_dir}: {path} is a file, not "
                        "a folder; name a folder with --runs-dir DIR"
                    )
                return

    @classmethod
    def create(cls, runs_dir: Path, name: str) -> RunFolder:
        cls.check_runs_dir(runs_dir)
        runs_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        for n in range(1, 1000):
            path = runs_dir / (f"{name}-{stamp}" + (f"-{n}" if n > 1 else ""))
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return cls(path)
        raise RunFolderError(f"{runs_dir}: could not create a new run folder for {name!r}")

    @classmethod
    def open(cls, path: Path) -> RunFolder:
        if not path.is_dir():
            raise RunFolderError(f"{path}: not a run folder (no such folder)")
        if not (path / METRICS).is_file() or not (path / CONFIG).is_file():
            raise RunFolderError(f"{path}: not a run folder (no {METRICS} or {CONFIG})")
        return cls(path)

    @property
    def name(self) -> str:
        return self.path.name

    def file(self, name: str) -> Path:
        return self.path / name

    def write_text(self, name: str, text: str) -> None:
        atomic_write(self.path / name, text)

    def save_model(self, name: str, model: keras.Model) -> None:
        """Save atomically: a reader never loads half a model."""
        with atomic_path(self.path / name, suffix=".keras") as tmp:  # Keras wants the suffix
            model.save(tmp)

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        atomic_write(self.path / name, json.dumps(data, indent=2, default=_jsonable) + "\n")

    def read_json(self, name: str) -> dict[str, Any]:
        path = self.path / name
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise RunFolderError(f"{path}: unreadable ({type(exc).__name__})") from None
        if not isinstance(data, dict):
            raise RunFolderError(f"{path}: expected a JSON object")
        return data

    def metrics(self) -> Metrics:
        """`metrics.json`, checked (and upgraded from an older format): a hand-edited or
        damaged one is a one-line error naming the file and field."""
        data = self.read_json(METRICS)
        try:
            return Metrics.model_validate(data)
        except ValidationError as err:
            e = err.errors()[0]
            where = ".".join(str(p) for p in e["loc"])
            msg = e["msg"][0].lower() + e["msg"][1:]
            raise RunFolderError(f"{self.path / METRICS}: {where}: {msg}") from None

    def evaluation(self, name: str = EVALUATION) -> Evaluation | None:
        """An evaluation the run holds (its own test split's by default), None where it has
        none; a file that does not hold a score is a one-line error naming it."""
        if not self.file(name).exists():
            return None
        data = self.read_json(name)
        try:
            return Evaluation.model_validate(data)
        except ValidationError as err:
            e = err.errors()[0]
            where = ".".join(str(p) for p in e["loc"])
            raise RunFolderError(f"{self.path / name}: {where}: {e['msg'].lower()}") from None

    def test_result(self, metrics: Metrics | None = None) -> TestResult:
        """The state of the run's own test-split result against its current best epoch (an
        unreadable file is a one-line error; one that holds no score is `damaged`)."""
        metrics = metrics or self.metrics()
        best = metrics.best_epoch
        if not self.file(EVALUATION).exists():
            return TestResult(state="none", best_epoch=best)
        try:
            ev = Evaluation.model_validate(self.read_json(EVALUATION))
        except ValidationError:
            return TestResult(state="damaged", best_epoch=best)
        point = ev.checkpoint
        scored = point.epoch if point and "epoch" in point.model_fields_set else best
        if scored != best:
            return TestResult(state="stale", epoch=scored, best_epoch=best)
        return TestResult(state="scored", epoch=scored, best_epoch=best, evaluation=ev)

    def resumable(self) -> bool:
        """Whether the run kept a resume state (it completed an epoch and did not finish)."""
        return (self.path / STATE).exists() and (self.path / LAST_MODEL).exists()

    def status(self) -> str:
        """`metrics.json`'s status, except that a `running` run whose process is gone is
        `stopped`."""
        metrics = self.metrics()
        if metrics.status == "running":
            beat = self.path / HEARTBEAT
            age = time.time() - beat.stat().st_mtime if beat.exists() else None
            if process_alive(metrics.process, age) is False:
                return "stopped"
        return metrics.status

    @contextmanager
    def claim(self) -> Iterator[None]:
        """Hold the run folder for this process while it trains: a second process (a second
        `--resume`) is refused with one line. Records this process in `metrics.json` and
        touches `heartbeat` every HEARTBEAT_SECONDS until released. The lock is a
        `filelock` on `.lock` in the folder, released by the system if the process dies."""
        from filelock import FileLock, Timeout

        lock = FileLock(self.path / LOCK)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            who = self.metrics().process if self.file(METRICS).exists() else None
            by = f" (pid {who.pid} on {who.host})" if who else ""
            raise RunFolderError(f"{self.path}: another process is training this run{by}") from None
        try:
            self.update_metrics(process=this_process())
            with heartbeat(lambda: (self.path / HEARTBEAT).touch()):
                yield
        finally:
            (self.path / HEARTBEAT).unlink(missing_ok=True)
            (self.path / LOCK).unlink(missing_ok=True)  # removed while held: no one waits on it
            lock.release()

    def update_metrics(self, **values: Any) -> Metrics:
        """Write `values` into `metrics.json` (a new one if there is none), checked against
        `Metrics` first: a wrong value is a bug, never a damaged file. The file is
        written in the current format."""
        path = self.path / METRICS
        data = self.metrics().model_dump(mode="json", exclude_unset=True) if path.exists() else {}
        record = Metrics.model_validate({**data, **_plain(values), "format": METRICS_FORMAT})
        self.write_json(METRICS, record.model_dump(mode="json", exclude_unset=True))
        return record

    def best_model(self) -> keras.Model:
        """The run's best checkpoint (`model.keras`), to predict with: the one loader every
        command uses. Checked against the run's config and classes."""
        path = self.file(MODEL)
        if not path.is_file():
            raise RunFolderError(f"{self.path}: no {MODEL} (run status: {self.status()})")
        size = self.config().data.img_size
        model = self.load_model(MODEL)
        expected = (None, size, size, 3)
        classes = self.metrics().classes
        if tuple(model.input_shape) != expected or model.output_shape[-1] != len(classes):
            raise RunFolderError(
                f"{path}: takes {tuple(model.input_shape)} and gives {model.output_shape[-1]} "
                f"classes, but the run's config and metrics say {expected} and {len(classes)}"
            )
        return model

    def load_model(self, name: str, compile: bool = False) -> keras.Model:
        """One of the run's model files, ready for its architecture (`compile` restores the
        optimizer, to train on); a damaged file is a one-line error naming it."""
        import zipfile

        from animalcnn.models import load_model

        path = self.path / name
        arch = self.config().model.arch
        if path.is_file() and not zipfile.is_zipfile(path):  # Keras calls that "not found"
            size = path.stat().st_size
            raise RunFolderError(
                f"{path}: cannot be loaded (damaged: {size:,} bytes that are "
                "not a .keras zip archive)"
            )
        try:
            return load_model(path, arch, compile=compile)
        except Exception as exc:  # Keras raises many kinds for a damaged file
            text = str(exc).strip()
            gist = text.splitlines()[0][:200] if text else type(exc).__name__
            raise RunFolderError(f"{path}: cannot be loaded ({gist})") from None

    def config(self) -> ExperimentConfig:
        import yaml

        from animalcnn.config.loading import read_yaml
        from animalcnn.models.configs import validate_config

        path = self.path / CONFIG
        try:
            data = read_yaml(path.read_text(encoding="utf-8")) or {}
            if not isinstance(data, dict):
                raise RunFolderError(f"{path}: expected a mapping of sections")
            return validate_config(data, str(path))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise RunFolderError(f"{path}: unreadable ({type(exc).__name__})") from None
        except ConfigError as exc:
            raise RunFolderError(str(exc)) from None

    def history(self) -> pd.DataFrame:
        """`history.csv`; a damaged one is a one-line error naming it."""
        import pandas as pd

        path = self.path / HISTORY
        if not path.exists():
            return pd.DataFrame(columns=HISTORY_COLUMNS)
        try:
            history = pd.read_csv(path)
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            raise RunFolderError(f"{path}: unreadable ({type(exc).__name__})") from None
        missing = [c for c in HISTORY_COLUMNS if c not in history.columns]
        numeric = [c for c in HISTORY_COLUMNS if c != "phase" and c not in missing]
        if missing or not all(pd.api.types.is_numeric_dtype(history[c]) for c in numeric):
            what = f"missing columns {missing}" if missing else "non-numeric values"
            raise RunFolderError(f"{path}: damaged ({what})")
        return history

    def write_history(self, rows: list[dict[str, Any]]) -> None:
        import pandas as pd

        self.write_text(HISTORY, pd.DataFrame(rows, columns=HISTORY_COLUMNS).to_csv(index=False))


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """Values as JSON gives them back (paths as text, numpy scalars as numbers)."""
    return json.loads(json.dumps(values, default=_jsonable))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
