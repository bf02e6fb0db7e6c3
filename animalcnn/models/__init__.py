"""Model builders, registered by name (see `registry`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from animalcnn.models import registry
from animalcnn.models.common import ModelSpec

if TYPE_CHECKING:
    import keras

    from animalcnn.config import ExperimentConfig


def build_model(cfg: ExperimentConfig, num_classes: int) -> keras.Model:
    """The config's architecture, built for `num_classes` at `data.img_size`."""
    arch = registry.get(cfg.model.arch)
    return arch.build(ModelSpec.from_config(cfg, num_classes), cfg.arch_params())
