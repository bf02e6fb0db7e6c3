"""JAX: its devices, `keras.distribution.DataParallel` over every local accelerator (and
over several hosts after `jax.distributed.initialize`), and batches from `data.batches`.
XLA compiles every step here, so `jit_compile` is always on."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import jax
import keras
import numpy as np

from animalcnn.backends.runtime import Runtime, choose_precision, cpu_flags, keeps_run_folder
from animalcnn.config import ExperimentConfig
from animalcnn.data import batches
from animalcnn.errors import ConfigError

NAME = "jax"
# The multi-host environment (`jax.distributed.initialize`): the coordinator's
# host:port, how many processes, and this one's index (0 keeps the run folder).
HOSTS_ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def _initialise_hosts() -> None:
    missing = [name for name in HOSTS_ENV if not os.environ.get(name)]
    if missing:
        raise ConfigError(
            f"distribute.strategy: multi_worker on JAX needs {', '.join(missing)} (the "
            "coordinator's host:port, the number of processes, this process's index)"
        )
    if not jax.distributed.is_initialized():
        jax.distributed.initialize(
            coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
            num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
            process_id=int(os.environ["JAX_PROCESS_ID"]),
        )


def configure(cfg: ExperimentConfig) -> Runtime:
    d = cfg.distribute
    if d.virtual_cpus or d.devices:
        field = "virtual_cpus" if d.virtual_cpus else "devices"
        raise ConfigError(f"distribute.{field}: TensorFlow only (training.backend is jax)")
    if d.strategy == "multi_worker":
        _initialise_hosts()
    devices = jax.devices()
    gpu = devices[0].platform != "cpu"
    keras.utils.set_random_seed(cfg.seed)
    precision = choose_precision(cfg.training.mixed_precision, gpu, cpu_flags())
    keras.mixed_precision.set_global_policy(precision)
    several = d.strategy == "auto" and len(devices) > 1
    parallel = d.strategy in ("mirrored", "multi_worker") or several
    keras.distribution.set_distribution(keras.distribution.DataParallel() if parallel else None)
    kinds = sorted({getattr(dev, "device_kind", dev.platform) for dev in devices})
    device = f"GPU: {', '.join(kinds)}" if gpu else f"CPU ({os.cpu_count()} cores)"
    if parallel:
        device += f"; DataParallel over {len(devices)} devices"
    return Runtime(NAME, device, precision, True, len(devices) if parallel else 1,
                   keeps_run_folder(cfg))  # fmt: skip


# Batches come from the decoded cache through a PyDataset, as on every backend but TensorFlow.
training_batches = batches.training_batches
eval_batches = batches.eval_batches


def gradient(fn: Callable[[Any], Any], x: np.ndarray) -> np.ndarray:
    """d sum(fn(x)) / dx."""
    return np.asarray(jax.grad(lambda v: jax.numpy.sum(fn(v)))(jax.numpy.asarray(x)))


def adapt(model: keras.Model, rt: Runtime) -> None:
    """Nothing to adapt on JAX."""
