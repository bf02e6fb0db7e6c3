"""Model builders, registered by name (see `registry`), and loading saved models."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

# The built-in architectures register themselves when imported (they import Keras only
# when a builder runs), so the registry is full wherever `animalcnn.models` is used.
from animalcnn.models import custom, pretrained, registry  # noqa: F401
from animalcnn.models.spec import ModelSpec

if TYPE_CHECKING:
    import keras

    from animalcnn.config import ExperimentConfig


def build_model(cfg: ExperimentConfig, num_classes: int) -> keras.Model:
    """The config's architecture, built for `num_classes` at `data.img_size`."""
    arch = registry.get(cfg.model.arch)
    return arch.build(ModelSpec.from_config(cfg, num_classes), cfg.model.options)


def load_model(path: Path, arch: str, compile: bool = False) -> keras.Model:
    """A saved model of architecture `arch`, ready to predict or (with `compile`, which
    restores the optimizer) to train on: the architecture's after-load step applied."""
    import keras

    model = keras.saving.load_model(path, compile=compile)
    after_load = registry.get(arch).after_load
    if after_load is not None:
        after_load(model)
    return model
