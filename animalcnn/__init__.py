"""animalcnn: reproducible CNN image-classification experiments from YAML configs."""

import os
import sys
import types

# TensorFlow's C++ logs drown the progress output; its real errors surface as exceptions.
# ANIMALCNN_VERBOSE=1 (or --verbose) keeps them. A user's own TF_CPP_MIN_LOG_LEVEL of 1 or
# 2 (a common habit) still lets C++ "errors" through that are not errors (a tf.data
# NodeDef attribute line at the first epoch), so it is raised to 3; 0 asks for all.
if os.environ.get("ANIMALCNN_VERBOSE", "") in ("", "0") and os.environ.get(
    "TF_CPP_MIN_LOG_LEVEL", ""
) in ("", "1", "2"):
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"

__version__ = "0.1.0"


from animalcnn.errors import (  # noqa: E402 (after the environment is set)
    ConfigError,
    DataError,
    RunFolderError,
    TrainingFailed,
    UserError,
)

# The Python API (animalcnn.api), imported on first use: `animalcnn --help` stays fast.
_API = ("Run", "Runs", "check_data", "load_config", "resume", "runs", "sweep", "train")
__all__ = [*_API, "ConfigError", "DataError", "RunFolderError", "TrainingFailed", "UserError"]


def __getattr__(name: str) -> object:
    if name in _API:
        from animalcnn import api

        return getattr(api, name)
    raise AttributeError(f"module 'animalcnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])


class _Package(types.ModuleType):
    """Keeps the Python API's names: importing the subpackage `animalcnn.sweep` would
    otherwise bind the package's attribute `sweep` to it (as Python does for every
    subpackage), hiding the function `animalcnn.sweep`. Submodules are still imported
    by name (`from animalcnn.sweep import job`)."""

    def __setattr__(self, name: str, value: object) -> None:
        if name in _API and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
