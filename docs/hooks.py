"""mkdocs hook: the pages that are generated, not written, so they cannot drift from the
code: the home page (the README, its links made the site's), the command reference (the
Typer app), the config reference (the config's JSON Schema, itself generated from the
pydantic models) and the architectures and augmentations (the registries)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
GENERATED = {
    "index.md": lambda: home(),
    "reference/cli.md": lambda: cli_reference(),
    "reference/config.md": lambda: config_reference(),
    "reference/models.md": lambda: models_reference(),
}


def on_files(files: Files, config: Any) -> Files:
    for path, page in GENERATED.items():
        files.append(File.generated(config, path, content=page()))
    return files


def home() -> str:
    """The README, with its links into docs/ made the site's own."""
    text = (ROOT / "README.md").read_text()
    return re.sub(r"\]\(docs/", "](", text)


def cell(text: Any) -> str:
    """`text` safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def cli_reference() -> str:
    from animalcnn.cli import app

    root = typer.main.get_command(app)
    lines = [
        "# Commands",
        "",
        "Generated from the `animalcnn` command itself; "
        "`animalcnn COMMAND --help` prints the same.",
        "",
    ]
    lines += _command(root, ["animalcnn"])
    return "\n".join(lines) + "\n"


def _command(command: Any, path: list[str]) -> list[str]:
    """A command's section (Typer's own click classes: help, usage, parameters, examples),
    then its subcommands'."""
    name = " ".join(path)
    ctx = command.context_class(command, info_name=name)
    lines = [f"## `{name}`", "", command.help or "", "", "```", command.get_usage(ctx), "```", ""]
    params = [p for p in command.params if p.name != "help"]
    if params:
        lines += ["| argument or option | value | default | meaning |", "|---|---|---|---|"]
        for p in params:
            option = p.param_type_name == "option"
            names = ", ".join(p.opts) if option else (p.metavar or p.name.upper())
            value = "flag" if getattr(p, "is_flag", False) else (p.metavar or "")
            default = getattr(p.default, "value", p.default)
            default = "" if default in (None, (), [], False) else f"`{default}`"
            lines.append(
                f"| `{cell(names)}` | {cell(value)} | {cell(default)} | {cell(p.help or '')} |"
            )
        lines.append("")
    if command.epilog:
        lines += ["```", command.epilog.strip().replace("\b\n", ""), "```", ""]
    if hasattr(command, "commands"):
        for sub in sorted(command.commands):
            lines += _command(command.commands[sub], [*path, sub])
    return lines


def _type(prop: dict[str, Any]) -> str:
    """A schema property's type, as a person writes it in YAML."""
    if "$ref" in prop:
        return prop["$ref"].rsplit("/", 1)[-1]
    if "enum" in prop:
        return " | ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    if "anyOf" in prop:
        return " or ".join(_type(p) for p in prop["anyOf"])
    if prop.get("type") == "array":
        return f"list of {_type(prop.get('items', {}))}"
    return {
        "integer": "int",
        "number": "float",
        "string": "str",
        "boolean": "bool",
        "null": "null",
        "object": "mapping",
    }.get(prop.get("type", ""), "any")


def _range(prop: dict[str, Any]) -> str:
    bounds = {
        "minimum": ">=",
        "exclusiveMinimum": ">",
        "maximum": "<=",
        "exclusiveMaximum": "<",
        "minItems": "items >=",
        "maxItems": "items <=",
    }
    found = [f"{sign} {prop[key]}" for key, sign in bounds.items() if key in prop]
    for alt in prop.get("anyOf", []):
        found += [f"{sign} {alt[key]}" for key, sign in bounds.items() if key in alt]
    return ", ".join(found)


def _default(prop: dict[str, Any], required: bool) -> str:
    if "default" in prop:
        return f"`{prop['default']}`" if prop["default"] != "" else '`""`'
    if required:
        return "required"
    return "its options' defaults" if "$ref" in prop else "empty"


def _options(model: dict[str, Any], defs: dict[str, Any], prefix: str) -> list[str]:
    """One row per option of `model`, a nested section's options after it by dotted name."""
    rows, nested = [], []
    required = set(model.get("required", []))
    for name, prop in model.get("properties", {}).items():
        key = f"{prefix}{name}"
        default = _default(prop, name in required)
        rows.append(
            f"| `{key}` | {cell(_type(prop))} | {cell(default)} | "
            f"{cell(_range(prop))} | {cell(prop.get('description', ''))} |"
        )
        refs = [prop] + prop.get("anyOf", [])
        for ref in (r["$ref"].rsplit("/", 1)[-1] for r in refs if "$ref" in r):
            if defs[ref].get("properties"):
                nested.append((key, defs[ref]))
    for key, sub in nested:
        rows += _options(sub, defs, f"{key}.")
    return rows


TABLE = ["| option | type | default | range | meaning |", "|---|---|---|---|---|"]


def config_reference() -> str:
    from animalcnn.schemas import config_schema

    schema = config_schema()
    defs = schema["$defs"]
    lines = [
        "# Config options",
        "",
        "Every option of an experiment's YAML file, generated from the config schema "
        "(`animalcnn config --schema` prints it as JSON Schema; `animalcnn config FILE` "
        "prints a file with every default filled in). `model.params` depends on "
        "`model.arch` and `model.augmentation` items on their `type`: see "
        "[architectures and augmentations](models.md).",
        "",
        *TABLE,
    ]
    lines += _options(schema, defs, "")
    return "\n".join(lines) + "\n"


def models_reference() -> str:
    from animalcnn.models import augmentation, registry
    from animalcnn.schemas import config_schema

    defs = config_schema()["$defs"]
    lines = [
        "# Architectures and augmentations",
        "",
        "Generated from the registries (`animalcnn models` prints the same). An "
        "architecture's options go under `model.params`; an augmentation is an item of "
        "`model.augmentation`, its `type` and its options.",
        "",
        "## Architectures",
        "",
    ]
    for name in registry.names():
        arch = registry.get(name)
        kind = "pretrained backbone (ImageNet)" if arch.pretrained else "built from scratch"
        lines += [f"### `{name}`", "", f"{arch.description} *{kind.capitalize()}.*", ""]
        options = _options(defs[arch.params.__name__], defs, "model.params.")
        lines += [*TABLE, *options, ""] if options else ["No options of its own.", ""]
    lines += ["## Augmentations", ""]
    for name in augmentation.names():
        model = defs[augmentation.get(name).__name__]
        doc = (augmentation.get(name).__doc__ or "").strip()
        lines += [f"### `{name}`", "", doc, "", *TABLE]
        lines += [r for r in _options(model, defs, "") if not r.startswith("| `type`")]
        lines.append("")
    return "\n".join(lines) + "\n"
