"""The optimizer and loss a phase trains with, from the config: the optimizer's kind,
decoupled weight decay (never on biases or normalisation scales), clipping, gradient
accumulation, the EMA of the weights, the learning-rate schedule, a lower rate for a
pretrained backbone than for the head, and label smoothing.

The schedule is a Keras `LearningRateSchedule` of the optimizer's step counter, saved
with the optimizer, so a resumed run continues at the step it stopped at.
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from animalcnn.config.schema import TrainingConfig
from animalcnn.errors import RunFolderError
from animalcnn.keras_internals import scale_learning_rate
from animalcnn.models.pretrained import BACKBONE_LAYER
from animalcnn.training.phases import Phase

WARMUP_START = 0.1  # warm-up starts at a tenth of the rate
ONECYCLE_START, ONECYCLE_END, ONECYCLE_WARMUP = 1 / 25, 1e-4, 0.3  # fastai's fit_one_cycle


@keras.saving.register_keras_serializable(package="animalcnn")
class StepSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `peak`, then `shape`: cosine (down to `floor`), onecycle (cosine
    down to a 10,000th) or constant; by optimizer step over a phase of `total` steps."""

    def __init__(self, peak: float, total: int, warmup: int, shape: str, floor: float = 0.0):
        self.peak, self.total, self.warmup = float(peak), int(total), int(warmup)
        self.shape, self.floor = shape, float(floor)

    def __call__(self, step: Any) -> Any:
        s = ops.cast(step, "float32")
        start = self.peak * (ONECYCLE_START if self.shape == "onecycle" else WARMUP_START)
        end = self.peak * ONECYCLE_END if self.shape == "onecycle" else self.floor
        rising = start + (self.peak - start) * s / max(self.warmup, 1)
        t = ops.clip((s - self.warmup) / max(self.total - self.warmup, 1), 0.0, 1.0)
        if self.shape == "constant":
            after = ops.full_like(t, self.peak)
        else:
            after = end + (self.peak - end) * 0.5 * (1.0 + ops.cos(math.pi * t))
        return ops.where(s < self.warmup, rising, after)

    def get_config(self) -> dict[str, Any]:
        return {
            "peak": self.peak,
            "total": self.total,
            "warmup": self.warmup,
            "shape": self.shape,
            "floor": self.floor,
        }


def learning_rate(t: TrainingConfig, phase: Phase, steps_per_epoch: int) -> float | StepSchedule:
    """The phase's rate: a number that ReduceLROnPlateau moves, or a step schedule."""
    if phase.schedule == "plateau":
        return phase.learning_rate
    total = phase.epochs * steps_per_epoch
    warmup = round(phase.warmup_epochs * steps_per_epoch)
    if phase.schedule == "onecycle" and not warmup:
        warmup = round(ONECYCLE_WARMUP * total)
    return StepSchedule(phase.learning_rate, total, warmup, phase.schedule, t.min_lr)


def make_optimizer(
    t: TrainingConfig, phase: Phase, steps_per_epoch: int, model: keras.Model
) -> keras.optimizers.Optimizer:
    """A new optimizer for `phase` over `model`'s trainable variables (call it inside the
    runtime's scope)."""
    common: dict[str, Any] = {
        "learning_rate": learning_rate(t, phase, steps_per_epoch),
        "weight_decay": t.weight_decay or None,
        "clipnorm": t.clipnorm,
        "gradient_accumulation_steps": t.gradient_accumulation_steps
        if t.gradient_accumulation_steps > 1
        else None,
        "use_ema": t.ema is not None,
        "ema_momentum": t.ema.decay if t.ema is not None else 0.99,
    }
    if t.optimizer == "adam":
        optimizer = keras.optimizers.Adam(**common)
    elif t.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(**{**common, "weight_decay": t.weight_decay})
    elif t.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(momentum=t.momentum, nesterov=t.nesterov, **common)
    else:
        optimizer = keras.optimizers.Lion(**common)
    if t.weight_decay:
        # Decay shrinks weights that multiply inputs; not biases or scales (one number per
        # channel), whose shrinking only shifts or rescales what a layer passes on.
        optimizer.exclude_from_weight_decay(
            var_list=[v for v in model.trainable_variables if len(v.shape) <= 1]
        )
    if phase.backbone_lr_factor != 1.0:
        backbone = model.get_layer(BACKBONE_LAYER).trainable_variables
        scale_learning_rate(optimizer, backbone, phase.backbone_lr_factor)
    return optimizer


def carry_over(
    made: keras.optimizers.Optimizer, loaded: keras.optimizers.Optimizer, model: keras.Model
) -> keras.optimizers.Optimizer:
    """`made` (a new optimizer with what Keras does not save, such as the variables kept
    from weight decay) holding `loaded`'s state: step, moments, rate, EMA weights, and
    float16's loss scale (Keras wrapped the saved one; `compile` keeps a wrapped one)."""
    scaled = keras.optimizers.LossScaleOptimizer
    if isinstance(loaded, scaled) and not isinstance(made, scaled):
        made = scaled(made)
    made.build(model.trainable_variables)
    ours, theirs = made.variables, loaded.variables
    if [tuple(v.shape) for v in ours] != [tuple(v.shape) for v in theirs]:
        raise RunFolderError(
            f"the saved optimizer holds {len(theirs)} variables where the config's "
            f"{type(made).__name__} has {len(ours)}: was the config edited?"
        )
    for mine, saved in zip(ours, theirs, strict=True):
        mine.assign(saved)
    return made


def loss(t: TrainingConfig) -> str | keras.losses.Loss:
    """Cross-entropy on class indices, or on one-hot rows (smoothed, or mixed by MixUp and
    CutMix). `accuracy` stays the plain one: Keras picks its kind from the labels."""
    if not t.soft_labels:
        return "sparse_categorical_crossentropy"
    return keras.losses.CategoricalCrossentropy(label_smoothing=t.label_smoothing)
