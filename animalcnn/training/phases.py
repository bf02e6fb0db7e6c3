"""Training phases and which layers train in each: from scratch, or a transfer strategy.

- no `transfer` section: one phase, everything trains;
- transfer: one phase, the backbone frozen (only the head trains);
- partial: one phase, only the backbone's last `unfreeze_last` layers (and the head) train;
- finetune: phase `head` as transfer, then phase `finetune` with the whole backbone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from animalcnn.config import ExperimentConfig
from animalcnn.config.schema import Schedule
from animalcnn.models import build_model
from animalcnn.models.pretrained import BACKBONE_LAYER
from animalcnn.models.summary import layer_table, parameter_counts

if TYPE_CHECKING:
    import keras

Trainable = Literal["all", "head", "partial"]


@dataclass(frozen=True)
class Phase:
    name: str
    epochs: int
    learning_rate: float
    lr_patience: int
    val_patience: int
    schedule: Schedule
    warmup_epochs: float
    trainable: Trainable
    backbone_lr_factor: float = 1.0  # the backbone's rate as a share of the phase's


def phases(cfg: ExperimentConfig) -> list[Phase]:
    t = cfg.training
    first = (t.epochs, t.learning_rate, t.lr_patience, t.val_patience, t.schedule, t.warmup_epochs)
    if cfg.transfer is None:
        return [Phase("train", *first, "all")]
    strategy = cfg.transfer.strategy
    if strategy == "transfer":
        return [Phase("transfer", *first, "head")]
    if strategy == "partial":
        return [Phase("partial", *first, "partial")]
    f = cfg.transfer.finetune
    second = (f.epochs, f.learning_rate, f.lr_patience, f.val_patience, f.schedule, f.warmup_epochs)
    return [Phase("head", *first, "head"), Phase("finetune", *second, "all", f.backbone_lr_factor)]


def set_trainable(model: keras.Model, phase: Phase, cfg: ExperimentConfig) -> None:
    """Freeze and unfreeze the backbone for `phase` (recompile afterwards)."""
    if cfg.transfer is None:
        model.trainable = True
        return
    backbone = model.get_layer(BACKBONE_LAYER)
    backbone.trainable = phase.trainable != "head"
    if phase.trainable == "partial":
        n = cfg.transfer.unfreeze_last
        for i, layer in enumerate(backbone.layers):
            unfrozen = i >= len(backbone.layers) - n
            if unfrozen and cfg.transfer.freeze_batchnorm:
                unfrozen = layer.__class__.__name__ != "BatchNormalization"
            layer.trainable = unfrozen


def build_as_trained(cfg: ExperimentConfig, num_classes: int) -> keras.Model:
    """The config's model with the layers trainable that train in its last phase, so that
    its counts are those at the end of training (fine-tune: the backbone unfrozen)."""
    model = build_model(cfg, num_classes)
    set_trainable(model, phases(cfg)[-1], cfg)
    return model


def describe(cfg: ExperimentConfig, num_classes: int) -> tuple[dict[str, int], str]:
    """The parameter counts and layer table of the config's model as training ends."""
    model = build_as_trained(cfg, num_classes)
    return parameter_counts(model), layer_table(model)
