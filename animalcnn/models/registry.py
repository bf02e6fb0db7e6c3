"""Architectures registered by name, so that a config's `model.arch` picks a builder.

The registry itself never imports Keras: config validation (and `--help`) stay fast,
and each builder imports Keras when it is called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    import keras

    from animalcnn.models.spec import ModelSpec


class NoParams(BaseModel):
    """For architectures without options of their own."""

    model_config = ConfigDict(extra="forbid", strict=True)


@dataclass(frozen=True)
class Architecture:
    """A registered builder with the schema of its `model.params` and its limits."""

    name: str
    build: Callable[[ModelSpec, Any], keras.Model]
    params: type[BaseModel]
    min_size: int | Callable[[Any], int]  # or a function of the params
    pretrained: bool
    description: str
    # What a loaded model needs before it trains again (Keras does not save it).
    after_load: Callable[[keras.Model], None] | None = None

    def smallest_input(self, params: BaseModel | None = None) -> int:
        """The smallest image side this architecture accepts with these params
        (default: its default params)."""
        if not callable(self.min_size):
            return self.min_size
        return self.min_size(params if params is not None else self.params())


_REGISTRY: dict[str, Architecture] = {}


def register(
    name: str,
    *,
    params: type[BaseModel] = NoParams,
    min_size: int | Callable[[Any], int] = 8,
    pretrained: bool = False,
    after_load: Callable[[keras.Model], None] | None = None,
) -> Callable[[Callable[..., keras.Model]], Callable[..., keras.Model]]:
    """Register `fn(spec, params) -> keras.Model` under `name`."""

    def decorator(fn: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        if name in _REGISTRY:
            raise ValueError(f"architecture {name!r} is registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = Architecture(
            name, fn, params, min_size, pretrained, doc[0] if doc else "", after_load
        )
        return fn

    return decorator


def get(name: str) -> Architecture:
    """The architecture called `name`; KeyError names the known ones."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown architecture {name!r}; known: {', '.join(names())}")
    return _REGISTRY[name]


def names() -> list[str]:
    return sorted(_REGISTRY)
