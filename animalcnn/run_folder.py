"""The run folder: everything one experiment produced, written atomically.

A run folder is `<runs_dir>/<name>-<YYYYmmdd-HHMMSS>[-N]`, created exclusively (never
reused) and holding `config.yaml`, `metrics.json`, `history.csv`, `model.keras`,
`summary.txt`, and after `evaluate`, `evaluation.json`. `metrics.json`'s `status`
says whether the run is `running`, `completed`, `interrupted` or `failed`.
Reading a run folder never imports TensorFlow.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
EVALUATION = "evaluation.json"
HISTORY_PNG = "history.png"
CONFUSION_PNG = "confusion.png"
HISTORY_COLUMNS = [
    "epoch", "phase", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"
]  # fmt: skip


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
        return self.read_json(METRICS)

    def update_metrics(self, **values: Any) -> dict[str, Any]:
        path = self.path / METRICS
        data = self.metrics() if path.exists() else {}
        data.update(values)
        self.write_json(METRICS, data)
        return data

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
        import pandas as pd

        path = self.path / HISTORY
        if not path.exists():
            return pd.DataFrame(columns=HISTORY_COLUMNS)
        return pd.read_csv(path)

    def write_history(self, rows: list[dict[str, Any]]) -> None:
        import pandas as pd

        self.write_text(HISTORY, pd.DataFrame(rows, columns=HISTORY_COLUMNS).to_csv(index=False))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
