"""What the model learned: the mistakes gallery, Grad-CAM and the learning-rate finder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from .conftest import write_config
from .test_reports import assert_real_figure


def test_evaluate_writes_the_mistakes_gallery_and_most_confused(cli, run_copy, dataset, tmp_path):
    # the validation images with their class folders turned one place: a model that was
    # right about an image is now wrong about it, so there are mistakes to show
    import shutil

    classes = sorted(p.name for p in (dataset / "val").iterdir())
    turned = tmp_path / "turned" / "val"
    for old, new in zip(classes, classes[1:] + classes[:1], strict=True):
        shutil.copytree(dataset / "val" / old, turned / new)
    code, out, err = cli("evaluate", run_copy, "--errors", "6", "--data", turned.parent)
    assert code == 0, err
    (result,) = (run_copy / "evaluations").glob("*.json")
    ev = json.loads(result.read_text())
    wrong = ev["images"] - int(np.trace(np.array(ev["confusion_matrix"])))
    errors = ev["top_errors"]
    assert wrong >= 6 and len(errors) == 6
    confidences = [e["confidence"] for e in errors]
    assert confidences == sorted(confidences, reverse=True)
    for e in errors:
        assert (turned.parent / e["file"]).is_file() and e["true"] != e["predicted"]
        assert 0 <= e["true_probability"] < e["confidence"]  # the wrong class won
        assert e["loss"] == pytest.approx(-np.log(max(e["true_probability"], 1e-7)), abs=2e-3)
        assert Path(e["file"]).parts[:2] == ("val", e["true"])  # relative to the data folder
    pairs = ev["most_confused"]
    assert [p["count"] for p in pairs] == sorted((p["count"] for p in pairs), reverse=True)
    assert sum(p["count"] for p in pairs) <= wrong and "most confused" in out
    (gallery,) = (run_copy / "evaluations").glob("*_errors.png")
    with Image.open(gallery) as img:  # 4 tiles a row, 3.6 in a row, 150 dpi
        assert img.height == round((3.6 * math.ceil(len(errors) / 4) + 0.5) * 150)
    assert_real_figure(gallery, (300, 300))
    code, _, err = cli("evaluate", run_copy, "--explain")
    assert code == 0, err
    assert_real_figure(run_copy / "errors.png", (300, 300))


CORNERS = {"topleft": (0, 0), "topright": (0, 1), "bottomleft": (1, 0), "bottomright": (1, 1)}


def _corner_dataset(root: Path, per_class: int, seed: int) -> Path:
    """Four classes told apart only by where a bright patch is: in which corner."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", per_class), ("val", 8)):
        for name, (qy, qx) in CORNERS.items():
            y, x = 2 + 20 * qy, 2 + 20 * qx
            folder = root / split / name
            folder.mkdir(parents=True)
            for k in range(n):
                pixels = rng.integers(0, 90, (32, 32, 3)).astype(np.uint8)
                pixels[y : y + 8, x : x + 8] = 255
                Image.fromarray(pixels).save(folder / f"{k}.png")
    return root


def _data_dir(run: Path) -> Path:
    return Path(yaml.safe_load((run / "config.yaml").read_text())["data"]["dir"])


@pytest.fixture(scope="module")
def corner_run(tmp_path_factory) -> Path:
    from typer.testing import CliRunner

    from animalcnn.cli import app

    tmp = tmp_path_factory.mktemp("corner")
    data = _corner_dataset(tmp / "data", 40, seed=3)
    config = write_config(
        tmp / "corner.yaml",
        data,
        tmp / "runs",
        model={"arch": "mid", "params": {"filters": [8, 16], "dense": 16, "dropout": 0.0}},
        data={"img_size": 32, "batch_size": 16},
        training={"epochs": 6, "learning_rate": 0.003},
    )
    result = CliRunner().invoke(app, ["train", str(config)])
    assert result.exit_code == 0, result.stdout + result.stderr
    (run,) = (tmp / "runs").iterdir()
    return run


def test_grad_cam_heat_lies_on_the_evidence(corner_run: Path):
    import keras

    from animalcnn.evaluation.gradcam import feature_layer, heatmaps

    model = keras.saving.load_model(corner_run / "model.keras", compile=False)
    assert feature_layer(model).name == "block2_conv2"  # the last convolutional block
    cfg_dir = _data_dir(corner_run)
    classes = sorted(CORNERS)
    for name, (qy, qx) in CORNERS.items():
        files = sorted((cfg_dir / "val" / name).iterdir())
        images = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
        heat, probs = heatmaps(model, images.astype(np.float32))
        assert (probs.argmax(axis=1) == classes.index(name)).mean() >= 0.75, name
        mass = heat.reshape(len(heat), 2, 16, 2, 16).sum(axis=(2, 4))  # per quadrant
        share = mass / mass.sum(axis=(1, 2), keepdims=True)
        hottest = share.reshape(len(share), 4).argmax(axis=1)
        assert (hottest == 2 * qy + qx).mean() >= 0.75, (name, share.mean(axis=0))
        mean = share.mean(axis=0)
        others = [mean[y, x] for y in (0, 1) for x in (0, 1) if (y, x) != (qy, qx)]
        assert mean[qy, qx] > 1.5 * max(others), (name, mean)


def test_explain_writes_a_heat_map_per_image_and_reports_unreadable_ones(
    cli, corner_run: Path, tmp_path: Path
):
    cfg_dir = _data_dir(corner_run)
    broken = tmp_path / "broken.png"
    broken.write_text("no image")
    code, out, err = cli("explain", corner_run, cfg_dir / "val" / "topleft", broken)
    assert code == 0, err
    written = sorted((corner_run / "explain").glob("*_gradcam.png"))
    assert len(written) == 8 and "Grad-CAM of 9 images" in out
    assert "not an image" in out and "topleft" in out
    assert_real_figure(written[0], (600, 250))
    code, _, err = cli("explain", corner_run, broken, "--class", "nope")
    assert code == 2 and "--class nope: not one of the run's classes" in err
    code, _, _ = cli("explain", corner_run, broken, "--class", "topleft", "--out", tmp_path / "o")
    assert code == 0 and not list((tmp_path / "o").glob("*.png"))  # only the broken one


def test_lr_find_suggests_a_rate_inside_its_sweep(cli, dataset: Path, tmp_path: Path):
    config = write_config(tmp_path / "lr.yaml", dataset, tmp_path / "runs")
    code, out, err = cli("lr-find", config, "--out", tmp_path / "lr")
    assert code == 0, err
    sweep = pd.read_csv(tmp_path / "lr" / "lr_find.csv")
    assert list(sweep.columns) == ["lr", "loss"] and len(sweep) >= 5
    assert (np.diff(sweep["lr"]) > 0).all()
    suggestion = float(out.split("suggested learning rate: ")[1].split()[0])
    three = {
        name: float(out.split(f"{name}: ")[1].split()[0])
        for name in ("valley", "steep", "minimum/10")
    }
    assert suggestion == three["valley"]  # fastai's default
    lowest = sweep.loc[sweep["loss"].idxmin()]
    assert three["minimum/10"] == pytest.approx(
        max(lowest["lr"] / 10, sweep["lr"].iloc[0]), rel=0.01
    )
    # steep, checked on what the range test wrote: a rate from the falling part of the
    # curve (its loss below the first), or a tenth of the minimum's rate
    falling = sweep[(sweep["lr"] <= lowest["lr"]) & (sweep["loss"] < sweep["loss"].iloc[0])]
    near = np.isclose(falling["lr"], three["steep"], rtol=0.01).any()
    assert near or three["steep"] == pytest.approx(three["minimum/10"], rel=0.01), sweep
    assert sweep["lr"].iloc[0] <= suggestion <= lowest["lr"]
    assert f"--set training.learning_rate={suggestion:.2e}" in out
    assert_real_figure(tmp_path / "lr" / "lr_find.png")
    assert not (tmp_path / "runs").exists()  # no run folder


def test_the_suggestion_follows_the_loss_curve():
    from animalcnn.training.lr_finder import suggest, valley

    lrs = np.geomspace(1e-6, 1, 61)
    falling = 2.0 - 1.5 / (1 + np.exp(-4 * (np.log10(lrs) + 3)))  # steepest at 1e-3
    falling[50:] += np.linspace(0, 20, 11)  # then diverges
    assert suggest(lrs, falling) == pytest.approx(1e-3, rel=0.3)
    # valley: the longest fall runs from 1e-6 to the minimum before the divergence, and the
    # rate chosen lies half way through its middle third
    assert 1e-5 < valley(lrs, falling) < 1e-2
    flat = np.full(61, 1.6)
    flat[40] = 1.59  # the minimum of a flat curve, at 1e-2
    flat[50:] += np.linspace(0, 20, 11)
    assert suggest(lrs, flat) == pytest.approx(1e-3, rel=1e-6)
