"""JAX: its devices, `keras.distribution.DataParallel` over every local accelerator (and
over several hosts after `jax.distributed.initialize`), XLA's GPU determinism, and batches
from `data.batches`. XLA compiles every step here, so `jit_compile` is always on."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import jax
import keras
import numpy as np

from animalcnn.backends.runtime import Runtime, choose_precision, cpu_flags
from animalcnn.config import ExperimentConfig
from animalcnn.console import print_warning
from animalcnn.data import batches
from animalcnn.data.sharding import WHOLE, Share
from animalcnn.errors import ConfigError
from animalcnn.keras_internals import require

NAME = "jax"
# The multi-host environment (`jax.distributed.initialize`): the coordinator's
# host:port, how many processes, and this one's index (0 keeps the run folder).
HOSTS_ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
# XLA's switch for deterministic GPU kernels (no atomics in scatter and reductions, and
# autotuning among deterministic algorithms only); inert on a CPU, whose kernels are.
DETERMINISTIC_OPS = "--xla_gpu_deterministic_ops=true"


def _xla_determinism(on: bool) -> None:
    """Put `training.deterministic` into XLA_FLAGS (the user's other flags kept).

    XLA reads XLA_FLAGS once, when JAX starts its devices, so this runs before anything
    asks for a device. A later run in the same process (`train a.yaml b.yaml`, a sweep)
    keeps the first one's setting; on a GPU, where it matters, a run wanting the other is
    told so."""
    from jax._src import xla_bridge

    require(xla_bridge, "backends_are_initialized")
    flags = os.environ.get("XLA_FLAGS", "").split()
    if xla_bridge.backends_are_initialized():
        if (DETERMINISTIC_OPS in flags) != on and jax.devices()[0].platform != "cpu":
            print_warning(
                f"training.deterministic: {str(on).lower()}, but XLA's GPU determinism was "
                "set by this process's first run; run this config in a process of its own"
            )
        return
    kept = [flag for flag in flags if not flag.startswith("--xla_gpu_deterministic_ops")]
    os.environ["XLA_FLAGS"] = " ".join(kept + [DETERMINISTIC_OPS] if on else kept)


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
    _xla_determinism(cfg.training.deterministic)
    if d.strategy == "multi_worker":
        _initialise_hosts()
    devices = jax.devices()
    gpu = devices[0].platform != "cpu"
    keras.utils.set_random_seed(cfg.seed)
    precision = choose_precision(cfg.training.mixed_precision, gpu, cpu_flags())
    keras.mixed_precision.set_global_policy(precision)
    several = d.strategy == "auto" and len(devices) > 1
    parallel = d.strategy in ("mirrored", "multi_worker") or several
    share = Share(len(devices), jax.process_index(), jax.process_count()) if parallel else WHOLE
    if cfg.data.batch_size % share.devices:
        raise ConfigError(
            f"data.batch_size: {cfg.data.batch_size} does not split evenly over "
            f"{share.devices} devices (JAX's DataParallel gives each as many images); "
            f"use a multiple of {share.devices}"
        )
    # Each process feeds its own rows of every batch (`Share`), so Keras shards nothing.
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(auto_shard_dataset=False) if parallel else None
    )
    kinds = sorted({getattr(dev, "device_kind", dev.platform) for dev in devices})
    device = f"GPU: {', '.join(kinds)}" if gpu else f"CPU ({os.cpu_count()} cores)"
    if parallel:
        device += f"; DataParallel over {len(devices)} devices"
    together = _any_process if jax.process_count() > 1 else None
    return Runtime(
        NAME,
        device,
        precision,
        True,
        share.devices,
        share=share,
        any_process=together,
    )


def _any_process(yes: bool) -> bool:
    """Whether any process of this multi-host run says yes."""
    from jax.experimental import multihost_utils

    return bool(np.asarray(multihost_utils.process_allgather(np.int32(yes))).any())


# Batches come from the decoded cache through a PyDataset, as on every backend but TensorFlow.
training_batches = batches.training_batches
eval_batches = batches.eval_batches


def gradient(fn: Callable[[Any], Any], x: np.ndarray) -> np.ndarray:
    """d sum(fn(x)) / dx."""
    return np.asarray(jax.grad(lambda v: jax.numpy.sum(fn(v)))(jax.numpy.asarray(x)))


def adapt(model: keras.Model, rt: Runtime) -> None:
    """Nothing to adapt on JAX."""
