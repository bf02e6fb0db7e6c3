"""Process-wide TensorFlow settings for a run: device, seeds, determinism, precision."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from animalcnn.config import ExperimentConfig, Switch


@dataclass(frozen=True)
class Runtime:
    device: str
    mixed_precision: bool
    jit_compile: bool


def _resolve(switch: Switch, has_gpu: bool) -> bool:
    return has_gpu if switch == "auto" else switch == "on"


def configure(cfg: ExperimentConfig) -> Runtime:
    """Apply the config's seed and precision settings; call before building the model."""
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        with contextlib.suppress(RuntimeError):  # already initialised in this process
            tf.config.experimental.set_memory_growth(gpu, True)
    keras.utils.set_random_seed(cfg.seed)
    if cfg.training.deterministic:
        tf.config.experimental.enable_op_determinism()
    mixed = _resolve(cfg.training.mixed_precision, bool(gpus))
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    if gpus:
        details = [tf.config.experimental.get_device_details(g) for g in gpus]
        names = [d.get("device_name", g.name) for d, g in zip(details, gpus, strict=True)]
        device = f"GPU: {', '.join(names)}"
    else:
        device = f"CPU ({os.cpu_count()} cores)"
    return Runtime(device, mixed, _resolve(cfg.training.jit_compile, bool(gpus)))
