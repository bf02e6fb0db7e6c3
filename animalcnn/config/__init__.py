"""The experiment config: its schema (`schema`) and how a file becomes one (`loading`)."""

from animalcnn.config.loading import load_config, parse_override, validate_config
from animalcnn.config.schema import DataConfig, ExperimentConfig

__all__ = ["DataConfig", "ExperimentConfig", "load_config", "parse_override", "validate_config"]
