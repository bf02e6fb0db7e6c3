"""The experiment config: the single home of every option and its default.

A config is YAML validated by these pydantic models. `load_config` applies
`--set` overrides, validates, then checks what depends on the chosen
architecture (its own `model.params`, minimum image size, transfer section);
every failure is a `ConfigError` naming the file and the dotted field.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from animalcnn.errors import ConfigError
from animalcnn.models import registry


def _on_off(value: Any) -> Any:
    # YAML 1.1 reads on/off (and yes/no) as booleans.
    return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


Switch = Annotated[Literal["auto", "on", "off"], BeforeValidator(_on_off)]


class Section(BaseModel):
    """Unknown keys are errors everywhere in a config; defaults pass the validators too."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


class DataConfig(Section):
    dir: Path = Field(Path("data/demo"), description="Folder holding the train and test splits.")
    train_split: str = Field("train", description="Sub-folder of class folders to train on.")
    test_split: str = Field("val", description="Sub-folder used as the test split.")
    img_size: int = Field(100, ge=8, le=1024, description="Images are resized to this square.")
    batch_size: int = Field(258, gt=0, description="Global batch size.")
    val_fraction: float = Field(
        0.15, gt=0, lt=1, description="Share of train_split held out for validation."
    )
    cache: Literal["memory", "disk", "none"] = Field(
        "memory",
        description="Where decoded uint8 images live: RAM, a reusable file, or decode every epoch.",
    )
    cache_dir: Path = Field(
        Path("~/.cache/animalcnn"), description="Folder for data.cache: disk files."
    )
    on_bad_file: Literal["skip", "fail"] = Field(
        "skip", description="A file that does not decode: leave it out with a warning, or stop."
    )

    @field_validator("dir", "cache_dir")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()


class Flip(Section):
    type: Literal["flip"]
    mode: Literal["horizontal", "vertical", "horizontal_and_vertical"] = "horizontal"


class Rotation(Section):
    type: Literal["rotation"]
    factor: float = Field(0.1, gt=0, le=1, description="Fraction of a full turn, both ways.")


class Zoom(Section):
    type: Literal["zoom"]
    factor: float = Field(0.2, gt=0, lt=1)


class Translation(Section):
    type: Literal["translation"]
    factor: float = Field(0.1, gt=0, lt=1)


class Contrast(Section):
    type: Literal["contrast"]
    factor: float = Field(0.2, gt=0, le=1)


class Noise(Section):
    type: Literal["noise"]
    stddev: float = Field(0.01, gt=0, description="In units of the [0, 1] pixel scale.")


Augmentation = Annotated[
    Flip | Rotation | Zoom | Translation | Contrast | Noise, Field(discriminator="type")
]


class ModelConfig(Section):
    arch: str = Field("mid", description="A registered architecture (animalcnn models).")
    params: dict[str, Any] = Field(
        default_factory=dict, description="The architecture's own options."
    )
    augmentation: list[Augmentation] = Field(
        default_factory=list, description="Random transforms applied in training only, in order."
    )


class TrainingConfig(Section):
    epochs: int = Field(20, gt=0)
    learning_rate: float = Field(1e-3, gt=0)
    lr_patience: int = Field(5, ge=0, description="ReduceLROnPlateau patience on val_loss.")
    lr_factor: float = Field(0.2, gt=0, lt=1)
    lr_min_delta: float = Field(1e-5, ge=0)
    min_lr: float = Field(0.0, ge=0)
    val_patience: int = Field(10, ge=1, description="EarlyStopping patience on val_loss.")
    resume_checkpoints: bool = Field(
        True,
        description="Save the full training state after every epoch, so that an interrupted "
        "run can be resumed (train --resume); costs a model save per epoch.",
    )
    deterministic: bool = Field(
        True, description="Deterministic ops: identical reruns, at some cost in GPU speed."
    )
    mixed_precision: Switch = Field("auto", description="mixed_float16 compute; auto = on a GPU.")
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


class PhaseConfig(Section):
    """The second fine-tuning phase, with the whole backbone unfrozen."""

    epochs: int = Field(50, gt=0)
    learning_rate: float = Field(1e-5, gt=0)
    lr_patience: int = Field(2, ge=0)
    val_patience: int = Field(2, ge=1)


class TransferConfig(Section):
    strategy: Literal["transfer", "finetune", "partial"] = Field(
        "transfer",
        description="transfer: backbone frozen; finetune: head, then all; "
        "partial: last layers trainable.",
    )
    weights: str = Field("imagenet", description="imagenet, none (random init) or a file path.")
    unfreeze_last: int = Field(10, ge=1, description="partial: backbone layers left trainable.")
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
        0, ge=0, description="Split the CPU into this many logical devices (try a strategy on CPU)."
    )


class OutputConfig(Section):
    runs_dir: Path = Field(Path("runs"), description="Where run folders are created.")
    tensorboard: bool = Field(True, description="Write TensorBoard logs into the run folder.")


class ExperimentConfig(Section):
    name: str = Field("experiment", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    seed: int = Field(42, ge=0, description="Seeds the split, shuffling and initialisation.")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    transfer: TransferConfig | None = Field(None, description="Only for pretrained architectures.")
    distribute: DistributeConfig = Field(default_factory=DistributeConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def arch_params(self) -> BaseModel:
        """`model.params` as the architecture's own validated options."""
        return registry.get(self.model.arch).params.model_validate(self.model.params)


def _closest(name: str, candidates: list[str]) -> str:
    match = difflib.get_close_matches(name, candidates, n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _fields_at(model: type[BaseModel], path: tuple[str | int, ...]) -> list[str]:
    """The valid keys of the section at `path`, for 'did you mean' hints."""
    for part in path:
        field = model.model_fields.get(str(part))
        sub = _section_type(field.annotation) if field is not None else None
        if sub is None:
            return []
        model = sub
    return list(model.model_fields)


def _format_errors(err: ValidationError, root: type[BaseModel], prefix: str = "") -> str:
    e = err.errors()[0]
    loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p in _TAGS))
    field = prefix + ".".join(str(p) for p in loc)
    if e["type"] == "extra_forbidden":
        hint = _closest(str(loc[-1]), _fields_at(root, loc[:-1]))
        msg = f"unknown field{hint}"
    elif e["type"] == "union_tag_invalid":
        msg = f"unknown type {e['input'].get('type')!r}; known: {', '.join(sorted(_TAGS))}"
    else:
        msg = re.sub(r"^(Value error|Assertion failed), ", "", e["msg"])
        msg = msg[0].lower() + msg[1:]
    more = len(err.errors()) - 1
    return f"{field or '(top level)'}: {msg}" + (f" (and {more} more)" if more else "")


_TAGS = {"flip", "rotation", "zoom", "translation", "contrast", "noise"}


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b.c=value` -> (['a', 'b', 'c'], value read as a YAML scalar)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text}: expected KEY=VALUE, e.g. training.epochs=5")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def _apply_override(data: dict[str, Any], text: str) -> None:
    path, value = parse_override(text)
    model: type[BaseModel] | None = ExperimentConfig
    node = data
    for i, part in enumerate(path):
        if model is not None:
            valid = _fields_at(model, ())
            if part not in valid:
                where = ".".join(path[: i + 1])
                raise ConfigError(f"--set {text}: unknown field {where!r}{_closest(part, valid)}")
            if part == "params" and model is ModelConfig:
                model = None  # the architecture's own options, checked after validation
            else:
                model = _section_type(model.model_fields[part].annotation)
        if i == len(path) - 1:
            node[part] = value
        else:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]


def _section_type(annotation: Any) -> type[BaseModel] | None:
    inner = [a for a in getattr(annotation, "__args__", (annotation,)) if a is not None]
    return next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), None)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: {where}invalid YAML: {problem}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return data


def validate_config(data: dict[str, Any], source: str) -> ExperimentConfig:
    """Validate a config mapping; `source` prefixes every error message."""
    try:
        cfg = ExperimentConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{source}: {_format_errors(err, ExperimentConfig)}") from None
    try:
        arch = registry.get(cfg.model.arch)
    except KeyError as err:
        raise ConfigError(f"{source}: model.arch: {err.args[0]}") from None
    try:
        params = arch.params.model_validate(cfg.model.params)
    except ValidationError as err:
        raise ConfigError(
            f"{source}: {_format_errors(err, arch.params, 'model.params.')}"
        ) from None
    cfg.model.params = params.model_dump(mode="json")
    smallest = arch.smallest_input(params)
    if cfg.data.img_size < smallest:
        raise ConfigError(
            f"{source}: data.img_size: {cfg.data.img_size} is too small for "
            f"{arch.name} with these params, which needs at least {smallest}"
        )
    if cfg.transfer is not None and not arch.pretrained:
        raise ConfigError(
            f"{source}: transfer: only valid for a pretrained architecture, not {arch.name!r}"
        )
    if arch.pretrained and cfg.transfer is None:
        cfg.transfer = TransferConfig()
    return cfg


def load_config(path: Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read, override and validate a config file; errors are one-line `ConfigError`s."""
    data = _read_yaml(path)
    data.setdefault("name", path.stem)
    for text in overrides or []:
        _apply_override(data, text)
    return validate_config(data, str(path))
