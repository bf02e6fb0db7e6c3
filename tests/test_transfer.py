"""Pretrained backbones under the three strategies, with weights=none (no download)."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from animalcnn.errors import ConfigError, UserError
from animalcnn.models import build_model
from animalcnn.models.configs import load_config, validate_config
from animalcnn.models.pretrained import BACKBONE_LAYER
from animalcnn.models.summary import parameter_counts
from animalcnn.training.phases import phases, set_trainable
from animalcnn.training.session import start as train

from .conftest import CONFIGS, write_config

# The notebook's counts (docs/parameter-counts.md): total; trainable for transfer /
# finetune (after unfreezing) / partial (BatchNormalization kept frozen).
EXPECTED = {
    "resnet50v2": (56_338_805, 32_774_005, 56_293_365, 36_183_925),
    "mobilenetv2": (22_743_989, 20_486_005, 22_709_877, 21_211_445),
    "xception": (39_299_485, 18_438_005, 39_244_957, 23_925_109),
}


@pytest.mark.slow
@pytest.mark.parametrize("arch", EXPECTED)
def test_seed_configs_give_the_notebook_counts(arch):
    total, *trainable = EXPECTED[arch]
    model = None
    for strategy, expected in zip(("transfer", "finetune", "partial"), trainable, strict=True):
        cfg = load_config(CONFIGS / f"{arch}_{strategy}.yaml", ["transfer.weights=none"])
        model = model or build_model(cfg, 5)  # one build; the strategies only (un)freeze
        set_trainable(model, phases(cfg)[-1], cfg)
        assert parameter_counts(model) == {
            "total": total,
            "trainable": expected,
            "non_trainable": total - expected,
        }


def test_partial_with_trainable_batchnorm_and_efficientnet():
    cfg = load_config(
        CONFIGS / "mobilenetv2_partial.yaml",
        ["transfer.weights=none", "transfer.freeze_batchnorm=false"],
    )
    model = build_model(cfg, 5)
    set_trainable(model, phases(cfg)[-1], cfg)
    assert parameter_counts(model)["trainable"] == 21_218_485
    cfg = load_config(CONFIGS / "efficientnetb0_transfer.yaml", ["transfer.weights=none"])
    model = build_model(cfg, 5)
    set_trainable(model, phases(cfg)[-1], cfg)
    assert parameter_counts(model)["trainable"] == 4 * 4 * 1280 * 1000 + 1000 + 5005


def test_backbone_preprocessing_maps_pixels_to_minus_one_one():
    cfg = validate_config(
        {
            "model": {"arch": "mobilenetv2"},
            "data": {"img_size": 32},
            "transfer": {"weights": "none"},
        },
        "x",
    )
    rescale = build_model(cfg, 5).get_layer("rescale")
    out = keras.ops.convert_to_numpy(rescale(np.array([[0.0, 127.5, 255.0]])))
    assert np.allclose(out, [[-1, 0, 1]])


class Watch(keras.callbacks.Callback):
    """Backbone weights and BN statistics at the start and end of each phase, and the
    final model's predictions on a fixed batch."""

    def __init__(self, batch: np.ndarray) -> None:
        super().__init__()
        self.batch = batch
        self.phases: list[dict[str, list[np.ndarray]]] = []

    def _snapshot(self) -> dict[str, list[np.ndarray]]:
        layers = self.model.get_layer(BACKBONE_LAYER).layers
        convs = [layer for layer in layers if isinstance(layer, keras.layers.Conv2D)]
        bns = [layer for layer in layers if isinstance(layer, keras.layers.BatchNormalization)]
        return {
            "kernels": [np.array(w) for conv in convs for w in conv.weights],
            "bn_stats": [np.array(v) for bn in bns for v in (bn.moving_mean, bn.moving_variance)],
        }

    def on_train_begin(self, logs=None):
        self.phases.append({"begin": self._snapshot()})

    def on_train_end(self, logs=None):
        self.phases[-1]["end"] = self._snapshot()
        self.predictions = self.model.predict(self.batch, verbose=0)


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def _train(
    tmp_path: Path, dataset: Path, strategy: str, precision: str = "off", **transfer
) -> tuple:
    config = write_config(
        tmp_path / f"{strategy}.yaml",
        dataset,
        tmp_path / "runs",
        model={"arch": "mobilenetv2", "params": {"dense": 32}},
        transfer={
            "strategy": strategy,
            "weights": "none",
            "finetune": {"epochs": 1, "learning_rate": 0.01},
            **transfer,
        },
        training={"epochs": 1, "mixed_precision": precision},
    )
    batch = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    watch = Watch(batch)
    try:
        run = train(load_config(config), callbacks=[watch])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return run, watch


@pytest.fixture(scope="module")
def transferred(tmp_path_factory: pytest.TempPathFactory, dataset: Path) -> tuple:
    """One run under the transfer strategy, for the tests that read it."""
    return _train(tmp_path_factory.mktemp("transfer"), dataset, "transfer")


@pytest.mark.slow
def test_transfer_leaves_the_backbone_untouched(transferred):
    run, watch = transferred
    (phase,) = watch.phases
    assert _same(phase["begin"]["kernels"], phase["end"]["kernels"])
    assert _same(phase["begin"]["bn_stats"], phase["end"]["bn_stats"])
    metrics = json.loads(run.file("metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["strategy"] == "transfer"
    reloaded = keras.saving.load_model(run.file("model.keras"), compile=False)
    assert np.allclose(reloaded.predict(watch.batch, verbose=0), watch.predictions, atol=1e-6)


@pytest.mark.slow
def test_finetune_moves_the_backbone_only_in_phase_two(tmp_path: Path, dataset: Path, capsys):
    """Under bfloat16 (one backbone build for both concerns): the policy changes what
    the layers compute in, never which weights move or the float32 statistics."""
    run, watch = _train(tmp_path, dataset, "finetune", precision="bfloat16")
    head, full = watch.phases
    assert _same(head["begin"]["kernels"], head["end"]["kernels"])
    assert not _same(full["begin"]["kernels"], full["end"]["kernels"])
    for phase in (head, full):  # inference-mode BatchNormalization, also once unfrozen
        assert _same(phase["begin"]["bn_stats"], phase["end"]["bn_stats"])
        assert {a.dtype for a in phase["end"]["bn_stats"]} == {np.dtype("float32")}
    assert run.metrics().precision == "mixed_bfloat16"
    reloaded = keras.saving.load_model(run.file("model.keras"), compile=False)
    bn = next(
        layer
        for layer in reloaded.get_layer(BACKBONE_LAYER).layers
        if isinstance(layer, keras.layers.BatchNormalization)
    )
    assert bn.moving_mean.dtype == "float32"  # statistics stay float32 in the saved model
    history = pd.read_csv(run.file("history.csv"))
    assert np.isfinite(history[["loss", "val_loss"]].to_numpy()).all()
    assert history["phase"].tolist() == ["head", "finetune"]
    out = capsys.readouterr().out
    assert "[head] epoch   1/2" in out and "[finetune] epoch   2/2" in out
    assert history["epoch"].tolist() == [1, 2]
    assert history["lr"].tolist() == pytest.approx([0.003, 0.01])


@pytest.mark.slow
def test_explain_works_on_a_pretrained_backbone(cli, transferred, dataset: Path, tmp_path: Path):
    run, _ = transferred
    code, out, err = cli("explain", run.path, dataset / "inf", "--out", tmp_path / "heat")
    assert code == 0, err
    assert len(list((tmp_path / "heat").glob("*_gradcam.png"))) == 6


@pytest.mark.slow
def test_partial_trains_only_the_last_layers(tmp_path: Path, dataset: Path):
    _, watch = _train(tmp_path, dataset, "partial", unfreeze_last=3)
    (phase,) = watch.phases
    begin, end = phase["begin"]["kernels"], phase["end"]["kernels"]
    changed = [
        i for i, (a, b) in enumerate(zip(begin, end, strict=True)) if not np.array_equal(a, b)
    ]
    assert changed == [len(begin) - 1]  # MobileNetV2's last 3 layers: Conv_1, its BN, relu


def test_missing_weights_file_is_a_config_error(tmp_path: Path):
    cfg = validate_config(
        {"model": {"arch": "resnet50v2"}, "transfer": {"weights": str(tmp_path / "w.h5")}}, "x"
    )
    with pytest.raises(ConfigError, match=r"transfer.weights: file not found: .*w\.h5"):
        build_model(cfg, 5)


def test_unreachable_imagenet_weights_say_what_to_do(monkeypatch, tmp_path: Path):
    from urllib.error import URLError

    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise URLError("Name or service not known")

    monkeypatch.setattr(file_utils, "urlretrieve", offline)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    cfg = validate_config({"model": {"arch": "resnet50v2"}, "transfer": {}}, "x")
    with pytest.raises(UserError) as info:
        build_model(cfg, 5)
    message = str(info.value)
    assert "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert "~/.keras/models/" in message and "transfer.weights" in message
    assert "\n" not in message
