"""What every builder shares: the input stem (scaling, augmentation) and the classifier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple

from animalcnn.models import augmentation

if TYPE_CHECKING:
    import keras

    from animalcnn.config import ExperimentConfig


# The names of the stem's augmentation layers begin so (export leaves them out).
AUGMENTATION_PREFIX = "aug_"


class PixelScale(NamedTuple):
    """How an input convention maps raw 0-255 pixels (`factor * x + offset`), and the size
    of one unit of the [0, 1] scale in it (to state noise in the same units everywhere)."""

    factor: float
    offset: float
    unit: float


SCALES: dict[str, PixelScale] = {
    "unit": PixelScale(1 / 255, 0.0, 1.0),  # [0, 1], the custom networks
    "symmetric": PixelScale(1 / 127.5, -1.0, 2.0),  # [-1, 1], ResNetV2 / MobileNetV2 / Xception
    "raw": PixelScale(1.0, 0.0, 255.0),  # 0-255, networks that normalise inside (EfficientNet)
}
Scale = Literal["unit", "symmetric", "raw"]


@dataclass(frozen=True)
class ModelSpec:
    """What a builder needs besides its own params: input size, classes, augmentation."""

    img_size: int
    num_classes: int
    augmentation: tuple[augmentation.Augmentation, ...] = ()
    seed: int = 42
    weights: str = "none"  # pretrained backbones: imagenet, none or a file path

    @classmethod
    def from_config(cls, cfg: ExperimentConfig, num_classes: int) -> ModelSpec:
        weights = cfg.transfer.weights if cfg.transfer is not None else "none"
        augs = cfg.model.transforms
        return cls(cfg.data.img_size, num_classes, augs, cfg.seed, weights)

    def stem(self, scale: Scale = "unit") -> tuple[keras.KerasTensor, keras.KerasTensor]:
        """The model input (raw 0-255 RGB) scaled for the network, then augmented.

        Scaling lives inside the model so a saved model takes raw pixels.
        """
        from keras import layers

        inputs = layers.Input((self.img_size, self.img_size, 3), name="image")
        pixels = SCALES[scale]
        x = layers.Rescaling(pixels.factor, pixels.offset, name="rescale")(inputs)
        for i, aug in enumerate(self.augmentation):
            x = aug.layer(pixels, self.seed + i, f"{AUGMENTATION_PREFIX}{i}_{aug.type}")(x)
        return inputs, x

    def classifier(self, x: keras.KerasTensor) -> keras.KerasTensor:
        """Softmax over the classes, in float32 even under mixed precision."""
        from keras import layers

        return layers.Dense(
            self.num_classes, activation="softmax", dtype="float32", name="predictions"
        )(x)
