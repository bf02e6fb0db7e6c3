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

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

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
HISTORY_COLUMNS = [
    "epoch", "phase", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"
]  # fmt: skip


class EpochRow(BaseModel):
    model_config = ConfigDict(extra="allow")
    epoch: int
    val_loss: float | None = None
    val_accuracy: float | None = None
    accuracy: float | None = None


class _Metrics(BaseModel):
    """What readers rely on in `metrics.json` (more keys are allowed)."""

    model_config = ConfigDict(extra="allow")
    status: Literal["running", "completed", "interrupted", "failed", "pruned"]
    name: str | None = None
    arch: str | None = None
    classes: list[str] | None = None
    params: dict[str, int] | None = None
    epochs_run: int | None = None
    best_epoch: int | None = None
    best: EpochRow | None = None
    wall_time_s: float | None = None
    images_per_second: float | None = None
    process: dict[str, Any] | None = None


def _process_start(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot), to tell it from a later process
    given the same pid; None where there is no /proc or no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def this_process() -> dict[str, Any]:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start": _process_start(pid)}


def process_alive(record: dict[str, Any] | None, heartbeat_age: float | None) -> bool | None:
    """Whether the process in `record` still runs: on this host by its pid and start time,
    elsewhere by a fresh heartbeat; None when the run recorded no process."""
    if not record:
        return None
    if record.get("host") == socket.gethostname():
        pid = record.get("pid")
        if not isinstance(pid, int) or pid <= 0:
            return False
        start = _process_start(pid)
        if start is not None or Path("/proc/self/stat").exists():
            return start is not None and start == record.get("start")
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return heartbeat_age is not None and heartbeat_age < 3 * HEARTBEAT_SECONDS


class RunFolder:
    """One run's folder; `create` makes a new one, `open` checks an existing one."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, runs_dir: Path, name: str) -> RunFolder:
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

    def metrics(self) -> dict[str, Any]:
        """`metrics.json`, checked: a hand-edited or damaged one is a one-line error."""
        data = self.read_json(METRICS)
        try:
            _Metrics.model_validate(data)
        except ValidationError as err:
            e = err.errors()[0]
            where = ".".join(str(p) for p in e["loc"])
            msg = e["msg"][0].lower() + e["msg"][1:]
            raise RunFolderError(f"{self.path / METRICS}: {where}: {msg}") from None
        return data

    def resumable(self) -> bool:
        """Whether the run kept a resume state (it completed an epoch and did not finish)."""
        return (self.path / STATE).exists() and (self.path / LAST_MODEL).exists()

    def status(self) -> str:
        """`metrics.json`'s status, except that a `running` run whose process is gone is
        `stopped`."""
        metrics = self.metrics()
        status = metrics["status"]
        if status == "running":
            beat = self.path / HEARTBEAT
            age = time.time() - beat.stat().st_mtime if beat.exists() else None
            if process_alive(metrics.get("process"), age) is False:
                return "stopped"
        return status

    @contextmanager
    def claim(self) -> Iterator[None]:
        """Hold the run folder for this process while it trains: a second process (a second
        `--resume`) is refused with one line. Records this process in `metrics.json` and
        touches `heartbeat` every HEARTBEAT_SECONDS until released. (POSIX: the lock is
        the folder's own `flock`; readers never need it.)"""
        import fcntl

        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            who = (self.metrics().get("process") or {}) if self.file(METRICS).exists() else {}
            by = f" (pid {who.get('pid')} on {who.get('host')})" if who else ""
            raise RunFolderError(f"{self.path}: another process is training this run{by}") from None
        self.update_metrics(process=this_process())
        stop = threading.Event()
        beat = self.path / HEARTBEAT

        def heartbeat() -> None:
            while True:
                beat.touch()
                if stop.wait(HEARTBEAT_SECONDS):
                    return

        thread = threading.Thread(target=heartbeat, name="heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            beat.unlink(missing_ok=True)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def update_metrics(self, **values: Any) -> dict[str, Any]:
        path = self.path / METRICS
        data = self.metrics() if path.exists() else {}
        data.update(values)
        self.write_json(METRICS, data)
        return data

    def load_model(self, name: str, compile: bool = False) -> keras.Model:
        """One of the run's model files, ready for its architecture (`compile` restores the
        optimizer, to train on); a damaged file is a one-line error naming it."""
        from animalcnn.models import load_model

        path = self.path / name
        arch = self.config().model.arch
        try:
            return load_model(path, arch, compile=compile)
        except Exception as exc:  # Keras raises many kinds for a damaged file
            text = str(exc).strip()
            gist = text.splitlines()[0][:200] if text else type(exc).__name__
            raise RunFolderError(f"{path}: cannot be loaded ({gist})") from None

    def config(self) -> ExperimentConfig:
        import yaml

        from animalcnn.config import validate_config
        from animalcnn.config.loading import read_yaml

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


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
