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
    trainable: Trainable


def phases(cfg: ExperimentConfig) -> list[Phase]:
    t = cfg.training
    first = (t.epochs, t.learning_rate, t.lr_patience, t.val_patience)
    if cfg.transfer is None:
        return [Phase("train", *first, "all")]
    strategy = cfg.transfer.strategy
    if strategy == "transfer":
        return [Phase("transfer", *first, "head")]
    if strategy == "partial":
        return [Phase("partial", *first, "partial")]
    f = cfg.transfer.finetune
    return [
        Phase("head", *first, "head"),
        Phase("finetune", f.epochs, f.learning_rate, f.lr_patience, f.val_patience, "all"),
    ]


def set_trainable(model: keras.Model, phase: Phase, cfg: ExperimentConfig) -> None:
    """Freeze and unfreeze the backbone for `phase` (recompile afterwards)."""
    from animalcnn.models.pretrained import BACKBONE_LAYER

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


def parameter_counts(model: keras.Model) -> dict[str, int]:
    """Total, trainable and non-trainable parameters, as Keras reports them."""
    import numpy as np

    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    total = sum(int(np.prod(w.shape)) for w in model.weights)
    return {"total": total, "trainable": trainable, "non_trainable": total - trainable}
