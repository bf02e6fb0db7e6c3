"""`animalcnn export`: three formats, each checked against model.keras by its runtime."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

FORMATS = [("savedmodel", "model_savedmodel"), ("tflite", "model.tflite"), ("onnx", "model.onnx")]


@pytest.mark.parametrize(("fmt", "name"), FORMATS)
def test_each_format_passes_its_parity_check(cli, run_copy: Path, fmt: str, name: str):
    code, out, err = cli("export", run_copy, "--format", fmt)
    assert code == 0, err
    artifact = run_copy / "export" / name
    assert artifact.exists() and f"wrote {artifact}" in out
    delta = float(re.search(r"max \|Δp\| = (\S+) against model.keras \(ok\)", out).group(1))
    assert 0 <= delta <= 1e-3
    hidden = sorted(p.name for p in (run_copy / "export").iterdir() if p.name.startswith("."))
    assert hidden == ([] if fmt == "savedmodel" else [f".{name}.animalcnn-export"])  # no scratch


@pytest.fixture(scope="module")
def augmented_bfloat16(tmp_path_factory, dataset: Path) -> Path:
    """A run trained in mixed bfloat16 with a flip layer: neither may reach an artifact."""
    from typer.testing import CliRunner

    from animalcnn.cli import app

    from .conftest import write_config

    tmp = tmp_path_factory.mktemp("bf16")
    config = write_config(
        tmp / "bf16.yaml",
        dataset,
        tmp / "runs",
        model={"augmentation": [{"type": "flip"}]},
        training={"epochs": 1, "mixed_precision": "bfloat16"},
    )
    try:
        result = CliRunner().invoke(app, ["train", str(config)])
    finally:
        import keras

        keras.mixed_precision.set_global_policy("float32")
    assert result.exit_code == 0, result.stdout + result.stderr
    (run,) = (tmp / "runs").iterdir()
    return run


def test_the_exported_model_is_float32_without_augmentation(augmented_bfloat16: Path):
    """TFLite's and ONNX Runtime's CPU kernels take no bfloat16, and ONNX Runtime refuses
    a flip layer's random ops: the export copy has neither, and the trained weights."""
    from animalcnn.models import for_export
    from animalcnn.run_folder import RunFolder

    model = RunFolder.open(augmented_bfloat16).best_model()
    assert {layer.dtype_policy.name for layer in model.layers} >= {"mixed_bfloat16"}
    copy = for_export(model)
    assert [layer.name for layer in copy.layers] == [
        layer.name for layer in model.layers if layer.name != "aug_0_flip"
    ]
    assert {layer.dtype_policy.name for layer in copy._flatten_layers()} == {"float32"}
    for a, b in zip(copy.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    probs = copy.predict(images, verbose=0)  # float32 against bfloat16's rounding
    np.testing.assert_allclose(probs, model.predict(images, verbose=0), atol=2e-2)
    assert for_export(copy) is copy


@pytest.mark.parametrize(("fmt", "name"), FORMATS[1:])
def test_a_bfloat16_run_with_augmentation_exports(cli, augmented_bfloat16: Path, fmt, name):
    code, out, err = cli("export", augmented_bfloat16, "--format", fmt)
    assert code == 0, err
    assert f"wrote {augmented_bfloat16 / 'export' / name}" in out and "(ok)" in out


def test_an_artifact_that_disagrees_fails(cli, run_copy: Path, tmp_path: Path, monkeypatch):
    from animalcnn.deploy import export

    real = export.predict_with
    monkeypatch.setattr(export, "predict_with", lambda *a: real(*a) + 0.01)
    code, out, _ = cli("export", run_copy, "--format", "tflite", "--out", tmp_path / "m.tflite")
    assert code == 1 and "above 0.001" in out and (tmp_path / "m.tflite").exists()
    code, _, err = cli("export", run_copy, "--format", "coreml")
    assert code == 2 and "--format coreml: one of savedmodel, tflite, onnx" in err


def test_export_never_replaces_what_it_did_not_write(
    cli, run_copy: Path, tmp_path: Path, monkeypatch
):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    before = sorted(p.name for p in run_copy.iterdir())
    monkeypatch.chdir(mine)
    for target, why in (
        (mine, "a folder that is not a savedmodel export of animalcnn's"),
        (Path("."), "a folder that is not a savedmodel export of animalcnn's"),
        (run_copy, "the run folder, a folder above it or / is never an export target"),
        (run_copy.parent, "the run folder, a folder above it or / is never an export target"),
        (Path("/"), "the run folder, a folder above it or / is never an export target"),
        (run_copy / "model.keras", "a file that is not a savedmodel export of animalcnn's"),
    ):
        code, out, err = cli("export", run_copy, "--out", target)
        assert code == 2 and f"error: --out {target}: {why}" in err, (target, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in out + err
    assert (mine / "notes.txt").read_text() == "keep me" and len(list(mine.iterdir())) == 1
    assert sorted(p.name for p in run_copy.iterdir()) == before
    fake = tmp_path / "m.tflite"
    fake.write_text("someone else's")
    code, _, err = cli("export", run_copy, "--format", "tflite", "--out", fake)
    assert code == 2 and "a file that is not a tflite export of animalcnn's" in err
    assert fake.read_text() == "someone else's"
    ours = tmp_path / "ours.tflite"
    for _ in range(2):  # an export of ours is replaced by the next
        code, _, err = cli("export", run_copy, "--format", "tflite", "--out", ours)
        assert code == 0, err
    import shutil

    elsewhere = Path(shutil.copy(ours, tmp_path / "elsewhere.tflite"))  # same format, not ours
    ours.write_bytes(ours.read_bytes() + b"edited")  # ours, then changed by someone
    for path in (elsewhere, ours):
        before = path.read_bytes()
        code, _, err = cli("export", run_copy, "--format", "tflite", "--out", path)
        assert code == 2 and "a file that is not a tflite export of animalcnn's" in err
        assert path.read_bytes() == before


def test_a_full_disk_is_one_line_and_leaves_no_scratch(
    cli, run_copy: Path, tmp_path: Path, monkeypatch
):
    import errno

    import keras

    def full(self, path, **kwargs):
        Path(path).mkdir()
        (Path(path) / "variables.data").write_bytes(b"\0" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(keras.Model, "export", full)
    target = tmp_path / "out" / "saved"
    code, out, err = cli("export", run_copy, "--out", target)
    assert code == 2 and f"error: {target.parent}: disk full while writing the savedmodel" in err
    assert len(err.strip().splitlines()) == 1 and list(target.parent.iterdir()) == []


def test_exporting_an_unfinished_run_warns(cli, run_copy: Path, tmp_path: Path):
    import json

    metrics = json.loads((run_copy / "metrics.json").read_text())
    (run_copy / "metrics.json").write_text(json.dumps({**metrics, "status": "interrupted"}))
    code, _, err = cli("export", run_copy, "--format", "onnx", "--out", tmp_path / "m.onnx")
    assert code == 0 and f"warning: {run_copy} is interrupted: exporting its best" in err


def _four_axis_pool(path: Path, op: str, pads: list[int] | None) -> None:
    """A graph as jax2onnx writes a 2x2 pool of an NHWC tensor: Unsqueeze, Unsqueeze,
    a pool over all four axes (kernel [1, 2, 2, 1]), Squeeze; then a Relu."""
    import onnx
    from onnx import TensorProto, helper

    axes = [helper.make_tensor(f"axes{i}", TensorProto.INT64, [1], [0]) for i in range(3)]
    pool = {"kernel_shape": [1, 2, 2, 1], "strides": [1, 2, 2, 1]}
    if pads:
        pool["pads"] = pads
    nodes = [
        helper.make_node("Unsqueeze", ["x", "axes0"], ["u0"]),
        helper.make_node("Unsqueeze", ["u0", "axes1"], ["u1"]),
        helper.make_node(op, ["u1"], ["p"], **pool),
        helper.make_node("Squeeze", ["p", "axes2"], ["s"]),
        helper.make_node("Relu", ["s"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "pool",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6, 6, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 3, 3])],
        axes,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


@pytest.mark.parametrize(
    ("op", "pads"),
    [("MaxPool", None), ("AveragePool", None), ("MaxPool", [0, 0, 0, 0, 0, 1, 1, 0])],
)
def test_four_axis_pools_are_rewritten_as_spatial_ones(tmp_path: Path, op, pads):
    """What JAX's ONNX export needs: onnxruntime refuses the pool jax2onnx writes and
    runs the rewritten one, with the numbers of a 2x2 pool over height and width."""
    onnxruntime = pytest.importorskip("onnxruntime")
    from animalcnn.deploy.export import pools_over_spatial_axes

    path = tmp_path / "scratch" / "m.onnx"
    path.parent.mkdir()
    _four_axis_pool(path, op, pads)
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype(np.float32)
    with pytest.raises(Exception, match="pooling size|Unsupported"):
        onnxruntime.InferenceSession(str(path)).run(None, {"x": x})
    assert pools_over_spatial_axes(path) == 1
    (y,) = onnxruntime.InferenceSession(str(path)).run(None, {"x": x})
    padded = np.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)), constant_values=-np.inf) if pads else x
    side = padded.shape[1] // 2
    windows = padded[:, : 2 * side, : 2 * side].reshape(2, side, 2, side, 2, 3)
    pooled = windows.max(axis=(2, 4)) if op == "MaxPool" else windows.mean(axis=(2, 4))
    np.testing.assert_allclose(y, np.maximum(pooled, 0), atol=1e-6)
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.onnx"]  # one file


def test_a_jax_run_exports_onnx_that_matches(dataset: Path, tmp_path: Path):
    """On JAX without TensorFlow, through jax2onnx (where `animalcnn[onnx-jax]` is
    installed) and the pool rewrite."""
    import os
    import subprocess
    import sys

    from animalcnn import backends

    if not (backends.installed("jax") and backends.installed("jax2onnx")):
        pytest.skip("jax2onnx is not installed: pip install 'animalcnn[onnx-jax]'")
    from .conftest import write_config

    config = write_config(
        tmp_path / "j.yaml",
        dataset,
        tmp_path / "runs",
        model={"arch": "mid", "params": {"filters": [8, 16], "dense": 16}},
        training={"epochs": 1, "backend": "jax"},
    )
    support = Path(__file__).parent / "support"  # its sitecustomize blocks tensorflow
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "PYTHONPATH": str(support),
        "CUDA_VISIBLE_DEVICES": "",
    }
    for args in (("train", config), ("export", "RUN", "--format", "onnx")):
        if args[0] == "export":
            (run,) = (tmp_path / "runs").iterdir()
            args = ("export", run, "--format", "onnx")
        done = subprocess.run(
            [sys.executable, "-m", "animalcnn", *map(str, args)],
            capture_output=True,
            text=True,
            env=env,
            timeout=400,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    delta = float(re.search(r"max \|Δp\| = (\S+) against", done.stdout).group(1))
    assert delta <= 1e-4 and (run / "export" / "model.onnx").is_file()
