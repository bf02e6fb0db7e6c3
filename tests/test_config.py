"""The config schema: defaults, overrides, and one-line errors naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from animalcnn.config import ExperimentConfig
from animalcnn.errors import ConfigError
from animalcnn.models.configs import load_config

from .conftest import CONFIGS


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def error_of(path: Path, overrides: list[str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_seed_configs_carry_the_notebook_settings():
    mid = load_config(CONFIGS / "mid.yaml")
    assert (mid.data.img_size, mid.data.batch_size, mid.data.val_fraction) == (100, 258, 0.15)
    assert (mid.training.epochs, mid.training.learning_rate) == (30, 1e-3)
    assert (mid.training.lr_patience, mid.training.val_patience) == (5, 10)
    assert load_config(CONFIGS / "inception.yaml").training.learning_rate == 1e-4
    aug = load_config(CONFIGS / "resnet_aug.yaml").model.augmentation
    assert [a["type"] for a in aug] == ["flip", "rotation", "zoom", "noise"]
    assert (aug[1]["factor"], aug[2]["factor"], aug[3]["stddev"]) == (0.1, 0.2, 0.01)


def test_defaults_fill_in_and_params_are_resolved(tmp_path):
    cfg = load_config(write(tmp_path, "model: {arch: mid}\n"))
    assert cfg.name == "exp"  # the file's stem
    assert cfg.training.lr_factor == 0.2
    assert cfg.model.params == {"filters": [32, 64, 128], "dense": 128, "dropout": 0.25}
    assert cfg.transfer is None


def test_overrides_are_yaml_scalars_and_validated(tmp_path):
    path = write(tmp_path, "model: {arch: mid}\n")
    cfg = load_config(
        path, ["training.epochs=5", "data.dir=~/animals", "model.params.dense=64", "name=x"]
    )
    assert cfg.training.epochs == 5
    assert cfg.data.dir == Path("~/animals").expanduser()
    assert cfg.model.params["dense"] == 64
    assert "training.epochs: input should be greater than 0" in error_of(
        path, ["training.epochs=0"]
    )


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(CONFIGS / "resnet_aug.yaml")
    again = load_config(write(tmp_path, cfg.to_yaml()))
    assert again == cfg.model_copy(update={"name": cfg.name})


@pytest.mark.parametrize(
    ("text", "overrides", "expected"),
    [
        ("training: {epochs: -3}\n", None, "training.epochs: input should be greater than 0"),
        ("training: {epochs: many}\n", None, "training.epochs: input should be a valid integer"),
        ("training: {epoch: 3}\n", None, "training.epoch: unknown field (did you mean 'epochs'?)"),
        ("dataa: {}\n", None, "dataa: unknown field (did you mean 'data'?)"),
        ("data: {val_fraction: 1.5}\n", None, "data.val_fraction: input should be less than 1"),
        ("training: {learning_rate: 0}\n", None, "training.learning_rate: input should be greater"),
        ("model: {arch: vgg16}\n", None, "model.arch: unknown architecture 'vgg16'; known: "),
        ("model: {arch: mid, params: {widht: 3}}\n", None, "model.params.widht: unknown field"),
        ("model: {arch: inception}\ndata: {img_size: 45}\n", None, "needs at least 46"),
        ("model: {arch: mid}\ndata: {img_size: 35}\n", None, "needs at least 36"),
        ("model: {arch: mid}\ntransfer: {strategy: partial}\n", None, "transfer: only valid"),
        (
            "model: {augmentation: [{type: blur}]}\n",
            None,
            "model.augmentation.0: unknown type 'blur'",
        ),
        ("training: {epochs: 3\n", None, "invalid YAML"),
        ("- a\n- b\n", None, "expected a mapping"),
        ("{}\n", ["training.epoch=3"], "--set training.epoch=3: unknown field 'training.epoch'"),
        ("{}\n", ["nothing"], "expected KEY=VALUE"),
    ],
)
def test_bad_configs_name_file_and_field(tmp_path, text, overrides, expected):
    message = error_of(write(tmp_path, text), overrides)
    assert message.startswith("--set " if overrides else str(tmp_path / "exp.yaml"))
    assert expected in message


def test_yaml_syntax_error_gives_the_line(tmp_path):
    message = error_of(write(tmp_path, "name: a\ntraining:\n  epochs: [3\n"))
    assert "line " in message and "invalid YAML" in message


def test_missing_config_file(tmp_path):
    assert error_of(tmp_path / "nope.yaml") == f"{tmp_path / 'nope.yaml'}: config file not found"


def test_smallest_input_follows_the_params(tmp_path):
    path = write(tmp_path, "model: {arch: mid, params: {filters: [8, 16]}}\ndata: {img_size: 16}\n")
    assert load_config(path).data.img_size == 16
    assert "needs at least 16" in error_of(path, ["data.img_size=15"])
    path = write(tmp_path, "model: {arch: inception, params: {blocks: 5}}\n")
    assert "needs at least 202" in error_of(path)  # 100 holds 4 blocks, not 5


def test_every_option_has_a_default():
    from pydantic import BaseModel

    def required(model: type[BaseModel], prefix: str = "") -> list[str]:
        """Every field below `model` that has no default, by its dotted name."""
        found = []
        for name, field in model.model_fields.items():
            if field.is_required():
                found.append(prefix + name)
            kinds = [field.annotation, *getattr(field.annotation, "__args__", ())]
            for kind in kinds:
                if isinstance(kind, type) and issubclass(kind, BaseModel):
                    found += required(kind, f"{prefix}{name}.")
        return found

    assert required(ExperimentConfig) == []
    assert len(ExperimentConfig().model_dump()) >= 6  # every section, from defaults alone
    cfg = ExperimentConfig()
    assert cfg.data.batch_size == 258 and cfg.seed == 42 and cfg.model.arch == "mid"


def test_exponents_without_a_dot_are_numbers(tmp_path):
    path = write(tmp_path, "training: {learning_rate: 1e-4}\n")
    assert load_config(path).training.learning_rate == 1e-4
    assert load_config(path, ["training.learning_rate=3e-5"]).training.learning_rate == 3e-5
