"""The documentation site builds strictly (a broken link or a page missing from the
navigation fails), and its generated reference has every command, config option,
architecture and augmentation of the code."""

from __future__ import annotations

import html
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from animalcnn.config.schema import ExperimentConfig
from animalcnn.models import augmentation, registry

from .conftest import ROOT


def options(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every option of a config, by its dotted name, nested sections included."""
    found = []
    for name, field in model.model_fields.items():
        found.append(f"{prefix}{name}")
        kinds = getattr(field.annotation, "__args__", (field.annotation,))
        for kind in kinds:
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                found += options(kind, f"{prefix}{name}.")
    return found


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(out)]
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    built = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
    assert built.returncode == 0, built.stdout + built.stderr
    return out


def page(site: Path, name: str) -> str:
    return html.unescape((site / name / "index.html").read_text())


def test_every_config_option_is_in_the_reference(site: Path):
    text = page(site, "reference/config")
    listed = options(ExperimentConfig)
    assert len(listed) > 60 and "training.ema.decay" in listed
    assert [o for o in listed if f"<code>{o}</code>" not in text] == []


def test_every_command_architecture_and_augmentation_is_in_the_reference(site: Path):
    from typer.main import get_command

    from animalcnn.cli import app

    commands = page(site, "reference/cli")
    root = get_command(app)
    names = [f"animalcnn {n}" for n in root.commands]
    names += [f"animalcnn data {n}" for n in root.commands["data"].commands]
    assert [n for n in names if f"<code>{n}</code>" not in commands] == []
    assert "--where" in commands and "--schema" in commands
    models = page(site, "reference/models")
    for name in registry.names():
        params = registry.get(name).params.model_fields
        assert f"<code>{name}</code>" in models
        assert all(f"<code>model.params.{p}</code>" in models for p in params), name
    assert all(f"<code>{name}</code>" in models for name in augmentation.names())


def test_the_home_page_is_the_readme_and_the_guide_is_linked(site: Path):
    home = page(site, "")
    assert "make demo" in home and 'href="guide/sweeps/"' in home
    assert (site / "guide" / "sweeps" / "index.html").is_file()
