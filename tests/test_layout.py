"""The package's shape: no import cycles, a leaf schema, private Keras use in one module,
augmentations registered in one place, atomic writes."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Literal

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "animalcnn"


def _imports(path: Path) -> set[str]:
    """The animalcnn modules `path` imports, lazily or not (TYPE_CHECKING blocks aside)."""
    tree = ast.parse(path.read_text())
    type_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {m for m in found if m.startswith("animalcnn.")}


def _unit(module: str) -> str:
    return module.split(".")[1]


def test_no_import_cycles_between_the_top_level_units():
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        unit = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        graph.setdefault(unit, set()).update(_unit(m) for m in _imports(path))
    for unit in graph:
        graph[unit].discard(unit)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(u for u in graph if reaches(u, u, {u}))
    assert not cycles, f"units in an import cycle: {cycles}"
    assert {"config", "data", "models", "training", "evaluation", "reporting", "cli"} <= set(graph)


FLOORS = ["config", "data", "models", "training", "evaluation", "reporting"]  # lowest first
ABOVE = {"sweep", "deploy", "api", "cli"}  # over the floors; never imported by them
ACROSS = {("training", "evaluation")}  # TTA validation uses the one inference path


def test_each_floor_imports_only_the_floors_below_it():
    found = set()
    for path in PACKAGE.rglob("*.py"):
        unit = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for used in {_unit(m) for m in _imports(path)} - {unit}:
            if unit in FLOORS and used in FLOORS and FLOORS.index(used) > FLOORS.index(unit):
                found.add((unit, used))
            if unit in FLOORS and used in ABOVE:
                found.add((unit, used))
    assert found == ACROSS, f"imports up the floors: {sorted(found - ACROSS)}"
    figures = {_unit(m) for p in (PACKAGE / "figures").rglob("*.py") for m in _imports(p)}
    assert not figures & {*FLOORS, *ABOVE, "run_folder"}, figures


def test_the_config_schema_is_a_leaf():
    assert _imports(PACKAGE / "config" / "schema.py") == set()


PRIVATE = (
    "keras.src",
    "tensorflow.python",
    "_call_context_args",
    "_symbolic_build",
    "disable_op_determinism",
    "COUNTERS",
    "_inbound_nodes",
)


def test_private_keras_and_tensorflow_api_is_used_in_one_module():
    users = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        for name in PRIVATE
        if name in path.read_text()
    }
    assert users == {"keras_internals.py", "backends/tensorflow.py"}  # (that one: TF's own)


def test_a_missing_private_name_fails_where_it_is_used_naming_it():
    from animalcnn import keras_internals

    class Layer:
        pass

    with pytest.raises(ImportError) as info:
        keras_internals.require(Layer, "_call_context_args")
    message = str(info.value)
    assert "Layer._call_context_args" in message and keras_internals.TESTED_WITH in message


def test_an_augmentation_is_added_in_one_place(cli, tmp_path: Path):
    """One registered class gives the config type, its validation, the Keras layer and
    its line in `animalcnn models`."""
    from pydantic import Field

    from animalcnn.errors import ConfigError
    from animalcnn.models import augmentation, build_model
    from animalcnn.models.configs import validate_config

    @augmentation.register("dim")
    class Dim(augmentation.Augmentation):
        type: Literal["dim"]
        amount: float = Field(0.5, gt=0, le=1)

        def layer(self, scale, seed, name):
            from keras import layers

            return layers.Rescaling(1 - self.amount, name=name)

    try:
        cfg = validate_config(
            {
                "model": {"arch": "simple", "augmentation": [{"type": "dim"}]},
                "data": {"img_size": 16},
            },
            "x.yaml",
        )
        assert cfg.model.augmentation == [{"type": "dim", "amount": 0.5}]
        model = build_model(cfg, 3)
        assert model.get_layer("aug_0_dim").scale == pytest.approx(0.5)
        with pytest.raises(ConfigError, match=r"model.augmentation.0.amount: input should be"):
            validate_config({"model": {"augmentation": [{"type": "dim", "amount": 2}]}}, "x")
        with pytest.raises(ConfigError, match=r"unknown field \(did you mean 'amount'\?\)"):
            validate_config({"model": {"augmentation": [{"type": "dim", "amont": 1}]}}, "x")
        code, out, _ = cli("models")
        assert code == 0 and "amount=0.5" in out
    finally:
        augmentation._REGISTRY.pop("dim")


def test_atomic_writes_leave_no_temporary_file(tmp_path: Path):
    from animalcnn.atomic import atomic_path, atomic_write

    target = tmp_path / "out.json"
    atomic_write(target, "{}")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_the_config_package_is_a_leaf():
    """Importing the config schema loads nothing of animalcnn but itself and its errors
    (no model registry, no backend)."""
    import subprocess
    import sys

    code = (
        "import sys, animalcnn.config; "
        "print(sorted(m for m in sys.modules if m.startswith('animalcnn')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    loaded = set(eval(done.stdout))  # noqa: S307 (our own printed list)
    assert loaded and all(
        m in ("animalcnn", "animalcnn.errors") or m.startswith("animalcnn.config") for m in loaded
    ), loaded
    assert "keras" not in done.stdout
