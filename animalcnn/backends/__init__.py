"""The Keras backend a run trains on: TensorFlow, JAX or PyTorch.

Keras reads its backend once, from `KERAS_BACKEND`, when it is first imported; so the
backend is chosen (`choose`) and set (`activate`) before anything imports Keras.
What differs per backend (devices, seeding and determinism, precision, distribution,
where training batches come from, the gradient Grad-CAM needs) sits behind one
`Runtime`, made by the backend's own module here (`tensorflow`, `jax`, `torch`); the
rest of the code asks the runtime and never imports a backend itself.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType

from animalcnn.errors import ConfigError, UserError

NAMES = ("tensorflow", "jax", "torch")
# What to install for each: the extras in pyproject.toml.
EXTRAS = {"tensorflow": "cpu (or gpu)", "jax": "jax", "torch": "torch"}


def installed(name: str) -> bool:
    """Whether the backend's package can be imported here (without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def choose(setting: str) -> str:
    """The backend for `training.backend`: a name as given; `auto`: `KERAS_BACKEND` if
    set, else TensorFlow if installed, else JAX, else PyTorch."""
    if setting != "auto":
        return setting
    env = os.environ.get("KERAS_BACKEND", "").strip().lower()
    if env:
        return "torch" if env == "pytorch" else env
    for name in NAMES:
        if installed(name):
            return name
    raise UserError(
        "no Keras backend is installed: pip install 'animalcnn[cpu]' (TensorFlow), "
        "'animalcnn[jax]' or 'animalcnn[torch]'"
    )


def loaded() -> str | None:
    """The backend Keras runs on in this process, if Keras is imported yet."""
    if "keras" not in sys.modules:
        return None
    import keras

    return keras.backend.backend()


def activate(name: str) -> None:
    """Make `name` this process's Keras backend (before Keras is imported); one line when
    it is not installed or Keras already runs on another one here."""
    if name not in NAMES:
        raise ConfigError(f"training.backend: {name!r} is not one of {', '.join(NAMES)}")
    current = loaded()
    if current is not None and current != name:
        raise ConfigError(
            f"training.backend: {name}, but this process already runs Keras on {current}; "
            "run this config in a process of its own"
        )
    if not installed(name):
        raise ConfigError(
            f"training.backend: {name} is not installed: pip install "
            f"'animalcnn[{EXTRAS[name].split()[0]}]'"
        )
    os.environ["KERAS_BACKEND"] = name
    if name == "tensorflow":
        from animalcnn.console import import_tensorflow

        import_tensorflow()  # its start-up lines held back


def module(name: str | None = None) -> ModuleType:
    """The module of backend `name` (default: the one Keras runs on) in this package."""
    return importlib.import_module(f"animalcnn.backends.{name or loaded() or choose('auto')}")


def start(setting: str = "auto") -> str:
    """Choose and activate the backend for `setting` (a config's `training.backend`);
    returns its name."""
    name = choose(setting)
    activate(name)
    return name
