"""The custom networks trained from scratch: the course notebook's four, and one of ours.

Defaults of the notebook's reproduce its parameter counts at 100x100x3 with 5 classes
(simple 726,277; mid 1,614,885; resnet 11,705,333; inception 14,633,877). `vgg` is not
the notebook's: a small network of the kind that trains best from scratch today.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from animalcnn.models.registry import register

if TYPE_CHECKING:
    import keras

    from animalcnn.models.spec import ModelSpec


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SimpleParams(Params):
    filters: list[int] = Field([32, 64], min_length=2, max_length=2)
    activation: str | None = Field(
        None, description="The notebook's convolutions have none; e.g. relu to add one."
    )


@register("simple", params=SimpleParams, min_size=8)
def simple(spec: ModelSpec, p: SimpleParams) -> keras.Model:
    """conv3x3 -> maxpool -> conv3x3 -> flatten -> softmax (the notebook's baseline)."""
    import keras
    from keras import layers

    inputs, x = spec.stem()
    x = layers.Conv2D(p.filters[0], 3, activation=p.activation, name="conv1")(x)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(p.filters[1], 3, activation=p.activation, name="conv2")(x)
    x = layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, spec.classifier(x), name="simple")


class MidParams(Params):
    filters: list[int] = Field([32, 64, 128], min_length=1)
    dense: int = Field(128, gt=0)
    dropout: float = Field(0.25, ge=0, lt=1, description="After the first block.")


def _mid_min_size(p: MidParams) -> int:
    # Each block takes 4 pixels (two valid 3x3 convs) and halves; one must remain.
    side = 1
    for _ in p.filters:
        side = 2 * side + 4
    return side


@register("mid", params=MidParams, min_size=_mid_min_size)
def mid(spec: ModelSpec, p: MidParams) -> keras.Model:
    """Blocks of two relu conv3x3 and a max-pool, then a dense layer."""
    import keras
    from keras import layers

    inputs, x = spec.stem()
    for i, f in enumerate(p.filters, start=1):
        x = layers.Conv2D(f, 3, activation="relu", name=f"block{i}_conv1")(x)
        x = layers.Conv2D(f, 3, activation="relu", name=f"block{i}_conv2")(x)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
        if i == 1 and p.dropout:
            x = layers.Dropout(p.dropout, name="block1_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(p.dense, activation="relu", name="dense")(x)
    return keras.Model(inputs, spec.classifier(x), name="mid")


class ResNetParams(Params):
    stem_filters: int = Field(64, gt=0)
    stages: list[int] = Field([64, 128, 256, 512], min_length=1)
    blocks_per_stage: int = Field(2, ge=1)
    dense: int = Field(1000, gt=0, description="Dense relu before the global average pool.")


def _residual_block(x: keras.KerasTensor, filters: int, stride: int, name: str):
    """conv-BN-relu-conv-BN plus the shortcut, then relu; stride 2 projects the shortcut."""
    from keras import layers

    shortcut = x
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", name=f"{name}_conv1")(x)
    y = layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = layers.Activation("relu", name=f"{name}_relu1")(y)
    y = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv2")(y)
    y = layers.BatchNormalization(name=f"{name}_bn2")(y)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, name=f"{name}_shortcut")(shortcut)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.Activation("relu", name=f"{name}_out")(y)


@register("resnet", params=ResNetParams, min_size=32)
def resnet(spec: ModelSpec, p: ResNetParams) -> keras.Model:
    """A ResNet-18-like network: 7x7 stem, residual stages, dense, global pool."""
    import keras
    from keras import layers

    inputs, x = spec.stem()
    x = layers.ZeroPadding2D(3, name="stem_pad")(x)
    x = layers.Conv2D(p.stem_filters, 7, strides=2, padding="same", name="stem_conv")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.Activation("relu", name="stem_relu")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for s, filters in enumerate(p.stages, start=1):
        for b in range(1, p.blocks_per_stage + 1):
            stride = 2 if (b == 1 and s > 1) else 1
            x = _residual_block(x, filters, stride, f"stage{s}_block{b}")
    x = layers.Dense(p.dense, activation="relu", name="dense")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, spec.classifier(x), name="resnet")


class InceptionParams(Params):
    blocks: int = Field(3, ge=1)
    branch_filters: list[int] = Field(
        [32, 32, 64, 64],
        min_length=4,
        max_length=4,
        description="1x1, 1x1->3x3, pool->1x1, 1x1->3x3->3x3.",
    )
    reduce_filters: int = Field(64, gt=0, description="The 7x7 valid conv after each block.")
    dropout: float = Field(0.2, ge=0, lt=1)
    dense: int = Field(1000, gt=0)


def _inception_block(x: keras.KerasTensor, f: list[int], name: str):
    from keras import layers

    def conv(t, filters, size, tag):
        conv = layers.Conv2D(filters, size, padding="same", activation="relu", name=f"{name}_{tag}")
        return conv(t)

    a = conv(x, f[0], 1, "1x1")
    b = conv(conv(x, f[1], 1, "3x3_reduce"), f[1], 3, "3x3")
    c = layers.MaxPooling2D(2, strides=1, padding="same", name=f"{name}_branch_pool")(x)
    c = conv(c, f[2], 1, "pool_proj")
    d = conv(conv(conv(x, f[3], 1, "5x5_reduce"), f[3], 3, "5x5_a"), f[3], 3, "5x5_b")
    return layers.Concatenate(name=f"{name}_concat")([a, b, c, d])


def _inception_min_size(p: InceptionParams) -> int:
    # Each block's 7x7 valid conv takes 6 pixels; all but the last block then halve.
    side = 7
    for _ in range(p.blocks - 1):
        side = 2 * side + 6
    return side


@register("inception", params=InceptionParams, min_size=_inception_min_size)
def inception(spec: ModelSpec, p: InceptionParams) -> keras.Model:
    """Inception blocks, each followed by BN, a 7x7 valid conv and a max-pool."""
    import keras
    from keras import layers

    inputs, x = spec.stem()
    for i in range(1, p.blocks + 1):
        x = _inception_block(x, p.branch_filters, f"inception{i}")
        x = layers.BatchNormalization(name=f"inception{i}_bn")(x)
        x = layers.Conv2D(p.reduce_filters, 7, activation="relu", name=f"inception{i}_reduce")(x)
        if i < p.blocks:
            x = layers.MaxPooling2D(2, name=f"inception{i}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(p.dropout, name="dropout")(x)
    x = layers.Dense(p.dense, activation="relu", name="dense")(x)
    return keras.Model(inputs, spec.classifier(x), name="inception")


class VGGParams(Params):
    filters: list[int] = Field([64, 128, 256], min_length=1, description="One block each.")
    convs: int = Field(2, ge=1, description="Padded conv3x3-BN-relu layers per block.")
    stem_stride: int = Field(
        2,
        ge=1,
        description="Stride of the first convolution: 2 halves upscaled photographs first.",
    )
    dropout: float = Field(0.3, ge=0, lt=1, description="Before the classifier.")


def _vgg_min_size(p: VGGParams) -> int:
    # The padded stem keeps ceil(side / stride); every block but the last halves (floor);
    # one pixel must reach the global pool.
    return p.stem_stride * (2 ** (len(p.filters) - 1) - 1) + 1


@register("vgg", params=VGGParams, min_size=_vgg_min_size)
def vgg(spec: ModelSpec, p: VGGParams) -> keras.Model:
    """Blocks of padded conv3x3-BN-relu and a max-pool, then a global average pool."""
    import keras
    from keras import layers

    inputs, x = spec.stem()
    stride = p.stem_stride
    for i, f in enumerate(p.filters, start=1):
        for j in range(1, p.convs + 1):
            name = f"block{i}_conv{j}"
            x = layers.Conv2D(f, 3, strides=stride, padding="same", use_bias=False, name=name)(x)
            # Keras's default momentum (0.99) leaves the moving statistics far from the
            # batch ones for the first few hundred steps: a small dataset's first epochs.
            x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
            x = layers.Activation("relu", name=f"{name}_relu")(x)
            stride = 1
        if i < len(p.filters):
            x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if p.dropout:
        x = layers.Dropout(p.dropout, name="dropout")(x)
    return keras.Model(inputs, spec.classifier(x), name="vgg")
