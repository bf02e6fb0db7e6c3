"""A config checked against the architecture it names: the schema (`animalcnn.config`),
then the architecture's own `model.params`, its smallest input, whether a `transfer`
section belongs, and the registered augmentation types. This sits in `models`, above
the config package, so that the config schema imports nothing of the models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from animalcnn.config.loading import format_errors, read_config, validate_schema
from animalcnn.config.schema import ExperimentConfig, ModelConfig, TransferConfig
from animalcnn.errors import ConfigError
from animalcnn.models import augmentation, registry


def _tagged() -> dict[str, Any]:
    return {name: augmentation.get(name) for name in augmentation.names()}


def validate_config(data: dict[str, Any], source: str) -> ExperimentConfig:
    """Validate a config mapping; `source` prefixes every error message."""
    cfg = validate_schema(data, source)
    try:
        arch = registry.get(cfg.model.arch)
    except KeyError as err:
        raise ConfigError(f"{source}: model.arch: {err.args[0]}") from None
    try:
        params = arch.params.model_validate(cfg.model.params)
    except ValidationError as err:
        raise ConfigError(f"{source}: {format_errors(err, arch.params, 'model.params.')}") from None
    cfg.model.params = params.model_dump(mode="json")
    try:
        augs = augmentation.list_adapter().validate_python(cfg.model.augmentation)
    except ValidationError as err:
        what = format_errors(err, ModelConfig, "model.augmentation.", _tagged())
        raise ConfigError(f"{source}: {what}") from None
    cfg.model.augmentation = [a.model_dump(mode="json") for a in augs]
    cfg.model.attach(params, augs)
    smallest = arch.smallest_input(params)
    if cfg.data.img_size < smallest:
        raise ConfigError(
            f"{source}: data.img_size: {cfg.data.img_size} is too small for "
            f"{arch.name} with these params, which needs at least {smallest}"
        )
    if cfg.transfer is not None and not arch.pretrained:
        raise ConfigError(
            f"{source}: transfer: only valid for a pretrained architecture, not {arch.name!r}"
        )
    if arch.pretrained and cfg.transfer is None:
        cfg.transfer = TransferConfig()
    return cfg


def load_config(
    path: Path, overrides: list[str] | None = None, runs_dir: Path | None = None
) -> ExperimentConfig:
    """Read, override and validate a config file; errors are one-line `ConfigError`s.

    `runs_dir` (the command line's `--runs-dir`) is a path as given, not YAML."""
    return validate_config(read_config(path, overrides, runs_dir), str(path))
