"""What a run needs to know of its backend, and what every backend shares: the
`Runtime`, the precision choice, and which process of a multi-worker cluster keeps the
run folder. Nothing here imports a backend."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from animalcnn.data.sharding import WHOLE, Share

if TYPE_CHECKING:
    from animalcnn.config import ExperimentConfig

# CPUs whose matrix units run bfloat16: there mixed_bfloat16 pays (docs/benchmarks.md).
BF16_MATRIX_FLAGS = frozenset({"amx_bf16"})


@dataclass(frozen=True)
class Runtime:
    """One run's settings on its backend, chosen once (`configure` in the backend's module)."""

    backend: str
    device: str
    precision: str  # the Keras dtype policy: float32, mixed_float16 or mixed_bfloat16
    jit_compile: bool
    replicas: int
    scope: Callable[[], AbstractContextManager[Any]] = field(default=contextlib.nullcontext)
    strategy: Any = None  # TensorFlow's distribution strategy (None elsewhere)
    # How each batch is split over devices and processes where the backend needs it even
    # (JAX's DataParallel); TensorFlow splits a batch itself, unevenly if need be.
    share: Share = WHOLE
    # Processes that step together (multi-host JAX): whether any of them says yes; each
    # must call it at the same point, as it is one collective.
    any_process: Callable[[bool], bool] | None = None


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags as Linux reports them (none elsewhere)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return frozenset(line.partition(":")[2].split())


def choose_precision(setting: str, has_gpu: bool, flags: frozenset[str]) -> str:
    """The Keras dtype policy for `training.mixed_precision` on this device."""
    if setting == "off":
        return "float32"
    if setting == "float16" or (setting in ("auto", "on") and has_gpu):
        return "mixed_float16"
    if setting in ("bfloat16", "on") or flags & BF16_MATRIX_FLAGS:
        return "mixed_bfloat16"
    return "float32"


def resolve(switch: str, has_gpu: bool) -> bool:
    """An `auto | on | off` switch: auto means on where there is a GPU."""
    return has_gpu if switch == "auto" else switch == "on"


class Task(BaseModel):
    """This process's place in a TensorFlow cluster (TF_CONFIG's `task`)."""

    type: str = "worker"
    index: int = 0


class ClusterConfig(BaseModel):
    """TF_CONFIG, as TensorFlow reads it: the cluster's jobs and this process's task."""

    cluster: dict[str, Any] = Field(default_factory=dict)
    task: Task = Field(default_factory=Task)


def is_chief(tf_config: str | None) -> bool:
    """Whether this process is the chief of a TensorFlow multi-worker cluster (or alone)."""
    if not tf_config:
        return True
    spec = ClusterConfig.model_validate_json(tf_config)
    if "chief" in spec.cluster:
        return spec.task.type == "chief"
    return spec.task.type == "worker" and spec.task.index == 0


def keeps_run_folder(cfg: ExperimentConfig) -> bool:
    """Whether this process writes the run folder: all but a multi-worker run's non-chiefs
    (TensorFlow: from TF_CONFIG; JAX: process 0 of JAX_PROCESS_ID). The one place this
    is decided: every worker trains, the chief alone keeps the run folder."""
    if cfg.distribute.strategy != "multi_worker":
        return True
    from animalcnn import backends

    if backends.choose(cfg.training.backend) == "jax":
        return os.environ.get("JAX_PROCESS_ID", "0") in ("", "0")
    return is_chief(os.environ.get("TF_CONFIG"))


def configure(cfg: ExperimentConfig) -> Runtime:
    """Apply the config's device, seed and precision settings on this process's backend;
    call before building the model."""
    from animalcnn import backends

    return backends.module().configure(cfg)
