"""PyTorch: one device (the first GPU, else the CPU; it says so when there are more),
deterministic algorithms on request, and batches from `data.batches`. Steps run eagerly
(`jit_compile` off: `torch.compile` costs more than it saves on runs this size)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import torch

from animalcnn.backends.runtime import Runtime, choose_precision, cpu_flags
from animalcnn.config import ExperimentConfig
from animalcnn.data import batches
from animalcnn.errors import ConfigError

NAME = "torch"
# The workspace setting cuBLAS needs for reproducible results (read when CUDA first runs a
# matrix product, so set before that; a user's own value is kept).
CUBLAS_WORKSPACE = ":4096:8"


def configure(cfg: ExperimentConfig) -> Runtime:
    d = cfg.distribute
    if d.strategy in ("mirrored", "multi_worker") or d.virtual_cpus or d.devices:
        raise ConfigError(
            "distribute: PyTorch trains on one device here (strategy auto or none; "
            "training.backend jax or tensorflow spread over several)"
        )
    gpus = torch.cuda.device_count()
    keras.utils.set_random_seed(cfg.seed)
    if cfg.training.deterministic:  # cuBLAS's own condition for deterministic matmuls on CUDA
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(cfg.training.deterministic, warn_only=True)
    torch.backends.cudnn.benchmark = not cfg.training.deterministic
    precision = choose_precision(cfg.training.mixed_precision, gpus > 0, cpu_flags())
    keras.mixed_precision.set_global_policy(precision)
    if gpus:
        device = f"GPU: {torch.cuda.get_device_name(0)}"
        if gpus > 1:
            device += f" (1 of {gpus}: PyTorch trains on one device here)"
    else:
        device = f"CPU ({os.cpu_count()} cores)"
    return Runtime(NAME, device, precision, False, 1)


# Batches come from the decoded cache through a PyDataset, as on every backend but TensorFlow.
training_batches = batches.training_batches
eval_batches = batches.eval_batches


def gradient(fn: Callable[[Any], Any], x: np.ndarray) -> np.ndarray:
    """d sum(fn(x)) / dx."""
    tensor = keras.ops.convert_to_tensor(x).detach().requires_grad_(True)  # on Keras's device
    value = torch.sum(fn(tensor))
    (grad,) = torch.autograd.grad(value, tensor)
    return grad.detach().cpu().numpy()


def adapt(model: keras.Model, rt: Runtime) -> None:
    """Nothing to adapt on PyTorch."""
