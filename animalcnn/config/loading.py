"""Reading a config: YAML, `--set` overrides, and validation against the schema. Every
failure is a one-line `ConfigError` naming the file and the dotted field.

This package is a leaf: what depends on the chosen architecture (its own
`model.params`, its smallest input, whether a `transfer` section belongs, the
registered augmentations) is checked by `animalcnn.models.configs`, above it.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from animalcnn.config.schema import RUN_NAME, RUN_NAME_RULE, ExperimentConfig, ModelConfig
from animalcnn.errors import ConfigError


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


def format_errors(
    err: ValidationError,
    root: type[BaseModel],
    prefix: str = "",
    tagged: dict[str, type[BaseModel]] | None = None,
) -> str:
    """The first error as `dotted.field: message`, with a did-you-mean for unknown keys;
    `tagged` names the types of a tagged union (the augmentations) by their tags."""
    tagged = tagged or {}
    tags = set(tagged)
    e = err.errors()[0]
    loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p in tags))
    field = prefix + ".".join(str(p) for p in loc)
    if e["type"] == "extra_forbidden":
        tag = next((p for p in e["loc"] if isinstance(p, str) and p in tags), None)
        known = list(tagged[tag].model_fields) if tag else _fields_at(root, loc[:-1])
        hint = _closest(str(loc[-1]), known)
        msg = f"unknown field{hint}"
    elif e["type"] == "union_tag_invalid":
        msg = f"unknown type {e['input'].get('type')!r}; known: {', '.join(sorted(tags))}"
    else:
        msg = re.sub(r"^(Value error|Assertion failed), ", "", e["msg"])
        msg = msg[0].lower() + msg[1:]
    more = len(err.errors()) - 1
    return f"{field or '(top level)'}: {msg}" + (f" (and {more} more)" if more else "")


def _shown(text: str) -> str:
    """An override as typed, with control characters escaped (errors stay one line)."""
    return text if text.isprintable() else text.encode("unicode_escape").decode()


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b.c=value` -> (['a', 'b', 'c'], value read as a YAML scalar)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {_shown(text)}: expected KEY=VALUE, e.g. training.epochs=5")
    try:
        value = read_yaml(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_override(data: dict[str, Any], path: list[str], value: Any, text: str) -> None:
    """Set the option at dotted `path` of a config mapping to `value` (an override from the
    command line or the Python API, shown as `text` in its error), each part checked to
    name a field."""
    model: type[BaseModel] | None = ExperimentConfig
    node = data
    for i, part in enumerate(path):
        if model is not None:
            valid = _fields_at(model, ())
            if part not in valid:
                where = ".".join(path[: i + 1])
                hint = _closest(part, valid)
                raise ConfigError(f"--set {_shown(text)}: unknown field {where!r}{hint}")
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


def is_config_key(key: str) -> bool:
    """Whether `key` names a config option by its dotted path (`training.ema.decay`);
    anything under `model.params` does (the architecture's own options)."""
    model: type[BaseModel] | None = ExperimentConfig
    for part in key.split("."):
        if model is None or part not in model.model_fields:
            return False
        if part == "params" and model is ModelConfig:
            return True
        model = _section_type(model.model_fields[part].annotation)
    return True


def _section_type(annotation: Any) -> type[BaseModel] | None:
    inner = [a for a in getattr(annotation, "__args__", (annotation,)) if a is not None]
    return next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), None)


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader that refuses a key given twice in one mapping (plain YAML keeps
    the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


# YAML 1.1 reads `1e-5` (no dot) as text; people write learning rates so: read it as 1.2 does.
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def read_yaml(text: str) -> Any:
    """YAML as plain data: safe tags only, duplicate keys refused."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = read_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
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


def validate_schema(data: dict[str, Any], source: str) -> ExperimentConfig:
    """Validate a config mapping against the schema alone (what every config has; the
    architecture's own checks are `models.configs.validate_config`'s)."""
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{source}: {format_errors(err, ExperimentConfig)}") from None


def read_config(
    path: Path, overrides: list[str] | None = None, runs_dir: Path | None = None
) -> dict[str, Any]:
    """A config file as data, with its name, `--set` overrides and `--runs-dir` applied
    (not validated yet); errors are one-line `ConfigError`s.

    `runs_dir` (the command line's `--runs-dir`) is a path as given, not YAML."""
    data = _read_yaml(path)
    if "name" not in data and not RUN_NAME.match(path.stem):
        raise ConfigError(
            f"{path}: the file name {path.stem!r} is not a run name ({RUN_NAME_RULE}); "
            "rename the file or set `name:` in it"
        )
    data.setdefault("name", path.stem)
    for text in overrides or []:
        keys, value = parse_override(text)
        apply_override(data, keys, value, text)
    if runs_dir is not None:
        data.setdefault("output", {})
        if not isinstance(data["output"], dict):
            raise ConfigError(f"{path}: output: expected a mapping")
        data["output"]["runs_dir"] = str(runs_dir)
    return data
