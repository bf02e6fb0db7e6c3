"""`animalcnn export`: three formats, each checked against model.keras by its runtime."""

from __future__ import annotations

import re
from pathlib import Path

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
    assert not [p for p in (run_copy / "export").iterdir() if p.name.startswith(".")]


def test_an_artifact_that_disagrees_fails(cli, run_copy: Path, tmp_path: Path, monkeypatch):
    from animalcnn.deploy import export

    real = export.predict_with
    monkeypatch.setattr(export, "predict_with", lambda *a: real(*a) + 0.01)
    code, out, _ = cli("export", run_copy, "--format", "tflite", "--out", tmp_path / "m.tflite")
    assert code == 1 and "above 0.001" in out and (tmp_path / "m.tflite").exists()
    code, _, err = cli("export", run_copy, "--format", "coreml")
    assert code == 2 and "--format coreml: one of savedmodel, tflite, onnx" in err
