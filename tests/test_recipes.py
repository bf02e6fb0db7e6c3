"""Training recipes: each option changes what it should, resumes exactly, and leaves the
notebook's recipe as it was."""

from __future__ import annotations

import json
import math
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from animalcnn.config.schema import CutMix, MixUp, TrainingConfig
from animalcnn.data.targets import Targets, mix_batch
from animalcnn.models.configs import load_config
from animalcnn.training.optimizers import StepSchedule, learning_rate, loss, make_optimizer
from animalcnn.training.phases import phases

from .conftest import ROOT, write_config

RECIPE = {
    "epochs": 6,
    "learning_rate": 0.004,
    "optimizer": "adamw",
    "weight_decay": 0.05,
    "schedule": "cosine",
    "warmup_epochs": 1,
    "label_smoothing": 0.1,
    "batch_augmentation": [{"type": "mixup", "alpha": 0.4}, {"type": "cutmix", "prob": 0.5}],
    "ema": {"decay": 0.9},
    "val_patience": 50,
}


def _recipe_config(tmp_path: Path, dataset: Path, name: str, **training) -> Path:
    return write_config(
        tmp_path / f"{name}.yaml",
        dataset,
        tmp_path / name,
        model={
            "arch": "mid",
            "params": {"filters": [8, 16], "dense": 16, "dropout": 0.3},
            "augmentation": [{"type": "flip"}, {"type": "random_erasing", "prob": 0.5}],
        },
        training={**RECIPE, **training},
    )


def test_the_schedules_follow_their_formula_step_by_step():
    steps = np.arange(0, 101)
    cosine = np.array(StepSchedule(1.0, 100, 10, "cosine", 0.0)(steps))
    np.testing.assert_allclose(cosine[:11], 0.1 + 0.9 * steps[:11] / 10, rtol=1e-6)
    after = 0.5 * (1 + np.cos(math.pi * (steps[10:] - 10) / 90))
    np.testing.assert_allclose(cosine[10:], after, rtol=1e-5, atol=1e-7)
    assert cosine[-1] == pytest.approx(0.0, abs=1e-7)
    onecycle = np.array(StepSchedule(1.0, 100, 30, "onecycle")(steps))
    assert onecycle[0] == pytest.approx(1 / 25) and onecycle[30] == pytest.approx(1.0)
    assert onecycle[-1] == pytest.approx(1e-4, rel=1e-3)
    constant = np.array(StepSchedule(0.5, 100, 4, "constant")(steps))
    assert constant[0] == pytest.approx(0.05) and (constant[4:] == 0.5).all()
    # onecycle without warmup_epochs warms up over 30 % of the phase
    t = TrainingConfig(schedule="onecycle", epochs=10)
    (phase,) = phases_of(t)
    schedule = learning_rate(t, phase, steps_per_epoch=7)
    assert (schedule.total, schedule.warmup) == (70, 21)


def phases_of(t: TrainingConfig):
    from animalcnn.config import ExperimentConfig

    return phases(ExperimentConfig(training=t))


def test_the_default_recipe_is_the_notebooks_adam_on_class_indices():
    """Every existing config trains as before: plain Adam at the config's rate (no decay,
    clipping, accumulation or EMA), ReduceLROnPlateau's float rate, sparse labels."""
    t = TrainingConfig(learning_rate=0.003)
    (phase,) = phases_of(t)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    made = make_optimizer(t, phase, 5, model)
    plain = keras.optimizers.Adam(0.003, name=made.name)
    assert made.get_config() == plain.get_config()
    assert loss(t) == "sparse_categorical_crossentropy" and Targets.of(t, 5) is None


def test_weight_decay_spares_biases_and_the_optimizers_are_those_asked_for():
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3), keras.layers.BatchNormalization()]
    )
    kinds = {
        "adamw": keras.optimizers.AdamW,
        "sgd": keras.optimizers.SGD,
        "lion": keras.optimizers.Lion,
        "adam": keras.optimizers.Adam,
    }
    for name, cls in kinds.items():
        t = TrainingConfig(
            optimizer=name, weight_decay=0.1, clipnorm=1.0, gradient_accumulation_steps=2
        )
        made = make_optimizer(t, phases_of(t)[0], 5, model)
        assert type(made) is cls and made.weight_decay == 0.1 and made.clipnorm == 1.0
        assert made.gradient_accumulation_steps == 2
        decayed = [v for v in model.trainable_variables if made._use_weight_decay(v)]
        assert [len(v.shape) for v in decayed] == [2]  # the kernel, not bias, gamma, beta
    sgd = make_optimizer(TrainingConfig(optimizer="sgd"), phases_of(TrainingConfig())[0], 5, model)
    assert sgd.nesterov and sgd.momentum == 0.9


def test_label_smoothing_changes_the_loss_of_a_known_batch_as_expected():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype=np.float32)
    labels = np.array([0, 1])
    onehot = np.eye(3, dtype=np.float32)[labels]
    for ls in (0.0, 0.1, 0.3):
        target = onehot * (1 - ls) + ls / 3
        expected = np.mean(-np.sum(target * np.log(probs), axis=1))
        t = (
            TrainingConfig(label_smoothing=ls)
            if ls
            else TrainingConfig(batch_augmentation=[MixUp(type="mixup")])
        )
        got = float(keras.ops.convert_to_numpy(loss(t)(onehot, probs)))
        assert got == pytest.approx(expected, rel=1e-5)


def test_mixup_mixes_images_and_labels_with_the_drawn_lambda():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (5, 8, 8, 3)).astype(np.float32)
    y = np.eye(5, dtype=np.float32)  # image i is class i: a row names its partner
    mixed, soft = mix_batch(x, y, [MixUp(type="mixup", alpha=0.4)], np.random.default_rng(1))
    np.testing.assert_allclose(soft.sum(axis=1), 1, rtol=1e-6)
    for i in range(5):
        lam = soft[i, i]
        partner = int(np.argmax(np.where(np.arange(5) == i, -1, soft[i])))
        if lam == 1.0:  # paired with itself
            np.testing.assert_allclose(mixed[i], x[i], rtol=1e-6)
            continue
        np.testing.assert_allclose(mixed[i], lam * x[i] + (1 - lam) * x[partner], rtol=1e-5)
    assert not np.allclose(mixed, x)


def test_cutmix_labels_follow_the_share_of_pasted_pixels():
    x = np.stack([np.full((16, 16, 3), float(i)) for i in range(5)]).astype(np.float32)
    y = np.eye(5, dtype=np.float32)
    mixed, soft = mix_batch(x, y, [CutMix(type="cutmix")], np.random.default_rng(3))
    for i in range(5):
        own = np.mean(mixed[i] == i)
        if soft[i, i] < 1:
            assert soft[i, i] == pytest.approx(own, abs=1e-6)
    assert soft.sum(axis=1) == pytest.approx(1.0)


def test_mixing_is_drawn_from_the_batch_position_alone():
    targets = Targets(5, (MixUp(type="mixup", alpha=1.0),))
    x = np.random.default_rng(0).uniform(size=(6, 4, 4, 3)).astype(np.float32)
    labels = np.arange(6) % 5
    a = targets.training(x, labels, seed=1, epoch=2, step=3)
    b = targets.training(x, labels, seed=1, epoch=2, step=3)
    c = targets.training(x, labels, seed=1, epoch=2, step=4)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize(
    ("training", "message"),
    [
        (
            {"schedule": "cosine", "warmup_epochs": 2, "epochs": 2},
            "training: warmup_epochs (2) must be less than epochs (2)",
        ),
        ({"warmup_epochs": 1}, "warmup_epochs needs a schedule that runs by step"),
        (
            {"label_smoothing": 0.6},
            "training.label_smoothing: input should be less than or equal to 0.5",
        ),
        (
            {"batch_augmentation": [{"type": "mixup"}, {"type": "mixup"}]},
            "each of mixup and cutmix at most once",
        ),
        ({"optimizer": "rmsprop"}, "training.optimizer: input should be 'adam', 'adamw'"),
        (
            {"batch_augmentation": [{"type": "mixup", "alpha": 0}]},
            "alpha: input should be greater than 0",
        ),
    ],
)
def test_recipe_options_are_checked_by_the_schema(cli, tmp_path, dataset, training, message):
    config = write_config(tmp_path / "bad.yaml", dataset, tmp_path / "runs", training=training)
    code, _, err = cli("train", config)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()


def test_recipe_options_show_in_config_and_models(cli, tmp_path, dataset):
    config = _recipe_config(tmp_path, dataset, "shown")
    code, out, _ = cli("config", config)
    assert code == 0
    for key in (
        "optimizer: adamw",
        "schedule: cosine",
        "warmup_epochs",
        "label_smoothing",
        "batch_augmentation",
        "type: cutmix",
        "decay: 0.9",
        "weight_decay",
    ):
        assert key in out, key
    code, out, _ = cli("models")
    for name in ("randaugment", "random_erasing", "augmix", "num_ops", "magnitude"):
        assert name in out, name
    cfg = load_config(config, ["training.optimizer=sgd"])
    assert cfg.training.optimizer == "sgd"


class _StopAt(keras.callbacks.Callback):
    """Interrupts the run as epoch `epoch` (1-based) begins, as Ctrl-C would."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.stop_epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch + 1 == self.stop_epoch:
            raise KeyboardInterrupt


class _Snapshot(keras.callbacks.Callback):
    """The model's weights and the optimizer's other copy at each epoch's end."""

    def __init__(self) -> None:
        super().__init__()
        self.model_weights: list[list[np.ndarray]] = []
        self.other: list[list[np.ndarray]] = []

    def on_epoch_end(self, epoch, logs=None):
        self.model_weights.append([np.array(v) for v in self.model.trainable_variables])
        averages = self.model.optimizer._model_variables_moving_average
        self.other.append([np.array(v) for v in averages])


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory, dataset):
    """One uninterrupted recipe run (cosine + warm-up, AdamW, smoothing, MixUp/CutMix,
    EMA), with snapshots of its weights."""
    from animalcnn.training.session import start

    tmp = tmp_path_factory.mktemp("recipe")
    snapshot = _Snapshot()
    run = start(load_config(_recipe_config(tmp, dataset, "whole")), callbacks=[snapshot])
    return run, snapshot


def test_the_rate_follows_the_schedule_and_history_plots_it(recipe_run):
    run, _ = recipe_run
    history = pd.read_csv(run.file("history.csv"))
    steps = math.ceil(json.loads(run.file("metrics.json").read_text())["images"]["train"] / 16)
    schedule = StepSchedule(0.004, 6 * steps, steps, "cosine", 0.0)
    expected = [float(schedule(e * steps)) for e in range(6)]
    np.testing.assert_allclose(history["lr"], expected, rtol=1e-5)
    assert history["lr"].iloc[0] == pytest.approx(0.0004)  # a tenth of the rate
    assert run.file("history.png").stat().st_size > 10_000


def test_ema_weights_differ_from_the_raw_ones_and_are_what_the_checkpoint_holds(recipe_run):
    run, snapshot = recipe_run
    # (at the last epoch's end Keras copies the average over the raw weights: both are it)
    for ema, raw in zip(snapshot.model_weights[:-1], snapshot.other[:-1], strict=True):
        assert any(not np.allclose(a, b) for a, b in zip(ema, raw, strict=True))
    best = json.loads(run.file("metrics.json").read_text())["best"]["epoch"]
    saved = [np.array(v) for v in run.best_model().trainable_variables]
    for a, b in zip(saved, snapshot.model_weights[best - 1], strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_recipe_run_resumes_exactly(recipe_run, tmp_path, dataset):
    """Interrupted after epoch 3 and resumed: optimizer state, schedule position, EMA
    weights and MixUp's draws continue, so the history is the uninterrupted one."""
    from animalcnn.training.session import TrainingFailed, resume, start

    whole, _ = recipe_run
    cfg = load_config(_recipe_config(tmp_path, dataset, "cut"))
    with pytest.raises(TrainingFailed) as stopped:
        start(cfg, callbacks=[_StopAt(4)])
    assert stopped.value.status == "interrupted"
    run = resume(stopped.value.run)
    ours = pd.read_csv(run.file("history.csv")).drop(columns="seconds")
    theirs = pd.read_csv(whole.file("history.csv")).drop(columns="seconds")
    pd.testing.assert_frame_equal(ours, theirs)


def test_tta_averages_the_image_and_its_mirror(trained_run):
    from animalcnn.data.decoding import decode
    from animalcnn.data.discovery import read_split
    from animalcnn.evaluation.inference import in_memory, probabilities
    from animalcnn.run_folder import RunFolder

    run = RunFolder.open(trained_run)
    cfg = run.config()
    _, split = read_split(cfg.data.dir / cfg.data.test_split, run.metrics().classes)
    images = decode(split, cfg.data)
    model = run.best_model()
    plain = probabilities(model, images, 8)
    mirrored = probabilities(model, in_memory(images.batch(np.arange(len(images)))[:, :, ::-1]), 8)
    flip = probabilities(model, images, 8, "flip")
    np.testing.assert_allclose(flip, (plain + mirrored) / 2, rtol=1e-5, atol=1e-6)
    crops = probabilities(model, images, 8, "crops")
    assert crops.shape == plain.shape and not np.allclose(crops, flip)
    np.testing.assert_allclose(crops.sum(axis=1), 1, rtol=1e-5)


def test_evaluate_and_predict_record_tta(cli, run_copy, dataset, tmp_path):
    code, out, err = cli("evaluate", run_copy, "--tta", "flip")
    assert code == 0, err
    assert json.loads((run_copy / "evaluation.json").read_text())["tta"] == "flip"
    code, _, err = cli("compare", run_copy, "--csv", tmp_path / "c.csv")
    assert code == 0 and pd.read_csv(tmp_path / "c.csv")["tta"][0] == "flip"
    code, _, err = cli(
        "predict", run_copy, dataset / "inf", "--tta", "crops", "--csv", tmp_path / "p.csv"
    )
    assert code == 0, err
    code, _, err = cli("evaluate", run_copy, "--tta", "sideways")
    assert code == 2 and "sideways" in err


def test_a_float16_recipe_run_resumes_exactly(tmp_path, dataset):
    """Under float16 Keras wraps the optimizer in a LossScaleOptimizer: its loss scale
    carries over too, so the resumed history is the uninterrupted one."""
    from animalcnn.training.session import TrainingFailed, resume, start

    def config(name: str):
        return load_config(
            write_config(
                tmp_path / f"{name}.yaml",
                dataset,
                tmp_path / name,
                training={
                    "epochs": 3,
                    "mixed_precision": "float16",
                    "optimizer": "adamw",
                    "weight_decay": 0.05,
                    "schedule": "cosine",
                    "ema": {"decay": 0.9},
                },
            )
        )

    try:
        whole = start(config("whole"))
        with pytest.raises(TrainingFailed) as stopped:
            start(config("cut"), callbacks=[_StopAt(3)])
        run = resume(stopped.value.run)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert json.loads(run.file("metrics.json").read_text())["precision"] == "mixed_float16"
    ours = pd.read_csv(run.file("history.csv")).drop(columns="seconds")
    theirs = pd.read_csv(whole.file("history.csv")).drop(columns="seconds")
    pd.testing.assert_frame_equal(ours, theirs)


def backbone_steps() -> dict[str, list[float]]:
    """One step of ones as gradients through each optimizer's finetune phase: how far
    each variable (backbone kernel and bias, head kernel and bias) moved."""
    from animalcnn.config.schema import TrainingConfig
    from animalcnn.models.pretrained import BACKBONE_LAYER
    from animalcnn.training.phases import Phase

    backbone = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)], name=BACKBONE_LAYER)
    model = keras.Sequential([keras.Input((4,)), backbone, keras.layers.Dense(2)])
    out = {}
    for kind in ("sgd", "adam", "adamw"):
        t = TrainingConfig(optimizer=kind, momentum=0.0, weight_decay=0.0)
        phase = Phase("finetune", 2, 0.01, 2, 2, "plateau", 0.0, "all", 0.1)
        opt = make_optimizer(t, phase, 5, model)
        before = [np.array(v) for v in model.trainable_variables]
        opt.apply(
            [keras.ops.ones(v.shape) for v in model.trainable_variables],
            model.trainable_variables,
        )
        out[kind] = [
            float(np.abs(np.array(v) - b).max())
            for v, b in zip(model.trainable_variables, before, strict=True)
        ]
    return out


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_the_backbone_steps_at_its_share_of_the_rate(backend):
    """`transfer.finetune.backbone_lr_factor`: the backbone's step is that share of the
    head's, for SGD (a scaled gradient would do) and Adam (where it would not)."""
    import os
    import subprocess
    import sys

    from animalcnn import backends

    if not backends.installed(backend):
        pytest.skip(f"{backend} is not installed here")
    if backend == "tensorflow":  # this process's backend
        steps = backbone_steps()
    else:
        env = {**os.environ, "KERAS_BACKEND": backend, "CUDA_VISIBLE_DEVICES": ""}
        code = "import json, tests.test_recipes as t; print(json.dumps(t.backbone_steps()))"
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        steps = json.loads(done.stdout.strip().splitlines()[-1])
    for kind, (kernel, bias, head_kernel, head_bias) in steps.items():
        assert head_kernel == pytest.approx(0.01, rel=1e-3), kind  # the head at the rate
        assert kernel == pytest.approx(0.001, rel=1e-3) and bias == pytest.approx(0.001, rel=1e-3)
        assert head_bias == pytest.approx(0.01, rel=1e-3)


def test_the_backbone_factor_is_checked_and_reaches_the_finetune_phase(tmp_path, dataset):
    model = {"arch": "mobilenetv2", "params": {}}
    config = write_config(
        tmp_path / "ft.yaml",
        dataset,
        tmp_path / "runs",
        model=model,
        transfer={
            "strategy": "finetune",
            "weights": "none",
            "finetune": {"backbone_lr_factor": 0.1},
        },
    )
    head, finetune = phases(load_config(config))
    assert head.backbone_lr_factor == 1.0 and finetune.backbone_lr_factor == 0.1
    ask = {"strategy": "finetune", "finetune": {"backbone_lr_factor": 2}}
    bad = write_config(tmp_path / "bad.yaml", dataset, tmp_path / "runs", model=model, transfer=ask)
    with pytest.raises(Exception, match="backbone_lr_factor"):
        load_config(bad)


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_validation_with_tta_records_the_averaged_views(tmp_path, dataset, backend, cli):
    """`training.tta`: the history's val_loss and val_accuracy are those of the mean of
    each validation image's views, as `evaluation.inference` computes them for the saved
    best model (with an EMA of the weights too, which on JAX must survive the pass). JAX
    trains in a process of its own, TensorFlow in this one."""
    import os
    import subprocess
    import sys

    from animalcnn import backends
    from animalcnn.data.loading import load_training_data
    from animalcnn.evaluation.inference import probabilities
    from animalcnn.run_folder import RunFolder

    if not backends.installed(backend):
        pytest.skip(f"{backend} is not installed here")
    config = write_config(
        tmp_path / "tta.yaml",
        dataset,
        tmp_path / "runs",
        training={
            "epochs": 2,
            "tta": "flip",
            "ema": {"decay": 0.5},
            "val_patience": 10,
            "backend": backend,
        },
    )
    if backend == "tensorflow":
        code, _, err = cli("train", config)
        assert code == 0, err
    else:
        done = subprocess.run(
            [sys.executable, "-m", "animalcnn", "train", str(config)],
            capture_output=True,
            text=True,
            env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    (run,) = (tmp_path / "runs").iterdir()
    folder = RunFolder(run)
    history = pd.read_csv(run / "history.csv")
    best = history.loc[history["epoch"] == folder.metrics().best_epoch].iloc[0]
    cfg = load_config(config)
    val = load_training_data(cfg).val
    probs = probabilities(folder.best_model(), val, 16, "flip")
    labels = np.asarray(val.labels)
    expected = -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1)).mean()
    assert best["val_loss"] == pytest.approx(expected, rel=1e-4, abs=1e-5)
    assert best["val_accuracy"] == pytest.approx((probs.argmax(1) == labels).mean())
