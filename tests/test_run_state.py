"""A run's numbers and status are the truth: evaluations tied to their checkpoint, dead
runs shown stopped, one process per run folder, full disks, damaged caches, the umask."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from .conftest import write_config


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _edit_metrics(run: Path, **values) -> None:
    metrics = _json(run / "metrics.json")
    metrics.update(values)
    (run / "metrics.json").write_text(json.dumps(metrics))


def test_evaluate_records_the_checkpoint_and_data_it_scored(cli, run_copy: Path):
    code, out, err = cli("evaluate", run_copy)
    assert code == 0, err
    ev = _json(run_copy / "evaluation.json")
    metrics = _json(run_copy / "metrics.json")
    digest = hashlib.sha256((run_copy / "model.keras").read_bytes()).hexdigest()
    assert ev["checkpoint"] == {"epoch": metrics["best_epoch"], "phase": "train", "sha256": digest}
    assert ev["run_status"] == "completed" and ev["own_test_split"] is True
    assert ev["data"].endswith("/val") and ev["evaluated"]
    assert f"wrote {run_copy / 'evaluation.json'}" in out


def test_a_stale_test_figure_is_marked_not_mixed_in(cli, run_copy: Path, tmp_path: Path):
    assert cli("evaluate", run_copy)[0] == 0
    best = _json(run_copy / "metrics.json")["best_epoch"]
    # The run was evaluated, then resumed, and a later epoch became its best checkpoint.
    _edit_metrics(run_copy, best_epoch=best + 5)
    code, out, _ = cli("compare", run_copy, "--csv", tmp_path / "c.csv")
    assert code == 0 and "stale" in out
    row = pd.read_csv(tmp_path / "c.csv").iloc[0]
    assert pd.isna(row["test_accuracy"]) and pd.isna(row["gap"])
    assert row["test_data"] == f"stale: scored epoch {best}, best is now {best + 5}"


def test_evaluating_an_unfinished_run_says_so(cli, run_copy: Path):
    _edit_metrics(run_copy, status="interrupted")
    code, _, err = cli("evaluate", run_copy)
    assert code == 0
    assert f"warning: {run_copy} is interrupted: scoring its best checkpoint so far" in err
    assert _json(run_copy / "evaluation.json")["run_status"] == "interrupted"


def test_other_data_is_kept_beside_the_runs_own_result(cli, run_copy, dataset, tmp_path):
    assert cli("evaluate", run_copy)[0] == 0
    own = (run_copy / "evaluation.json").read_text()
    code, out, err = cli("evaluate", run_copy, "--data", dataset / "train")
    assert code == 0, err
    assert (run_copy / "evaluation.json").read_text() == own  # not replaced
    (other,) = (run_copy / "evaluations").glob("*.json")
    assert other.name.startswith("train-") and (other.with_name(f"{other.stem}_confusion.png"))
    ev = _json(other)
    assert ev["data"] == str(dataset / "train") and ev["images"] == 80
    assert ev["own_test_split"] is False
    code, _, _ = cli("compare", run_copy, "--csv", tmp_path / "c.csv")
    assert pd.read_csv(tmp_path / "c.csv")["test_data"][0] == str(dataset / "val")


def test_a_running_run_whose_process_is_gone_shows_as_stopped(cli, run_copy, tmp_path):
    import socket

    dead = {"host": socket.gethostname(), "pid": 2**22 + 12345, "start": 1}
    _edit_metrics(run_copy, status="running", process=dead)
    for name in ("state.json", "last.keras"):  # it kept a resume state
        (run_copy / name).write_text("{}")
    code, out, _ = cli("compare", run_copy, "--csv", tmp_path / "c.csv")
    assert code == 0
    assert pd.read_csv(tmp_path / "c.csv")["status"][0] == "stopped"
    assert f"continue with: animalcnn train --resume {run_copy}" in out
    # Another host's run is alive while its heartbeat is fresh.
    _edit_metrics(run_copy, process={"host": "elsewhere", "pid": 1, "start": 1})
    (run_copy / "heartbeat").touch()
    assert cli("compare", run_copy, "--csv", tmp_path / "c.csv")[0] == 0
    assert pd.read_csv(tmp_path / "c.csv")["status"][0] == "running"
    old = (run_copy / "heartbeat").stat().st_mtime - 600
    os.utime(run_copy / "heartbeat", (old, old))
    assert cli("compare", run_copy, "--csv", tmp_path / "c.csv")[0] == 0
    assert pd.read_csv(tmp_path / "c.csv")["status"][0] == "stopped"


@pytest.fixture
def interrupted(dataset: Path, tmp_path: Path) -> Path:
    """A run stopped by SIGINT after its second epoch, with its resume state."""
    from animalcnn.models.configs import load_config
    from animalcnn.training.session import TrainingFailed, start

    from .test_precision import InterruptAfter

    config = write_config(tmp_path / "cut.yaml", dataset, tmp_path / "runs", training={"epochs": 4})
    with pytest.raises(TrainingFailed) as info:
        start(load_config(config), [InterruptAfter(2)])
    return info.value.run.path


def test_one_process_at_a_time_trains_a_run_folder(cli, interrupted: Path):
    from animalcnn.run_folder import RunFolder

    run = RunFolder(interrupted)
    with run.claim():  # this process holds it, as a live `train --resume` would
        assert run.status() == "interrupted"
        code, _, err = cli("train", "--resume", interrupted)
        assert code == 2
        assert err.strip() == (
            f"error: {interrupted}: another process is training this run "
            f"(pid {os.getpid()} on {__import__('socket').gethostname()})"
        )
        assert (interrupted / "heartbeat").exists()
    assert not (interrupted / "heartbeat").exists()
    code, out, err = cli("train", "--resume", interrupted)  # released: it resumes
    assert code == 0, err
    assert not [p for p in interrupted.iterdir() if p.name.startswith(".")]


class InterruptAtFirstBatch(keras.callbacks.Callback):
    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        os.kill(os.getpid(), signal.SIGINT)


def test_a_run_stopped_before_its_first_epoch_gets_no_resume_hint(dataset, tmp_path, capsys):
    from animalcnn.models.configs import load_config
    from animalcnn.training.runner import report_failure
    from animalcnn.training.session import TrainingFailed, start

    cfg = load_config(write_config(tmp_path / "early.yaml", dataset, tmp_path / "runs"))
    with pytest.raises(TrainingFailed) as info:
        start(cfg, [InterruptAtFirstBatch()])
    assert info.value.status == "interrupted" and not info.value.run.resumable()
    report_failure(info.value, cfg)
    err = capsys.readouterr().err
    assert "interrupted:" in err and "--resume" not in err


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 1.5 MiB filesystem (root only: tmpfs)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small filesystem needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1536k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_fails_the_run_in_one_line_and_keeps_the_last_good_state(
    cli, dataset, tmp_path, small_disk
):
    config = write_config(
        tmp_path / "full.yaml", dataset, small_disk / "runs", training={"epochs": 4}
    )
    code, _, err = cli("train", config)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "disk full: could not write" in lines[0], err
    assert "MiB free; the run needs about" in lines[0]
    (run,) = (small_disk / "runs").iterdir()
    metrics = _json(run / "metrics.json")
    assert metrics["status"] == "failed" and metrics["reason"].startswith("disk full")
    assert not [p for p in run.rglob("*") if p.name.startswith(".") or "tmp" in p.name]
    if (run / "state.json").exists():  # whatever it kept is whole
        assert _json(run / "state.json")["rows"]
        keras.saving.load_model(run / "last.keras")


def test_a_full_disk_for_the_cache_is_one_line_and_leaves_nothing(
    cli, dataset, tmp_path, small_disk
):
    config = write_config(
        tmp_path / "cache.yaml",
        dataset,
        tmp_path / "runs",
        data={"cache": "disk", "cache_dir": str(small_disk / "cache"), "img_size": 96},
    )
    code, _, err = cli("train", config)
    assert code == 1 and err.startswith(f"error: {small_disk / 'cache'}/")
    assert "No space left on device" in err and len(err.strip().splitlines()) == 1
    assert not list((small_disk / "cache").iterdir())
    assert not (tmp_path / "runs").exists()


def test_a_damaged_cache_is_decoded_again_with_a_warning(dataset: Path, tmp_path: Path, capsys):
    from animalcnn.config import DataConfig
    from animalcnn.data.decoding import decode
    from animalcnn.data.discovery import read_split

    _, split = read_split(dataset / "val")
    cfg = DataConfig(dir=dataset, img_size=24, cache="disk", cache_dir=tmp_path / "cache")
    first = decode(split, cfg)
    reference = np.array(first.batch(np.arange(len(first))))
    del first
    (npy,) = (tmp_path / "cache").glob("*.npy")
    data = bytearray(npy.read_bytes())
    data[-100:] = bytes(100)  # flipped bits a size check would not see
    npy.write_bytes(bytes(data))
    again = decode(split, cfg)
    assert "damaged (checksum mismatch); decoding the images again" in capsys.readouterr().err
    assert np.array_equal(again.batch(np.arange(len(again))), reference)
    npy.write_bytes(npy.read_bytes()[:1000])  # truncated
    decode(split, cfg)
    assert "damaged (size 1,000" in capsys.readouterr().err


@pytest.mark.parametrize(("umask", "mode"), [(0o002, 0o664), (0o077, 0o600)])
def test_written_files_follow_the_umask(tmp_path: Path, umask: int, mode: int):
    from animalcnn.atomic import atomic_write

    previous = os.umask(umask)
    try:
        atomic_write(tmp_path / "shared.json", "{}")
    finally:
        os.umask(previous)
    assert (tmp_path / "shared.json").stat().st_mode & 0o777 == mode


def _as_the_previous_release_wrote_it(folder: Path) -> None:
    """Rewrite a run folder's files in format 0, the previous release's: no `format`
    keys, a mixed-precision flag instead of the dtype policy, no backend (TensorFlow was
    the only one) and no TTA in an evaluation."""
    for name in ("metrics.json", "evaluation.json", "state.json"):
        path = folder / name
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        if data.pop("format", 0) == 0:
            continue  # (already)
        if name == "metrics.json":
            data["mixed_precision"] = data.pop("precision") != "float32"
            data.pop("backend")
        if name == "evaluation.json":
            data.pop("tta")
        path.write_text(json.dumps(data))


def test_run_folders_of_the_previous_release_open_in_compare_evaluate_and_resume(
    cli, run_copy: Path, interrupted: Path
):
    for folder in (run_copy, interrupted):
        _as_the_previous_release_wrote_it(folder)
    code, out, err = cli("compare", run_copy, interrupted, "--csv", run_copy.parent / "runs.csv")
    assert code == 0 and "damaged" not in out + err, out + err
    table = pd.read_csv(run_copy.parent / "runs.csv")
    assert table["backend"].tolist() == ["tensorflow"] * 2
    assert table["precision"].tolist() == ["float32"] * 2
    code, _, err = cli("evaluate", run_copy)
    assert code == 0, err
    _as_the_previous_release_wrote_it(run_copy)  # an evaluation of the old format, scored
    code, out, _ = cli("compare", run_copy, "--csv", run_copy.parent / "one.csv")
    one = pd.read_csv(run_copy.parent / "one.csv").iloc[0]
    assert code == 0 and 0 <= one["test_accuracy"] <= 1 and one["tta"] == "none"
    code, _, err = cli("train", "--resume", interrupted)
    assert code == 0, err
    metrics = json.loads((interrupted / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs_run"] == 4
    assert metrics["format"] == 1 and metrics["precision"] == "float32"  # upgraded on write
    assert "mixed_precision" not in metrics


def test_history_rows_are_records_both_ways(run_copy: Path):
    """`history.csv` is written from and read into `EpochRow`s: a figure Keras did not log
    (NaN) comes back as None, and a damaged row is one error naming the row and column."""
    from animalcnn.errors import RunFolderError
    from animalcnn.run_folder import EpochRow, RunFolder

    run = RunFolder(run_copy)
    trained = run.history().rows
    assert [r.epoch for r in trained] == list(range(1, len(trained) + 1))
    assert all(r.phase == "train" and r.seconds > 0 and 0 <= r.val_accuracy <= 1 for r in trained)
    rows = [*trained, EpochRow(epoch=len(trained) + 1, phase="train", loss=float("nan"))]
    run.write_history(rows)
    back = run.history()
    assert back.rows == rows and back.rows[-1].loss is None and back.rows[-1].val_loss is None
    assert back.frame()["loss"].isna().tolist() == [False] * len(trained) + [True]
    text = (run_copy / "history.csv").read_text().replace(f"\n{len(trained) + 1},", "\nsix,")
    (run_copy / "history.csv").write_text(text)
    with pytest.raises(RunFolderError) as info:
        run.history()
    assert str(info.value) == (
        f"{run_copy / 'history.csv'}: damaged (row {len(rows)}: epoch: "
        "input should be a valid integer, unable to parse string as an integer)"
    )
