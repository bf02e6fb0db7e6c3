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

import csv
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from animalcnn.atomic import atomic_path, atomic_write
from animalcnn.errors import ConfigError, RunFolderError, gist
from animalcnn.run_folder.liveness import heartbeat, process_alive, this_process
from animalcnn.run_folder.records import (
    CONFIG,
    EVALUATION,
    EVALUATION_FORMAT,
    HEARTBEAT,
    HISTORY,
    HISTORY_COLUMNS,
    LAST_MODEL,
    METRICS,
    METRICS_FORMAT,
    MODEL,
    STATE,
    TEST_FILES,
    EpochRow,
    Evaluation,
    HeldOutTest,
    History,
    Metrics,
    ResumeState,
    TestResult,
)

if TYPE_CHECKING:  # imported on use: reading metrics stays fast (compare)
    import keras

    from animalcnn.config import ExperimentConfig

LOCK = ".lock"  # held by the process training the run (filelock); readers never need it


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

    def write_evaluation(self, name: str, result: dict[str, Any]) -> Evaluation:
        """Write an evaluation (`name`, relative to the folder), checked against the
        `Evaluation` record first, in the current format; returns the record."""
        record = Evaluation.model_validate({**_plain(result), "format": EVALUATION_FORMAT})
        self.write_json(name, record.model_dump(mode="json"))
        return record

    def held_out_test(self) -> HeldOutTest | None:
        """The test split held out of the training images, where the run kept one; a
        damaged file is a one-line error naming it."""
        if not self.file(TEST_FILES).exists():
            return None
        try:
            return HeldOutTest.model_validate(self.read_json(TEST_FILES))
        except ValidationError:
            raise RunFolderError(f"{self.file(TEST_FILES)}: damaged") from None

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

    def resume_state(self) -> ResumeState | None:
        """`state.json` where the run kept a resume state (see `resumable`), else None; a
        damaged or hand-edited one is a one-line error naming the file and field."""
        if not self.resumable():
            return None
        path = self.file(STATE)
        try:
            return ResumeState.model_validate(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:  # JSON and validation errors are ValueErrors
            first = exc.errors()[0] if isinstance(exc, ValidationError) else None
            where = ".".join(str(p) for p in first["loc"]) if first else ""
            what = f"{where}: {first['msg']}".lstrip(": ") if first else type(exc).__name__
            raise RunFolderError(f"{path}: damaged ({what})") from None

    def write_resume_state(self, state: ResumeState) -> None:
        self.write_json(STATE, state.model_dump(mode="json"))

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
            raise RunFolderError(f"{path}: cannot be loaded ({gist(exc)})") from None

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

    def history(self) -> History:
        """`history.csv` as its rows (none before the first epoch); a damaged file is a
        one-line error naming it and the row at fault."""
        path = self.path / HISTORY
        if not path.exists():
            return History()
        try:
            with path.open(newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                missing = [c for c in HISTORY_COLUMNS if c not in (reader.fieldnames or [])]
                if missing:
                    raise RunFolderError(f"{path}: damaged (missing columns {missing})")
                rows = [{k: v or None for k, v in row.items()} for row in reader]
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise RunFolderError(f"{path}: unreadable ({type(exc).__name__})") from None
        try:
            return History(rows=rows)
        except ValidationError as err:
            e = err.errors()[0]
            row, column, msg = e["loc"][1], e["loc"][-1], e["msg"].lower()
            raise RunFolderError(f"{path}: damaged (row {row + 1}: {column}: {msg})") from None

    def write_history(self, rows: list[EpochRow]) -> None:
        self.write_text(HISTORY, History(rows=rows).frame().to_csv(index=False))


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """Values as JSON gives them back (paths as text, numpy scalars as numbers)."""
    return json.loads(json.dumps(values, default=_jsonable))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
