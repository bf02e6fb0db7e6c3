"""ImageNet backbones from `keras.applications` under a small classification head.

The backbone is one nested layer named `backbone`, always run in inference mode,
so its BatchNormalization statistics never move, also once unfrozen for
fine-tuning (the Keras transfer-learning recipe). Which layers train is the
transfer strategy's business (`animalcnn.training.phases`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from animalcnn.errors import ConfigError, UserError
from animalcnn.models.registry import register

if TYPE_CHECKING:
    import keras

    from animalcnn.models.spec import ModelSpec, Scale

BACKBONE_LAYER = "backbone"


class HeadParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    pooling: Literal["flatten", "avg"] = "flatten"
    dense: int = Field(1000, ge=0, description="Hidden relu units; 0 for none.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Before the softmax.")


def load_backbone(app: str, spec: ModelSpec) -> keras.Model:
    """`keras.applications.<app>` without its top, with the spec's weights."""
    import keras

    shape = (spec.img_size, spec.img_size, 3)
    weights: str | None
    if spec.weights == "none":
        weights = None
    elif spec.weights == "imagenet":
        weights = "imagenet"
    else:
        path = Path(spec.weights).expanduser()
        if not path.is_file():
            raise ConfigError(f"transfer.weights: file not found: {path}")
        weights = str(path)
    try:
        return getattr(keras.applications, app)(
            include_top=False, weights=weights, input_shape=shape
        )
    except Exception as exc:  # Keras raises a bare Exception when a download fails
        from animalcnn.keras_internals import failed_download

        fname = failed_download(exc)
        if fname is None:
            raise
        raise UserError(
            f"transfer.weights: imagenet: the {app} weights could not be downloaded "
            f"(no network?); put {fname} in ~/.keras/models/, or set "
            f"transfer.weights to that file's path (or none for random initialisation)"
        ) from None


def pin_backbone(model: keras.Model) -> None:
    """Keep the backbone in inference mode under `fit` (after building or loading)."""
    from animalcnn.keras_internals import pin_inference_mode

    pin_inference_mode(model.get_layer(BACKBONE_LAYER))


def _backbone_builder(app: str, scale: Scale):
    def build(spec: ModelSpec, p: HeadParams) -> keras.Model:
        import keras
        from keras import layers

        backbone = load_backbone(app, spec)
        backbone.name = BACKBONE_LAYER
        inputs, x = spec.stem(scale)
        x = backbone(x, training=False)
        pool = layers.Flatten if p.pooling == "flatten" else layers.GlobalAveragePooling2D
        x = pool(name="pool")(x)
        if p.dense:
            x = layers.Dense(p.dense, activation="relu", name="dense")(x)
        if p.dropout:
            x = layers.Dropout(p.dropout, name="dropout")(x)
        model = keras.Model(inputs, spec.classifier(x), name=app.lower())
        pin_backbone(model)
        return model

    build.__doc__ = f"keras.applications.{app} (ImageNet) with a dense head."
    return build


# registered name: (keras.applications class, its input convention, minimum image size)
BACKBONES: dict[str, tuple[str, Scale, int]] = {
    "resnet50v2": ("ResNet50V2", "symmetric", 32),
    "mobilenetv2": ("MobileNetV2", "symmetric", 32),
    "xception": ("Xception", "symmetric", 71),
    "efficientnetb0": ("EfficientNetB0", "raw", 32),
}

for _name, (_app, _scale, _min) in BACKBONES.items():
    register(_name, params=HeadParams, min_size=_min, pretrained=True, after_load=pin_backbone)(
        _backbone_builder(_app, _scale)
    )
