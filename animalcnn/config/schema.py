"""The experiment config schema: the single home of every option and its default.

Every section shares one base (`Section`: unknown keys are errors). A leaf: it imports
nothing else from animalcnn. What depends on the chosen architecture (its own
`model.params`, its smallest input, whether a `transfer` section belongs) and the
augmentation types (registered with their Keras layers in `models`) is checked above
it, by `animalcnn.models.configs`, which attaches the typed options to `model`
(`ModelConfig.options`, `ModelConfig.transforms`) for the builders.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)


def _on_off(value: Any) -> Any:
    # YAML 1.1 reads on/off (and yes/no) as booleans.
    return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


Switch = Annotated[Literal["auto", "on", "off"], BeforeValidator(_on_off)]


class Section(BaseModel):
    """Unknown keys are errors everywhere in a config, types are strict (`true` is not 1,
    `"5"` not 5), and defaults pass the validators too."""

    model_config = ConfigDict(extra="forbid", validate_default=True, strict=True)


# Bounds TensorFlow and NumPy accept (a seed is a 32-bit unsigned integer for NumPy).
MAX_SEED = 2**32 - 1
MAX_COUNT = 1_000_000  # epochs, patiences, batch sizes: beyond any real run
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
RUN_NAME_RULE = "letters, digits, '_', '.' and '-', starting with a letter or digit"


def _run_name(v: str) -> str:
    if not RUN_NAME.match(v):
        raise ValueError(f"{v!r} is not a run name: use {RUN_NAME_RULE}")
    return v


RunName = Annotated[str, AfterValidator(_run_name)]  # a run's (or a sweep's) folder prefix


class DataConfig(Section):
    dir: Path = Field(
        Path("data/demo"), strict=False, description="Folder holding the train and test splits."
    )
    train_split: str = Field("train", description="Sub-folder of class folders to train on.")
    test_split: str = Field("val", description="Sub-folder used as the test split.")
    img_size: int = Field(100, ge=8, le=1024, description="Images are resized to this square.")
    batch_size: int = Field(258, gt=0, le=MAX_COUNT, description="Global batch size.")
    val_fraction: float = Field(
        0.15, gt=0, lt=1, description="Share of train_split held out for validation."
    )
    test_fraction: float = Field(
        0.15,
        gt=0,
        lt=1,
        description="Share of the training images held out as the test split when the "
        "dataset has no test_split folder (class folders at the top, or train_split alone).",
    )
    cache: Literal["memory", "disk", "none"] = Field(
        "memory",
        description="Where decoded uint8 images live: RAM, a reusable file, or decode every epoch.",
    )
    cache_dir: Path = Field(
        Path("~/.cache/animalcnn"), strict=False, description="Folder for data.cache: disk files."
    )
    on_bad_file: Literal["skip", "fail"] = Field(
        "skip", description="A file that does not decode: leave it out with a warning, or stop."
    )

    @field_validator("dir", "cache_dir")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()


class ModelConfig(Section):
    arch: str = Field("mid", description="A registered architecture (animalcnn models).")
    params: dict[str, Any] = Field(
        default_factory=dict, description="The architecture's own options."
    )
    augmentation: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Random transforms applied in training only, in order; each a mapping "
        "with its `type` (animalcnn models lists them) and that type's options.",
    )
    init_from: Path | None = Field(
        None,
        strict=False,
        description="A run folder whose best weights this run starts from: layers matched "
        "by name and shape, the others left freshly initialised.",
    )

    # `params` and `augmentation` as typed objects (the architecture's own options model,
    # the registered augmentation types), attached once when the config is loaded
    # (`models.configs.validate_config`): what the builders receive.
    _options: Any = PrivateAttr(default=None)
    _transforms: Any = PrivateAttr(default=None)

    @field_validator("init_from")
    @classmethod
    def _expand(cls, v: Path | None) -> Path | None:
        return v.expanduser() if v is not None else None

    def attach(self, options: BaseModel, transforms: list[BaseModel]) -> None:
        self._options, self._transforms = options, tuple(transforms)

    @property
    def options(self) -> BaseModel:
        """`params` as the architecture's own validated options."""
        if self._options is None:
            raise RuntimeError("model.params: the config was not loaded (load_config)")
        return self._options

    @property
    def transforms(self) -> tuple[BaseModel, ...]:
        """`augmentation` as the registered types' validated objects, in order."""
        if self._transforms is None:
            raise RuntimeError("model.augmentation: the config was not loaded (load_config)")
        return self._transforms


Schedule = Literal["plateau", "cosine", "onecycle", "constant"]
Tta = Literal["none", "flip", "crops"]  # test-time augmentation's views (evaluation.inference)
SCHEDULE_HELP = (
    "How the learning rate moves, step by step: plateau = cut by lr_factor when val_loss "
    "stalls for lr_patience epochs; cosine = half a cosine down to min_lr over the phase; "
    "onecycle = up from a 25th of the rate over the first 30 % (or warmup_epochs), then a "
    "cosine down to a 10,000th; constant = fixed."
)
WARMUP_HELP = "Epochs of linear warm-up from a tenth of the rate, step by step (not with plateau)."


def _check_warmup(schedule: str, warmup: float, epochs: int, where: str) -> None:
    """Shared by the first phase and the fine-tuning phase."""
    if warmup and schedule == "plateau":
        raise ValueError(
            f"{where}warmup_epochs needs a schedule that runs by step (cosine, onecycle or "
            "constant), not plateau"
        )
    if warmup >= epochs:
        raise ValueError(f"{where}warmup_epochs ({warmup:g}) must be less than epochs ({epochs})")


class MixUp(Section):
    """Blend two images and their labels: x = l*a + (1-l)*b, l ~ Beta(alpha, alpha)."""

    type: Literal["mixup"]
    alpha: float = Field(0.2, gt=0, le=10, description="Beta(alpha, alpha) draws the blend.")
    prob: float = Field(1.0, gt=0, le=1, description="Share of batches it is applied to.")


class CutMix(Section):
    """Paste a box of another image, labels in proportion to its area."""

    type: Literal["cutmix"]
    alpha: float = Field(1.0, gt=0, le=10, description="Beta(alpha, alpha) draws the area kept.")
    prob: float = Field(1.0, gt=0, le=1, description="Share of batches it is applied to.")


BatchAugmentation = Annotated[MixUp | CutMix, Field(discriminator="type")]


class EmaConfig(Section):
    decay: float = Field(
        0.999, gt=0, lt=1, description="Weight of the running average at each step."
    )


class TrainingConfig(Section):
    epochs: int = Field(20, gt=0, le=MAX_COUNT)
    learning_rate: float = Field(1e-3, gt=0, allow_inf_nan=False)
    optimizer: Literal["adam", "adamw", "sgd", "lion"] = Field(
        "adam", description="adam (the notebook's), adamw, sgd or lion."
    )
    weight_decay: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Decoupled weight decay per step, times the learning rate (e.g. 0.05 "
        "with adamw); never on biases or normalisation scales.",
    )
    momentum: float = Field(0.9, ge=0, lt=1, description="sgd: momentum.")
    nesterov: bool = Field(True, description="sgd: Nesterov momentum.")
    clipnorm: float | None = Field(
        None, gt=0, description="Clip each gradient to this norm (none: no clipping)."
    )
    gradient_accumulation_steps: int = Field(
        1, ge=1, le=1024, description="Batches whose gradients are summed per update."
    )
    schedule: Schedule = Field("plateau", description=SCHEDULE_HELP)
    warmup_epochs: float = Field(0.0, ge=0, le=MAX_COUNT, description=WARMUP_HELP)
    label_smoothing: float = Field(
        0.0, ge=0, le=0.5, description="Share of each target spread over the classes (0-0.5)."
    )
    tta: Tta = Field(
        "none",
        description="Validate on the mean of each image's views: flip (and its mirror), "
        "crops (and four shifted copies); val_loss and val_accuracy are then theirs.",
    )
    batch_augmentation: list[BatchAugmentation] = Field(
        default_factory=list,
        description="mixup and/or cutmix on the training batches (one drawn per batch "
        "when both are listed).",
    )
    ema: EmaConfig | None = Field(
        None,
        description="Keep an exponential moving average of the weights; validation, the "
        "best checkpoint and model.keras use it.",
    )
    lr_patience: int = Field(
        5, ge=0, le=MAX_COUNT, description="ReduceLROnPlateau patience on val_loss."
    )
    lr_factor: float = Field(0.2, gt=0, lt=1)
    lr_min_delta: float = Field(1e-5, ge=0)
    min_lr: float = Field(0.0, ge=0)
    val_patience: int = Field(
        10, ge=1, le=MAX_COUNT, description="EarlyStopping patience on val_loss."
    )
    resume_checkpoints: bool = Field(
        True,
        description="Save the full training state after every epoch, so that an interrupted "
        "run can be resumed (train --resume); costs a model save per epoch.",
    )
    deterministic: bool = Field(
        True, description="Deterministic ops: identical reruns, at some cost in GPU speed."
    )
    backend: Literal["auto", "tensorflow", "jax", "torch"] = Field(
        "auto",
        description="The Keras backend: auto = the KERAS_BACKEND environment variable if "
        "set, else TensorFlow if installed, else JAX, else PyTorch.",
    )
    mixed_precision: Annotated[
        Literal["auto", "on", "off", "float16", "bfloat16"], BeforeValidator(_on_off)
    ] = Field(
        "auto",
        description="Compute in 16 bits, variables, softmax and loss in float32. auto: "
        "float16 on a CUDA GPU, bfloat16 on a CPU with AMX-BF16 matrix units, else off; "
        "on: the device's 16-bit type (float16 on a GPU, else bfloat16).",
    )
    jit_compile: Switch = Field(
        "auto",
        description="XLA compilation; auto = on a GPU when deterministic is false "
        "(Keras turns XLA off under op determinism).",
    )

    @model_validator(mode="after")
    def _xla_needs_nondeterminism(self) -> TrainingConfig:
        if self.jit_compile == "on" and self.deterministic:
            raise ValueError(
                "jit_compile: on needs training.deterministic: false "
                "(Keras turns XLA off under op determinism)"
            )
        return self

    @model_validator(mode="after")
    def _recipe(self) -> TrainingConfig:
        _check_warmup(self.schedule, self.warmup_epochs, self.epochs, "")
        types = [b.type for b in self.batch_augmentation]
        if len(set(types)) != len(types):
            raise ValueError("batch_augmentation: each of mixup and cutmix at most once")
        return self

    @property
    def soft_labels(self) -> bool:
        """Whether targets are one-hot rows (smoothed or mixed) rather than class indices."""
        return self.label_smoothing > 0 or bool(self.batch_augmentation)


class PhaseConfig(Section):
    """The second fine-tuning phase, with the whole backbone unfrozen."""

    epochs: int = Field(50, gt=0, le=MAX_COUNT)
    learning_rate: float = Field(1e-5, gt=0, allow_inf_nan=False)
    lr_patience: int = Field(2, ge=0, le=MAX_COUNT)
    val_patience: int = Field(2, ge=1, le=MAX_COUNT)
    schedule: Schedule = Field("plateau", description=SCHEDULE_HELP)
    warmup_epochs: float = Field(0.0, ge=0, le=MAX_COUNT, description=WARMUP_HELP)
    backbone_lr_factor: float = Field(
        1.0,
        gt=0,
        le=1,
        description="The backbone's rate as a share of learning_rate (the head's), e.g. 0.1: "
        "fastai's discriminative rates; 1: one rate for all.",
    )

    @model_validator(mode="after")
    def _warmup(self) -> PhaseConfig:
        _check_warmup(self.schedule, self.warmup_epochs, self.epochs, "")
        return self


class TransferConfig(Section):
    strategy: Literal["transfer", "finetune", "partial"] = Field(
        "transfer",
        description="transfer: backbone frozen; finetune: head, then all; "
        "partial: last layers trainable.",
    )
    weights: str = Field("imagenet", description="imagenet, none (random init) or a file path.")
    unfreeze_last: int = Field(
        10, ge=1, le=MAX_COUNT, description="partial: backbone layers left trainable."
    )
    freeze_batchnorm: bool = Field(
        True, description="partial: keep BatchNormalization among the unfrozen layers frozen."
    )
    finetune: PhaseConfig = Field(default_factory=PhaseConfig)


class DistributeConfig(Section):
    strategy: Literal["auto", "none", "mirrored", "multi_worker"] = Field(
        "auto",
        description="auto: mirrored over this machine's GPUs when it has several, else none; "
        "multi_worker: across machines, from the TF_CONFIG environment variable (every "
        "worker runs the same command; the chief writes the run folder).",
    )
    devices: list[str] | None = Field(
        None, description="mirrored: the devices to use, e.g. ['/gpu:0', '/gpu:1'] (default: all)."
    )
    virtual_cpus: int = Field(
        0,
        ge=0,
        le=256,
        description="Split the CPU into this many logical devices (try a strategy on CPU).",
    )


class OutputConfig(Section):
    runs_dir: Path = Field(Path("runs"), strict=False, description="Where run folders are created.")
    tensorboard: bool = Field(True, description="Write TensorBoard logs into the run folder.")


class ExperimentConfig(Section):
    name: RunName = Field("experiment", description=f"The run folder's prefix: {RUN_NAME_RULE}.")
    seed: int = Field(
        42, ge=0, le=MAX_SEED, description="Seeds the split, shuffling and initialisation."
    )
    tags: list[Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^,;\s]+$")]] = Field(
        default_factory=list,
        description="Short labels to filter runs by (compare --where tag=NAME).",
    )
    notes: str = Field("", max_length=2000, description="Free text shown with the run.")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    transfer: TransferConfig | None = Field(None, description="Only for pretrained architectures.")
    distribute: DistributeConfig = Field(default_factory=DistributeConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)
