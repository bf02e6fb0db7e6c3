"""What every builder shares: the input stem (scaling, augmentation) and the classifier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import keras

    from animalcnn.config import Augmentation, ExperimentConfig

# How each input convention maps raw 0-255 pixels: (scale, offset), and the size of
# one unit of the [0, 1] scale in it (to express noise in the same units everywhere).
SCALES: dict[str, tuple[float, float, float]] = {
    "unit": (1 / 255, 0.0, 1.0),  # [0, 1], the custom networks
    "symmetric": (1 / 127.5, -1.0, 2.0),  # [-1, 1], ResNetV2 / MobileNetV2 / Xception
    "raw": (1.0, 0.0, 255.0),  # 0-255, networks that normalise inside (EfficientNet)
}
Scale = Literal["unit", "symmetric", "raw"]


@dataclass(frozen=True)
class ModelSpec:
    """What a builder needs besides its own params: input size, classes, augmentation."""

    img_size: int
    num_classes: int
    augmentation: tuple[Augmentation, ...] = ()
    seed: int = 42
    weights: str = "none"  # pretrained backbones: imagenet, none or a file path

    @classmethod
    def from_config(cls, cfg: ExperimentConfig, num_classes: int) -> ModelSpec:
        weights = cfg.transfer.weights if cfg.transfer is not None else "none"
        return cls(cfg.data.img_size, num_classes, tuple(cfg.model.augmentation), cfg.seed, weights)

    def stem(self, scale: Scale = "unit") -> tuple[keras.KerasTensor, keras.KerasTensor]:
        """The model input (raw 0-255 RGB) scaled for the network, then augmented.

        Scaling lives inside the model so a saved model takes raw pixels.
        """
        from keras import layers

        inputs = layers.Input((self.img_size, self.img_size, 3), name="image")
        factor, offset, _ = SCALES[scale]
        x = layers.Rescaling(factor, offset, name="rescale")(inputs)
        for i, aug in enumerate(self.augmentation):
            layer = _augmentation_layer(aug, scale, self.seed + i, f"aug_{i}_{aug.type}")
            x = layer(x)
        return inputs, x

    def classifier(self, x: keras.KerasTensor) -> keras.KerasTensor:
        """Softmax over the classes, in float32 even under mixed precision."""
        from keras import layers

        return layers.Dense(
            self.num_classes, activation="softmax", dtype="float32", name="predictions"
        )(x)


def _augmentation_layer(aug: Augmentation, scale: Scale, seed: int, name: str) -> keras.Layer:
    from keras import layers

    factor, offset, unit = SCALES[scale]

    match aug.type:
        case "flip":
            return layers.RandomFlip(aug.mode, seed=seed, name=name)
        case "rotation":
            return layers.RandomRotation(aug.factor, seed=seed, name=name)
        case "zoom":
            return layers.RandomZoom(aug.factor, seed=seed, name=name)
        case "translation":
            return layers.RandomTranslation(aug.factor, aug.factor, seed=seed, name=name)
        case "contrast":
            value_range = (offset, offset + 255 * factor)
            return layers.RandomContrast(aug.factor, value_range, seed=seed, name=name)
        case "noise":
            return layers.GaussianNoise(aug.stddev * unit, seed=seed, name=name)
    raise ValueError(f"unhandled augmentation {aug.type!r}")
