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
    hidden = sorted(p.name for p in (run_copy / "export").iterdir() if p.name.startswith("."))
    assert hidden == ([] if fmt == "savedmodel" else [f".{name}.animalcnn-export"])  # no scratch


def test_an_artifact_that_disagrees_fails(cli, run_copy: Path, tmp_path: Path, monkeypatch):
    from animalcnn.deploy import export

    real = export.predict_with
    monkeypatch.setattr(export, "predict_with", lambda *a: real(*a) + 0.01)
    code, out, _ = cli("export", run_copy, "--format", "tflite", "--out", tmp_path / "m.tflite")
    assert code == 1 and "above 0.001" in out and (tmp_path / "m.tflite").exists()
    code, _, err = cli("export", run_copy, "--format", "coreml")
    assert code == 2 and "--format coreml: one of savedmodel, tflite, onnx" in err


def test_export_never_replaces_what_it_did_not_write(cli, run_copy: Path, tmp_path: Path,
                                                      monkeypatch):  # fmt: skip
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


def test_a_full_disk_is_one_line_and_leaves_no_scratch(cli, run_copy: Path, tmp_path: Path,
                                                       monkeypatch):  # fmt: skip
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
