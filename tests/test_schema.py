"""The JSON Schemas of config and sweep files: generated from the models the loaders
validate with, kept in the package, named by every shipped file, and as strict as
loading is on what it can see."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from animalcnn.errors import ConfigError
from animalcnn.models.configs import load_config
from animalcnn.schemas import (
    CONFIG_SCHEMA,
    SWEEP_SCHEMA,
    config_schema,
    dumps,
    sweep_schema,
)

from .conftest import CONFIGS

SHIPPED = sorted([*CONFIGS.glob("*.yaml"), *(CONFIGS / "recipes").glob("*.yaml")])
SWEEPS = sorted((CONFIGS / "sweeps").glob("*.yaml"))
SCHEMA_LINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$")


def validator(path: Path) -> jsonschema.Draft202012Validator:
    schema = json.loads(path.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_packaged_schemas_are_what_the_models_generate(cli):
    assert CONFIG_SCHEMA.read_text() == dumps(config_schema()), "run: make schemas"
    assert SWEEP_SCHEMA.read_text() == dumps(sweep_schema()), "run: make schemas"
    code, out, _ = cli("config", "--schema")
    assert code == 0 and out == CONFIG_SCHEMA.read_text()
    code, out, _ = cli("sweep", "--schema")
    assert code == 0 and out == SWEEP_SCHEMA.read_text()


@pytest.mark.parametrize(
    ("files", "schema"),
    [(SHIPPED, CONFIG_SCHEMA), (SWEEPS, SWEEP_SCHEMA)],
    ids=["configs", "sweeps"],
)
def test_every_shipped_file_names_its_schema_and_meets_it(files: list[Path], schema: Path):
    check = validator(schema)
    assert len(files) >= 3
    for path in files:
        first = path.read_text().splitlines()[0]
        named = SCHEMA_LINE.match(first)
        assert named, f"{path}: first line is not the schema line"
        assert (path.parent / named.group(1)).resolve() == schema.resolve(), path
        problems = [e.message for e in check.iter_errors(yaml.safe_load(path.read_text()))]
        assert problems == [], f"{path}: {problems}"


BAD = {
    "an unknown option": ({"training": {"epoch": 3}}, "training.epoch: unknown field"),
    "a value out of range": ({"training": {"epochs": 0}}, "training.epochs: input should be"),
    "a wrong type": ({"data": {"img_size": "big"}}, "data.img_size: input should be"),
    "an unknown architecture": ({"model": {"arch": "vgg16"}}, "model.arch: "),
    "an option another architecture has": (
        {"model": {"arch": "mid", "params": {"stages": [64]}}},
        "model.params.stages: unknown field",
    ),
    "the default architecture's option, badly typed": (
        {"model": {"params": {"filters": "wide"}}},
        "model.params.filters: input should be",
    ),
    "an unknown augmentation": (
        {"model": {"augmentation": [{"type": "blur"}]}},
        "model.augmentation.0",
    ),
    "an augmentation option out of range": (
        {"model": {"augmentation": [{"type": "rotation", "factor": 7}]}},
        "model.augmentation.0",
    ),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_a_bad_config_fails_the_schema_as_it_fails_loading(case: str, tmp_path: Path):
    sections, loading_says = BAD[case]
    config = {"name": "bad", **sections}
    errors = list(validator(CONFIG_SCHEMA).iter_errors(config))
    assert errors, f"the schema takes {case}"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as failed:
        load_config(path)
    assert loading_says in str(failed.value)


def test_every_shipped_config_loads():
    names = [load_config(path).name for path in SHIPPED]
    assert "fast" in names and len(set(names)) == len(names) == len(SHIPPED)
