"""Process-wide TensorFlow settings for a run: devices, distribution, seeds, precision."""

from __future__ import annotations

import contextlib
import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from animalcnn.config import ExperimentConfig
from animalcnn.errors import ConfigError

if TYPE_CHECKING:
    import tensorflow as tf


@dataclass(frozen=True)
class Runtime:
    device: str
    precision: str  # the Keras dtype policy: float32, mixed_float16 or mixed_bfloat16
    jit_compile: bool
    strategy: tf.distribute.Strategy
    replicas: int
    chief: bool  # writes the run folder (every worker trains, one reports)


def _resolve(switch: str, has_gpu: bool) -> bool:
    return has_gpu if switch == "auto" else switch == "on"


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags as Linux reports them (none elsewhere)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return frozenset(line.partition(":")[2].split())


# CPUs whose matrix units run bfloat16: there mixed_bfloat16 pays (docs/benchmarks.md).
BF16_MATRIX_FLAGS = frozenset({"amx_bf16"})


def choose_precision(setting: str, has_gpu: bool, flags: frozenset[str]) -> str:
    """The Keras dtype policy for `training.mixed_precision` on this device."""
    if setting == "off":
        return "float32"
    if setting == "float16" or (setting in ("auto", "on") and has_gpu):
        return "mixed_float16"
    if setting in ("bfloat16", "on") or flags & BF16_MATRIX_FLAGS:
        return "mixed_bfloat16"
    return "float32"


def is_chief(tf_config: str | None) -> bool:
    """Whether this process is the chief of a multi-worker cluster (or alone)."""
    if not tf_config:
        return True
    spec = json.loads(tf_config)
    task, cluster = spec.get("task", {}), spec.get("cluster", {})
    if "chief" in cluster:
        return task.get("type") == "chief"
    return task.get("type", "worker") == "worker" and task.get("index", 0) == 0


def keeps_run_folder(cfg: ExperimentConfig) -> bool:
    """Whether this process writes the run folder: all but a multi-worker run's non-chiefs."""
    return cfg.distribute.strategy != "multi_worker" or is_chief(os.environ.get("TF_CONFIG"))


@functools.cache
def _multi_worker_strategy() -> tf.distribute.Strategy:
    """One per process: a second one's collectives collide with the first's
    (`train a.yaml b.yaml` on every worker)."""
    import tensorflow as tf

    return tf.distribute.MultiWorkerMirroredStrategy()


def _strategy(cfg: ExperimentConfig, gpus: list) -> tf.distribute.Strategy:
    import tensorflow as tf

    d = cfg.distribute
    if d.strategy == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise ConfigError(
                "distribute.strategy: multi_worker needs the TF_CONFIG environment variable "
                "(the cluster's addresses and this worker's task)"
            )
        return _multi_worker_strategy()
    mirrored = d.strategy == "mirrored" or (d.strategy == "auto" and len(gpus) > 1)
    if mirrored:
        devices = d.devices
        if devices is None and d.virtual_cpus and not gpus:
            devices = [dev.name for dev in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def configure(cfg: ExperimentConfig) -> Runtime:
    """Apply the config's device, seed and precision settings; call before building the model."""
    import keras
    import tensorflow as tf

    from animalcnn.keras_internals import set_op_determinism

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        with contextlib.suppress(RuntimeError):  # already initialised in this process
            tf.config.experimental.set_memory_growth(gpu, True)
    if cfg.distribute.virtual_cpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        logical = [tf.config.LogicalDeviceConfiguration()] * cfg.distribute.virtual_cpus
        try:
            tf.config.set_logical_device_configuration(cpu, logical)
        except RuntimeError:
            raise ConfigError(
                "distribute.virtual_cpus: TensorFlow already started in this process; "
                "run this config in a process of its own"
            ) from None
    keras.utils.set_random_seed(cfg.seed)
    # Process-wide: also undoes an earlier config's setting (`train a.yaml b.yaml`).
    set_op_determinism(cfg.training.deterministic)
    precision = choose_precision(cfg.training.mixed_precision, bool(gpus), cpu_flags())
    keras.mixed_precision.set_global_policy(precision)
    strategy = _strategy(cfg, gpus)
    if gpus:
        details = [tf.config.experimental.get_device_details(g) for g in gpus]
        names = [d.get("device_name", g.name) for d, g in zip(details, gpus, strict=True)]
        device = f"GPU: {', '.join(names)}"
    else:
        device = f"CPU ({os.cpu_count()} cores)"
    replicas = strategy.num_replicas_in_sync
    if replicas > 1:
        device += f"; {type(strategy).__name__} over {replicas} replicas"
    jit = _resolve(cfg.training.jit_compile, bool(gpus)) and not cfg.training.deterministic
    return Runtime(device, precision, jit, strategy, replicas, keeps_run_folder(cfg))
