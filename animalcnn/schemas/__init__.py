"""The JSON Schemas of config and sweep files, for editors (the YAML language server,
PyCharm, check-jsonschema): generated from the pydantic models that `animalcnn train`
and `animalcnn sweep` validate with, and kept here as files that a config's
`# yaml-language-server: $schema=...` line names. A test keeps them equal to what the
models generate; `make schemas` writes them again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

FOLDER = Path(__file__).parent
CONFIG_SCHEMA = FOLDER / "config.schema.json"
SWEEP_SCHEMA = FOLDER / "sweep.schema.json"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
REF = "#/$defs/{model}"


def _inline(kind: type[BaseModel] | TypeAdapter, defs: dict[str, Any]) -> dict[str, Any]:
    """`kind`'s schema, its definitions moved into the shared `defs`."""
    made = (
        kind.json_schema(ref_template=REF)
        if isinstance(kind, TypeAdapter)
        else (kind.model_json_schema(ref_template=REF))
    )
    defs.update(made.pop("$defs", {}))
    return made


def config_schema() -> dict[str, Any]:
    """The config's schema: its sections, with `model.arch` one of the registered
    architectures, `model.params` that architecture's own options (the default
    architecture's where `arch` is not set) and each `model.augmentation` item its type's.
    What needs the data or the built network (the smallest input, `transfer` on a
    pretrained one) is checked when the config is loaded."""
    from animalcnn.config.schema import ExperimentConfig
    from animalcnn.models import augmentation, registry

    defs: dict[str, Any] = {}
    schema = _inline(ExperimentConfig, defs)
    model = defs["ModelConfig"]
    arch = model["properties"]["arch"]
    arch["enum"] = registry.names()
    branches = []
    for name in registry.names():
        params = registry.get(name).params
        defs[params.__name__] = _inline(params, defs)
        has = {"required": ["arch"], "properties": {"arch": {"const": name}}}
        if name == arch["default"]:
            has = {"anyOf": [has, {"not": {"required": ["arch"]}}]}
        then = {"properties": {"params": {"$ref": REF.format(model=params.__name__)}}}
        branches.append({"if": has, "then": then})
    model["allOf"] = branches
    items = _inline(augmentation.list_adapter(), defs)["items"]
    model["properties"]["augmentation"]["items"] = items
    return {
        "$schema": DIALECT,
        **schema,
        "title": "animalcnn experiment config",
        "$defs": dict(sorted(defs.items())),
    }


def sweep_schema() -> dict[str, Any]:
    """A sweep file's schema (its `set` and `parameters` keys are config keys, checked
    against the config when the sweep is loaded)."""
    from animalcnn.sweep.spec import SweepSpec

    defs: dict[str, Any] = {}
    schema = _inline(SweepSpec, defs)
    return {
        "$schema": DIALECT,
        **schema,
        "title": "animalcnn sweep file",
        "$defs": dict(sorted(defs.items())),
    }


def dumps(schema: dict[str, Any]) -> str:
    """As the files hold it: indented, keys in the models' order, a final newline."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
