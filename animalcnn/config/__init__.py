"""The experiment config: its schema (`schema`) and how a file becomes data (`loading`).
A leaf: it imports nothing of animalcnn but its errors. A config checked against its
architecture is `animalcnn.models.configs.load_config`'s."""

from animalcnn.config.loading import parse_override, read_config, validate_schema
from animalcnn.config.schema import DataConfig, ExperimentConfig

__all__ = ["DataConfig", "ExperimentConfig", "parse_override", "read_config", "validate_schema"]
