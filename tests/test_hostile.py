"""Odd and hostile input: one clear line, never a traceback, never a wrong number."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from .conftest import write_config


@pytest.fixture
def copy_of(dataset: Path, tmp_path: Path):
    def make(name: str = "copy") -> Path:
        return Path(shutil.copytree(dataset, tmp_path / name, symlinks=True))

    return make


# ---- markup in names --------------------------------------------------------------


def test_names_with_markup_characters_are_printed_as_they_are(cli, copy_of, tmp_path, run_copy):
    root = copy_of()
    odd = root / "train/circle/[bold]odd[red] [x].jpg"
    odd.write_text("<html>")
    code, out, err = cli("data", "check", root)
    assert code == 1 and f"error: {odd}: not an image" in err
    config = write_config(tmp_path / "m.yaml", root, tmp_path / "runs", training={"epochs": 1})
    code, _, err = cli("train", config)
    assert code == 0, err
    assert f"warning: skipped {odd}: not an image" in err
    pic = tmp_path / "[red]photo[i].png"
    Image.new("RGB", (32, 32), (10, 200, 30)).save(pic)
    code, out, err = cli("predict", run_copy, pic)
    assert code == 0 and "[red]photo[i].png" in out.replace("\n", "")


# ---- damaged run folders ------------------------------------------------------------


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (
            lambda r: (r / "model.keras").write_bytes(b"PK\x03\x04 no zip"),
            "model.keras: cannot be loaded (damaged: 11 bytes that are not a .keras zip archive)",
        ),
        (
            lambda r: (r / "model.keras").write_bytes((r / "model.keras").read_bytes()[:5000]),
            "model.keras: cannot be loaded (damaged: 5,000 bytes",
        ),
        (
            lambda r: (r / "metrics.json").write_text('{"status": "completed", "best": "x"}'),
            "metrics.json: best: ",
        ),
        (lambda r: (r / "metrics.json").write_text("[1, 2]"), "metrics.json: expected a JSON"),
        (
            lambda r: (r / "config.yaml").write_text(
                (r / "config.yaml").read_text().replace("img_size: 32", "img_size: 48")
            ),
            "model.keras: takes (None, 32, 32, 3)",
        ),
        (lambda r: (r / "config.yaml").write_text("data: [1\n"), "config.yaml: unreadable"),
    ],
)
def test_damaged_run_files_are_one_line_errors(cli, run_copy, tmp_path, damage, expected):
    damage(run_copy)
    for command in (("evaluate", run_copy), ("predict", run_copy, tmp_path)):
        code, out, err = cli(*command)
        assert code == 2, (command, out, err)
        assert expected in err and len(err.strip().splitlines()) == 1, err
        assert "Traceback" not in out + err


def test_compare_and_report_list_damaged_runs(cli, run_copy, trained_run, tmp_path):
    (run_copy / "metrics.json").write_text('{"status": "done", "params": {"total": "many"}}')
    other = Path(shutil.copytree(trained_run, tmp_path / "bad-history"))
    (other / "history.csv").write_text("epoch,loss\nx,y\n")
    code, out, err = cli("compare", run_copy, other, trained_run, "--csv", tmp_path / "c.csv")
    assert code == 0, err
    status = sorted(pd.read_csv(tmp_path / "c.csv")["status"])  # (rows come best first)
    assert status[0] == "completed" and status[1] == "completed"  # the shared run, bad-history
    assert status[2].startswith("damaged: status: input should be")
    code, _, err = cli("compare", other, trained_run, "--report", tmp_path / "r.html")
    assert code == 2 and err.strip() == (
        f"error: {other / 'history.csv'}: damaged (missing columns "
        "['phase', 'accuracy', 'val_loss', 'val_accuracy', 'lr', 'seconds'])"
    )


def test_a_tampered_resume_state_never_finishes_a_run_early(cli, tmp_path, dataset):
    from animalcnn.models.configs import load_config
    from animalcnn.training.session import TrainingFailed, start

    from .test_precision import InterruptAfter

    config = write_config(tmp_path / "t.yaml", dataset, tmp_path / "runs", training={"epochs": 4})
    with pytest.raises(TrainingFailed) as info:
        start(load_config(config), [InterruptAfter(1)])
    run = info.value.run.path
    state = json.loads((run / "state.json").read_text())
    for tamper, expected in (
        ({"phase": 1, "phase_start": 1}, "phase train ran 1 of its 4 epochs"),
        ({"phase": 7}, "phase 7 is past the config's 1 phase(s)"),
        ({"rows": "x"}, "rows: "),
        ({"rows": state["rows"] * 2}, "its rows are not epochs 1, 2, ..."),
    ):
        (run / "state.json").write_text(json.dumps({**state, **tamper}))
        code, _, err = cli("train", "--resume", run)
        assert code == 2 and f"{run / 'state.json'}: damaged ({expected}" in err, err
        assert json.loads((run / "metrics.json").read_text())["status"] == "interrupted"
    (run / "state.json").write_text(json.dumps(state))
    (run / "last.keras").write_bytes(b"not a model")
    code, _, err = cli("train", "--resume", run)
    assert code == 2 and f"{run / 'last.keras'}: cannot be loaded" in err, err


# ---- config values ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("training: {epochs: true}\n", "training.epochs: input should be a valid integer"),
        ("training: {epochs: '5'}\n", "training.epochs: input should be a valid integer"),
        ("seed: 99999999999\n", "seed: input should be less than or equal to 4294967295"),
        ("data: {batch_size: 100000000}\n", "data.batch_size: input should be less than"),
        ("training: {deterministic: 1}\n", "training.deterministic: input should be a valid"),
        ("training: {epochs: 3}\ntraining: {epochs: 4}\n", "line 2: invalid YAML: duplicate"),
        ("name: 'my run'\n", "name: 'my run' is not a run name"),
    ],
)
def test_config_values_are_strict_and_bounded(cli, tmp_path: Path, text: str, expected: str):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    code, _, err = cli("train", path)
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, err


def test_a_file_name_that_is_no_run_name_says_so(cli, tmp_path: Path):
    path = tmp_path / "my experiment.yaml"
    path.write_text("training: {epochs: 1}\n")
    code, _, err = cli("config", path)
    assert code == 2 and "the file name 'my experiment' is not a run name" in err
    assert "rename the file or set `name:` in it" in err
    path.write_text("name: mine\n")
    assert cli("config", path)[0] == 0


def test_runs_dir_is_a_path_not_yaml(cli, tmp_path: Path, dataset: Path):
    config = write_config(tmp_path / "p.yaml", dataset, tmp_path / "unused", training={"epochs": 1})
    code, _, err = cli("train", config, "--runs-dir", tmp_path / "[a, b]")
    assert code == 0, err
    assert len(list((tmp_path / "[a, b]").iterdir())) == 1


def test_a_runs_dir_that_is_a_file_is_one_line_before_any_work(cli, tmp_path, dataset):
    config = write_config(tmp_path / "p.yaml", dataset, tmp_path / "unused")
    afile = tmp_path / "notes.txt"
    afile.write_text("mine")
    for runs_dir in (afile, afile / "runs"):
        code, out, err = cli("train", config, "--runs-dir", runs_dir)
        assert (
            code == 2
            and out == ""
            and err
            == (
                f"error: output.runs_dir: {runs_dir}: {afile} is a file, not a folder; "
                "name a folder with --runs-dir DIR\n"
            )
        )
    assert afile.read_text() == "mine"


# ---- images -------------------------------------------------------------------------


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path: Path):
    from animalcnn.data.decoding import load_image

    path = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 32896, np.uint16)).save(path)  # 0x8080: mid-gray
    with Image.open(path) as img:
        assert img.mode.startswith("I")
    assert (load_image(path, 8) == 128).all()


def test_exif_orientation_is_applied(tmp_path: Path):
    from animalcnn.data.decoding import load_image

    pixels = np.zeros((10, 20, 3), np.uint8)
    pixels[:, :10] = (255, 0, 0)  # stored: left half red, right half blue
    pixels[:, 10:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise: red on top
    path = tmp_path / "turned.jpg"
    Image.fromarray(pixels).save(path, exif=exif, quality=100)
    out = load_image(path, 16).astype(int)
    assert out[:6, :, 0].mean() > 200 and out[:6, :, 2].mean() < 60  # top red
    assert out[-6:, :, 2].mean() > 200 and out[-6:, :, 0].mean() < 60  # bottom blue


def test_cmyk_and_animated_images_load_as_rgb(tmp_path: Path):
    from animalcnn.data.decoding import load_image

    cmyk = tmp_path / "print.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(cmyk)  # pure red in print colours
    red = load_image(cmyk, 8).astype(int)
    assert red[..., 0].mean() > 200 and red[..., 1:].mean() < 60
    gif = tmp_path / "moving.gif"
    frames = [Image.new("RGB", (8, 8), c) for c in ((0, 255, 0), (255, 0, 0))]
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    first = load_image(gif, 8).astype(int)
    assert first[..., 1].mean() > 200 and first[..., 0].mean() < 60


def test_an_image_too_large_to_decode_is_refused_from_its_header(cli, copy_of, monkeypatch):
    from animalcnn.data import decoding

    monkeypatch.setattr(decoding.Image, "MAX_IMAGE_PIXELS", 100 * 100)
    root = copy_of()
    big, huge = root / "train/cross/big.png", root / "train/cross/huge.png"
    Image.new("RGB", (120, 100)).save(big)
    Image.new("RGB", (300, 200)).save(huge)  # past twice the limit: PIL's own refusal
    assert decoding.try_load(big, 8) == "too large: 120x100 pixels (limit 10,000)"
    assert decoding.try_load(huge, 8).startswith("too large: Image size (60000 pixels)")
    code, _, err = cli("data", "check", root)
    assert code == 1 and f"error: {big}: too large: 120x100 pixels" in err
    assert f"error: {huge}: too large: " in err


def test_decoding_threads_are_bounded(monkeypatch):
    from animalcnn.data import decoding

    seen = []
    real = decoding.ThreadPoolExecutor
    monkeypatch.setattr(decoding.os, "cpu_count", lambda: 96)
    monkeypatch.setattr(decoding, "ThreadPoolExecutor", lambda n: seen.append(n) or real(n))
    decoding._decode_into(None, [], 8, None)
    assert seen == [decoding.MAX_DECODE_THREADS]


def test_symlink_loops_dangling_links_and_links_back_are_reported(cli, copy_of, tmp_path):
    root = copy_of()
    loop = root / "train/circle/loop.jpg"
    loop.symlink_to(loop)
    dangling = root / "train/cross/gone.png"
    dangling.symlink_to(tmp_path / "nowhere.png")
    back = root / "train/again"
    back.symlink_to(root / "train", target_is_directory=True)
    code, out, err = cli("data", "check", root)
    assert code == 1
    assert f"error: {loop}: cannot read: Too many levels of symbolic links" in err
    assert f"error: {dangling}: cannot read: No such file or directory" in err
    assert f"warning: {back}: a link back into the dataset (not followed)" in err
    assert "again" not in out
    config = write_config(tmp_path / "l.yaml", root, tmp_path / "runs", training={"epochs": 1})
    code, _, err = cli("train", config)
    assert code == 0, err
    (run,) = (tmp_path / "runs").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["classes"] == ["circle", "cross", "square", "stripes", "triangle"]
    assert sorted(Path(p.split(": ")[0]).name for p in metrics["skipped_files"]) == [
        "gone.png",
        "loop.jpg",
    ]


# ---- data the task cannot learn from -------------------------------------------------


def test_a_single_class_stops_before_any_run_folder(cli, copy_of, tmp_path):
    root = copy_of()
    for name in ("cross", "square", "stripes", "triangle"):
        shutil.rmtree(root / "train" / name)
        shutil.rmtree(root / "val" / name)
    config = write_config(tmp_path / "one.yaml", root, tmp_path / "runs")
    code, _, err = cli("train", config)
    assert code == 2 and "one class ('circle'); a classifier needs two or more" in err
    assert not (tmp_path / "runs").exists()


def test_a_foreign_run_folder_decides_nothing_about_where_files_are_written(
    cli, run_copy: Path, tmp_path: Path
):
    import yaml

    config = yaml.safe_load((run_copy / "config.yaml").read_text())
    config["data"].update(cache="disk", cache_dir=str(tmp_path / "elsewhere"))
    config["output"]["runs_dir"] = str(tmp_path / "elsewhere-runs")
    (run_copy / "config.yaml").write_text(yaml.safe_dump(config))
    code, _, err = cli("evaluate", run_copy)
    assert code == 0, err
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "elsewhere-runs").exists()
    assert (run_copy / "evaluation.json").exists()


# ---- outputs with clashing or odd names ---------------------------------------------


def test_explain_gives_each_image_its_own_figure(cli, run_copy, dataset, tmp_path):
    source = sorted((dataset / "inf").iterdir())[:2]
    for folder, image in zip(("a", "b"), source, strict=True):
        (tmp_path / folder).mkdir()
        shutil.copy(image, tmp_path / folder / f"x{image.suffix}")
    a, b = (next((tmp_path / f).iterdir()) for f in ("a", "b"))
    code, out, err = cli("explain", run_copy, a, b, a, "--out", tmp_path / "figs")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == [
        "a-x_gradcam.png",
        "b-x_gradcam.png",
    ]
    assert out.count("_gradcam.png") == 2  # each image once


def test_a_folder_given_for_a_csv_is_one_line(cli, run_copy, dataset, tmp_path):
    image = sorted((dataset / "inf").iterdir())[0]
    code, out, err = cli("predict", run_copy, image, "--csv", tmp_path)
    assert code == 2 and err.strip() == f"error: --csv {tmp_path}: is a folder; name a file"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_an_output_path_holding_a_users_file_is_refused_and_ours_is_replaced(
    cli, run_copy, dataset, tmp_path
):
    """`--csv`, `--report` (and the figures beside it) and `--out` may name a user's
    file: refused in one line before any work, the file as it was; what animalcnn wrote
    there before is replaced."""
    images = sorted((dataset / "inf").iterdir())[:2]
    config = write_config(tmp_path / "lr.yaml", dataset, tmp_path / "runs")
    commands = {  # each output: the command that writes it
        "runs.csv": ("compare", run_copy, "--csv", tmp_path / "runs.csv"),
        "report.html": ("compare", run_copy, "--report", tmp_path / "report.html"),
        "report_gap.png": ("compare", run_copy, "--report", tmp_path / "report.html"),
        "labels.csv": ("predict", run_copy, *images, "--csv", tmp_path / "labels.csv"),
        "lr_find.csv": ("lr-find", config, "--out", tmp_path),
        "lr_find.png": ("lr-find", config, "--out", tmp_path),
        f"{images[0].stem}_gradcam.png": ("explain", run_copy, *images, "--out", tmp_path),
    }
    replaced = set()
    for name, args in commands.items():
        mine = tmp_path / name
        mine.write_text("mine")
        before = sorted(p.name for p in tmp_path.iterdir())
        code, _, err = cli(*args)
        assert code == 2 and len(err.splitlines()) == 1, (name, err)
        assert f"{mine}: a file that is not " in err and "animalcnn wrote" in err, err
        assert mine.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == before
        mine.unlink()
        code, _, err = cli(*args)  # now a new path: written ...
        assert code == 0 and mine.stat().st_size > len("mine"), (name, err)
        if args not in replaced:  # ... and, being ours, replaced (once a command)
            code, _, err = cli(*args)
            assert code == 0, (name, err)
            replaced.add(args)
    link = tmp_path / "link.csv"  # a link is never ours, even to a file of ours
    link.symlink_to(tmp_path / "runs.csv")
    code, _, err = cli("compare", run_copy, "--csv", link)
    assert code == 2 and f"--csv {link}: a link that is not a runs table" in err
