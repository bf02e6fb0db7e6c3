"""Sweeps: many experiments from one file, searched with Optuna (`spec`: the sweep file;
`trials`: what a study's trials say; `search`: taking and running trials, each an
ordinary run folder; `storage`: where the study lives; `job`: a sweep run from its file
to its written table and page).

`animalcnn.sweep` is also the Python API's function: importing this package replaces
the package's attribute `sweep` (as Python does for every subpackage), so the package
itself is callable and runs `animalcnn.api.sweep`, before and after any import of it."""

import sys
import types
from typing import Any


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from animalcnn.api import sweep

        return sweep(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
