"""The sweep file: which experiments to search, over which config values, toward what.

Validated like a config (strict pydantic, one-line errors naming the file and field),
and against the config schema before anything trains: every parameter is a config
field, every range's ends and every listed value make a valid config (options of an
architecture's own `model.params` are checked per trial, since they depend on it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from animalcnn.config import parse_override
from animalcnn.config.loading import format_errors, read_yaml
from animalcnn.config.schema import RUN_NAME_RULE, RunName
from animalcnn.data.discovery import check_data_dir
from animalcnn.errors import ConfigError, DataError
from animalcnn.models.configs import load_config

BASE = "base"  # the parameter that picks among several base configs
# The most points a grid may have: each is a trial, and the grid is listed in memory.
MAX_GRID_POINTS = 10_000
LaxPath = Annotated[Path, Field(strict=False)]  # a path as YAML gives it: text


class Range(BaseModel):
    """A continuous (or, with integer ends, whole-number) interval to sample."""

    model_config = ConfigDict(extra="forbid", strict=True)
    low: float
    high: float
    log: bool = False

    @field_validator("high")
    @classmethod
    def _ordered(cls, v: float, info: Any) -> float:
        if "low" in info.data and v <= info.data["low"]:
            raise ValueError("high must be greater than low")
        return v

    def is_int(self) -> bool:
        return float(self.low).is_integer() and float(self.high).is_integer() and not self.log


class Choice(BaseModel):
    """Values to choose among (a grid runs each)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    values: list[Any] = Field(min_length=1)


class SweepSpec(BaseModel):
    """A sweep file (its options: docs/guide/sweeps.md)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    name: RunName = Field(description=f"The sweep's folder and study name: {RUN_NAME_RULE}.")
    base: LaxPath | list[LaxPath] = Field(
        description="The experiment(s) each trial starts from; several: a choice."
    )
    set: dict[str, Any] = Field(default_factory=dict, description="Overrides for every trial.")
    metric: Literal["loss", "accuracy", "val_loss", "val_accuracy"] = Field(
        "val_accuracy", description="A history column: *loss minimised, the others maximised."
    )
    method: Literal["grid", "random", "tpe"] = "tpe"
    trials: int = Field(20, ge=1, le=100_000, description="random/tpe: trials in all.")
    pruner: Literal["none", "median", "hyperband"] = "median"
    pruner_warmup_epochs: int = Field(
        1, ge=0, le=10_000, description="Epochs of each trial that are never pruned."
    )
    pruner_startup_trials: int = Field(
        3, ge=0, le=10_000, description="Trials that complete before any is pruned."
    )
    seed: int = Field(0, ge=0, le=2**32 - 1)
    heartbeat_seconds: int = Field(
        10,
        ge=1,
        le=3600,
        description="On a database: how often a running trial's "
        "heartbeat is written (Optuna's heartbeat_interval).",
    )
    grace_seconds: int = Field(
        60,
        ge=2,
        le=86_400,
        description="On a database: a running trial whose heartbeat is "
        "older is failed and its point queued again (Optuna's grace_period).",
    )
    parameters: dict[str, Range | Choice] = Field(default_factory=dict)

    @field_validator("grace_seconds")
    @classmethod
    def _longer_than_a_beat(cls, v: int, info: Any) -> int:
        if v <= info.data.get("heartbeat_seconds", 0):
            raise ValueError("must be longer than heartbeat_seconds")
        return v

    @property
    def bases(self) -> list[Path]:
        return self.base if isinstance(self.base, list) else [self.base]

    @property
    def minimise(self) -> bool:
        return self.metric.endswith("loss")

    def grid_size(self) -> int:
        """How many points the grid has (every combination of the listed values)."""
        total = 1
        for p in self.search_space().values():
            total *= len(p.values) if isinstance(p, Choice) else 1
        return total

    def base_of(self, params: dict[str, Any]) -> Path:
        """The base config a trial's parameters start from (the only one, unless searched)."""
        return Path(params[BASE]) if BASE in params else self.bases[0]

    def reproduce(self, params: dict[str, Any]) -> str:
        """The command that trains a trial's parameters again from its base config."""
        base = self.base_of(params)
        sets = [
            *(override(k, v) for k, v in self.set.items()),
            *(f"{k}={v}" for k, v in params.items() if k != BASE),
        ]
        return f"animalcnn train {base} " + " ".join(f"--set {s!r}" for s in sets)

    def search_space(self) -> dict[str, Range | Choice]:
        """The parameters, with the choice of base config first when there are several."""
        space: dict[str, Range | Choice] = {}
        if len(self.bases) > 1:
            space[BASE] = Choice(values=[str(b) for b in self.bases])
        return {**space, **self.parameters}


def override(key: str, value: Any) -> str:
    """`key=value` as `--set` reads it (JSON is YAML)."""
    return f"{key}={json.dumps(value)}"


def load_sweep(path: Path, overrides: list[str] | None = None) -> SweepSpec:
    """Read and validate a sweep file, and check its parameters against the configs."""
    if not path.is_file():
        raise ConfigError(f"{path}: sweep file not found")
    try:
        data = read_yaml(path.read_text(encoding="utf-8")) or {}
    except Exception as exc:  # YAML errors: one line
        raise ConfigError(f"{path}: invalid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{path}: {format_errors(err, SweepSpec)}") from None
    spec.base = [_find(b, path) for b in spec.bases]
    for text in overrides or []:
        keys, value = parse_override(text)
        spec.set[".".join(keys)] = value
    if spec.method == "grid" and spec.grid_size() > MAX_GRID_POINTS:
        raise ConfigError(
            f"{path}: parameters: the grid has {spec.grid_size():,} points, more than the "
            f"{MAX_GRID_POINTS:,} a sweep takes; list fewer values, or use method: random or tpe"
        )
    fixed = [override(k, v) for k, v in spec.set.items()]
    for base in spec.bases:
        _check(path, spec, base, fixed)
    return spec


def _find(base: Path, sweep_file: Path) -> Path:
    """A base config as given from here, or else from the sweep file's folder or one above
    it (so `configs/mid.yaml` works from the project and from `configs/sweeps/`)."""
    if base.is_absolute() or base.exists():
        return base
    for folder in list(sweep_file.resolve().parents)[:3]:
        if (folder / base).exists():
            return folder / base
    return base


def _check(path: Path, spec: SweepSpec, base: Path, fixed: list[str]) -> None:
    """Each parameter's values make a valid config from `base` (model.params: per trial)."""
    try:
        load_config(base, fixed)
    except ConfigError as exc:
        raise ConfigError(f"{path}: base {base}: {exc}") from None
    if spec.method == "grid":
        for key, p in spec.parameters.items():
            if isinstance(p, Range):
                raise ConfigError(
                    f"{path}: parameters.{key}: a grid needs values, not a range (low/high)"
                )
    for key, p in spec.parameters.items():
        values = p.values if isinstance(p, Choice) else [p.low, p.high]
        if isinstance(p, Range) and p.is_int():
            values = [int(v) for v in values]
        for value in values:
            try:
                load_config(base, [*fixed, override(key, value)])
            except ConfigError as exc:
                if key.startswith("model.params.") and "--set" not in str(exc):
                    continue  # depends on the architecture: checked per trial
                reason = str(exc).split(": ", 1)[-1]
                raise ConfigError(f"{path}: parameters.{key}: {value!r}: {reason}") from None


def check_data_dirs(spec: SweepSpec, path: Path) -> None:
    """Every trial's data folder exists, said once before the first trial (each trial
    would otherwise fail on it in turn); `path` is the sweep file."""
    fixed = [override(k, v) for k, v in spec.set.items()]
    searched = spec.parameters.get("data.dir")
    values = searched.values if isinstance(searched, Choice) else [None]
    for base in spec.bases:
        for value in values:
            sets = fixed if value is None else [*fixed, override("data.dir", value)]
            try:
                check_data_dir(load_config(base, sets).data, path)
            except DataError as exc:
                if value is None:
                    raise
                reason = str(exc).split(": ", 1)[-1]
                raise DataError(f"{path}: parameters.data.dir: {value!r}: {reason}") from None
