"""Augmentations: each one's config schema and its Keras layer, registered together.

A new augmentation is one class here: its options (pydantic fields, with their
defaults and bounds) and the `layer` it builds. The config's augmentation types,
their validation and `animalcnn models` all come from this registry. Keras is
imported only when a layer is built.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

if TYPE_CHECKING:
    import keras

    from animalcnn.models.spec import PixelScale


class Augmentation(BaseModel):
    """One random transform; `type` names it in a config."""

    model_config = ConfigDict(extra="forbid", strict=True)
    type: str

    @abstractmethod
    def layer(self, scale: PixelScale, seed: int, name: str) -> keras.Layer:
        """The Keras layer, for pixels on `scale` (the network's input convention)."""


_REGISTRY: dict[str, type[Augmentation]] = {}


def register(name: str) -> Callable[[type[Augmentation]], type[Augmentation]]:
    """Register an `Augmentation` subclass whose `type` is `Literal[name]`."""

    def decorator(cls: type[Augmentation]) -> type[Augmentation]:
        if name in _REGISTRY:
            raise ValueError(f"augmentation {name!r} is registered twice")
        _REGISTRY[name] = cls
        return cls

    return decorator


def names() -> list[str]:
    return sorted(_REGISTRY)


def get(name: str) -> type[Augmentation]:
    return _REGISTRY[name]


def list_adapter() -> TypeAdapter:
    """Validates a config's augmentation list: a union of the registered types, by `type`."""
    union = Union[tuple(_REGISTRY.values())]  # noqa: UP007 (built at run time)
    return TypeAdapter(list[Annotated[union, Field(discriminator="type")]])


@register("flip")
class Flip(Augmentation):
    type: Literal["flip"]
    mode: Literal["horizontal", "vertical", "horizontal_and_vertical"] = "horizontal"

    def layer(self, scale: PixelScale, seed: int, name: str) -> keras.Layer:
        from keras import layers

        return layers.RandomFlip(self.mode, seed=seed, name=name)


@register("rotation")
class Rotation(Augmentation):
    type: Literal["rotation"]
    factor: float = Field(0.1, gt=0, le=1, description="Fraction of a full turn, both ways.")

    def layer(self, scale: PixelScale, seed: int, name: str) -> keras.Layer:
        from keras import layers

        return layers.RandomRotation(self.factor, seed=seed, name=name)


@register("zoom")
class Zoom(Augmentation):
    type: Literal["zoom"]
    factor: float = Field(0.2, gt=0, lt=1, description="Largest zoom in or out, as a fraction.")

    def layer(self, scale: PixelScale, seed: int, name: str) -> keras.Layer:
        from keras import layers

        return layers.RandomZoom(self.factor, seed=seed, name=name)


@register("translation")
class Translation(Augmentation):
    type: Literal["translation"]
    factor: float = Field(0.1, gt=0, lt=1, description="Largest shift, as a fraction of the side.")

    def layer(self, scale: PixelScale, seed: int, name: str) -> keras.Layer:
        from keras import layers

        return layers.RandomTranslation(self.factor, self.factor, seed=seed, name=name)


@register("contrast")
class Contrast(Augmentation):
    type: Literal["contrast"]
    factor: float = Field(0.2, gt=0, le=1, description="Largest contrast change, as a fraction.")

    def layer(self, scale: PixelScale, seed: int, name: str) -> keras.Layer:
        from keras import layers

        return layers.RandomContrast(self.factor, _value_range(scale), seed=seed, name=name)


@register("noise")
class Noise(Augmentation):
    type: Literal["noise"]
    stddev: float = Field(0.01, gt=0, description="In units of the [0, 1] pixel scale.")

    def layer(self, scale: PixelScale, seed: int, name: str) -> keras.Layer:
        from keras import layers

        return layers.GaussianNoise(self.stddev * scale.unit, seed=seed, name=name)


def _value_range(scale: PixelScale) -> tuple[float, float]:
    return (scale.offset, scale.offset + 255 * scale.factor)


@register("randaugment")
class RandAugmentation(Augmentation):
    type: Literal["randaugment"]
    num_ops: int = Field(2, ge=1, le=10, description="Operations drawn per image.")
    magnitude: float = Field(
        0.5, gt=0, le=1, description="Strength of each operation, 0-1 (Keras's factor)."
    )

    def layer(self, scale: PixelScale, seed: int, name: str) -> keras.Layer:
        from keras import layers

        return layers.RandAugment(
            _value_range(scale), num_ops=self.num_ops, factor=self.magnitude, seed=seed, name=name
        )


@register("random_erasing")
class RandomErasing(Augmentation):
    type: Literal["random_erasing"]
    prob: float = Field(0.25, gt=0, le=1, description="Share of images that get a box erased.")
    max_area: float = Field(
        0.33, gt=0.02, lt=1, description="Largest box, as a share of the image (smallest 2 %)."
    )

    def layer(self, scale: PixelScale, seed: int, name: str) -> keras.Layer:
        from keras import layers

        return layers.RandomErasing(
            self.prob,
            scale=(0.02, self.max_area),
            value_range=_value_range(scale),
            seed=seed,
            name=name,
        )


@register("augmix")
class AugMixAugmentation(Augmentation):
    type: Literal["augmix"]
    num_chains: int = Field(3, ge=1, le=8, description="Augmentation chains mixed per image.")
    chain_depth: int = Field(3, ge=1, le=8, description="Largest number of ops in a chain.")
    magnitude: float = Field(0.3, gt=0, le=1, description="Strength of each operation, 0-1.")

    def layer(self, scale: PixelScale, seed: int, name: str) -> keras.Layer:
        from keras import layers

        return layers.AugMix(
            _value_range(scale),
            num_chains=self.num_chains,
            chain_depth=self.chain_depth,
            factor=self.magnitude,
            seed=seed,
            name=name,
        )
