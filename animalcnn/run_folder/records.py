"""What a run folder holds: each file's name, and a typed record for each file we write
and read again (`metrics.json`, `evaluation.json`, `test_files.json`, `state.json`), with
its format version and the upgrade from every older format that has shipped. Reading
them never imports TensorFlow."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    import pandas as pd

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
EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")  # what Keras logs an epoch
HISTORY_COLUMNS = ["epoch", "phase", *EPOCH_METRICS, "lr", "seconds"]


class EpochRow(BaseModel):
    """One epoch's figures: a row of `history.csv` and of `state.json`, and the best one
    in `metrics.json`. A figure Keras did not log (or logged as NaN) is None."""

    model_config = ConfigDict(extra="allow")
    epoch: int
    phase: str | None = None
    loss: float | None = None
    accuracy: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    lr: float | None = None  # at the epoch's start
    seconds: float | None = None  # training and validation

    @field_validator(*EPOCH_METRICS, "lr", "seconds", mode="before")
    @classmethod
    def _nan_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, float) and math.isnan(value) else value

    def value(self, metric: str) -> float | None:
        """A history column's value (loss, accuracy, val_loss, val_accuracy)."""
        found = getattr(self, metric, None)
        return found if isinstance(found, int | float) else None


class History(BaseModel):
    """`history.csv`: one row an epoch, in order, across the run's phases."""

    rows: list[EpochRow] = Field(default_factory=list)

    def frame(self) -> pd.DataFrame:
        """The rows as a table with the file's columns (what the figures and notebooks
        take); missing figures are NaN."""
        import pandas as pd

        return pd.DataFrame([row.model_dump() for row in self.rows], columns=HISTORY_COLUMNS)


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


class ClassScores(BaseModel):
    """One class's scores on a labelled split."""

    precision: float
    recall: float
    f1: float
    support: int


class Confusion(BaseModel):
    """Images of one true class predicted as another (a most-confused pair)."""

    true: str
    predicted: str
    count: int


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
    per_class: dict[str, ClassScores] = Field(default_factory=dict)
    confusion_matrix: list[list[int]] = Field(default_factory=list)  # rows true, columns predicted
    most_confused: list[Confusion] = Field(default_factory=list)
    data: str | None = None
    own_test_split: bool | None = None
    tta: str = "none"
    checkpoint: Checkpoint | None = None
    run_status: str | None = None
    evaluated: str | None = None  # when, ISO 8601
    train_accuracy: float | None = None
    skipped_files: list[str] = Field(default_factory=list)
    top_errors: list[dict[str, Any]] = Field(default_factory=list)  # the gallery's images


class TestResult(BaseModel):
    """The state of a run's result on its own test split: `scored` (on the current best
    epoch), `stale` (scored on an earlier best: the run was resumed since), `damaged`
    (its file does not hold a score) or `none` (not evaluated)."""

    __test__ = False  # (not a test case, for pytest)
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


class HeldOutTest(BaseModel):
    """`test_files.json`: the test split held out of the training images, exactly: each
    file (relative to `data.dir`) and its label."""

    files: list[str]
    labels: list[int]

    @model_validator(mode="after")
    def _paired(self) -> HeldOutTest:
        if len(self.files) != len(self.labels):
            raise ValueError("files and labels differ in number")
        return self


STATE_FORMAT = 1  # state.json's format; files without one are 0 (the same fields)


class ResumeState(BaseModel):
    """`state.json`, beside `last.keras`: what an interrupted run needs to continue as if
    never stopped: the phase, the history so far (each row with its epoch and phase),
    the best checkpoint's row, the EarlyStopping and ReduceLROnPlateau counters, and the
    random-number states of dropout and augmentation layers (Keras does not save those
    with the model)."""

    model_config = ConfigDict(extra="forbid")
    format: int = STATE_FORMAT
    phase: int  # index of the phase to continue (or start)
    phase_start: int  # epochs completed when that phase began
    rows: list[EpochRow]
    best: EpochRow | None
    train_seconds: float
    early_stopping: dict[str, Any] = Field(default_factory=dict)
    plateau: dict[str, Any] = Field(default_factory=dict)
    rng: list[list[int]] = Field(default_factory=list)

    @property
    def epochs_without_improvement(self) -> int:
        """EarlyStopping's count, when the state was saved, of epochs since val_loss last
        improved."""
        return int(self.early_stopping.get("wait", 0))

    @model_validator(mode="after")
    def _rows_have_phases(self) -> ResumeState:
        if any(row.phase is None for row in [*self.rows, *([self.best] if self.best else [])]):
            raise ValueError("each row needs a phase name")
        return self

    @property
    def mid_phase(self) -> bool:
        """True when the phase was under way, so its optimizer and counters carry over."""
        return len(self.rows) > self.phase_start
