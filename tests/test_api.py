"""The Python API: train, read, score, use and draw a run through the functions the CLI
calls, with the CLI's errors and its text; no TensorFlow until a call needs it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import animalcnn
from animalcnn.run_folder import EVALUATION

from .conftest import write_config


@pytest.fixture(scope="module")
def api_run(tmp_path_factory, dataset: Path) -> animalcnn.Run:
    """A run trained through the API, one epoch of the tiny config."""
    tmp = tmp_path_factory.mktemp("api")
    config = write_config(tmp / "tiny.yaml", dataset, tmp / "elsewhere")
    return animalcnn.train(config, runs_dir=tmp / "runs", **{"training.epochs": 1})


def test_train_takes_overrides_by_dotted_key_and_returns_the_run(api_run: animalcnn.Run):
    assert api_run.path.parent.name == "runs" and api_run.status == "completed"
    assert api_run.config.training.epochs == 1
    assert api_run.history["epoch"].tolist() == [1]
    assert api_run.metrics.classes == ["circle", "cross", "square", "stripes", "triangle"]
    best = api_run.metrics.best.val_accuracy
    assert repr(api_run) == (
        f"<Run {api_run.name}: completed, 1 epochs, best val accuracy {best:.2%}>"
    )
    assert f">{api_run.name}" in api_run._repr_html_()


def test_load_config_takes_a_file_a_mapping_or_a_config_with_the_clis_errors(
    tmp_path: Path, dataset: Path
):
    config = write_config(tmp_path / "tiny.yaml", dataset, tmp_path / "runs")
    cfg = animalcnn.load_config(config, set={"training.learning_rate": 1e-5})
    assert cfg.training.learning_rate == 1e-5
    again = animalcnn.load_config(cfg, **{"model.params.activation": "elu"})
    assert again.model.params["activation"] == "elu" and again.training.learning_rate == 1e-5
    data = {"name": "from-a-dict", "data": {"dir": str(dataset)}, "model": {"arch": "mid"}}
    assert animalcnn.load_config(data).model.params["filters"]  # the architecture's defaults
    with pytest.raises(animalcnn.ConfigError) as bad:
        animalcnn.load_config(config, **{"training.epochs": 0})
    assert str(bad.value) == f"{config}: training.epochs: input should be greater than 0"
    with pytest.raises(animalcnn.ConfigError, match="unknown field 'training.epoch'"):
        animalcnn.load_config(config, **{"training.epoch": 3})
    with pytest.raises(animalcnn.DataError, match="data.dir: .*folder not found"):
        animalcnn.train(config, **{"data.dir": str(tmp_path / "absent")})
    assert not (tmp_path / "runs").exists()


def test_a_run_scores_predicts_and_draws(trained_run: Path, tmp_path: Path, dataset: Path):
    run = animalcnn.Run(shutil.copytree(trained_run, tmp_path / trained_run.name))
    result = run.evaluate(tta="flip")
    assert 0.0 <= result.accuracy <= 1.0 and (run.path / EVALUATION).is_file()
    assert result.tta == "flip" and result.per_class.keys() == set(run.metrics.classes)
    assert run.test.state == "scored" and run.test.evaluation == result
    assert f"test accuracy {result.accuracy:.2%}" in repr(run)
    labels = run.predict(dataset / "inf")
    assert len(labels) == 6 and set(labels["predicted"]) <= set(run.metrics.classes)
    assert run.model is run.model  # loaded once
    from PIL import Image

    first = next(p for p in sorted((dataset / "inf").iterdir()) if p.suffix == ".jpg")
    pixels = np.asarray(Image.open(first).convert("RGB"))
    from_array = run.predict(np.stack([pixels, pixels]))
    from_file = run.predict(first)
    assert from_array["file"].tolist() == ["array[0]", "array[1]"]
    assert from_array["predicted"].tolist() == from_file["predicted"].tolist() * 2
    np.testing.assert_allclose(from_array["confidence"], from_file["confidence"][0], atol=1e-5)
    assert len(run.predict(pixels[..., 0])) == 1  # one gray image
    with pytest.raises(animalcnn.DataError, match="give uint8"):
        run.predict(pixels.astype(np.float32))
    maps = run.explain(dataset / "inf", class_name="circle")
    assert len(maps) == 6 and all(Path(f).is_file() for f in maps["output"])
    assert all(Path(f).parent == run.path / "explain" for f in maps["output"])
    figure = run.plot()
    assert len(figure.axes) >= 3  # loss, accuracy, learning rate
    with pytest.raises(animalcnn.RunFolderError, match="absent"):
        animalcnn.Run(tmp_path / "absent")


def test_reading_runs_imports_no_tensorflow(trained_run: Path):
    code = (
        "import sys, animalcnn\n"
        f"run = animalcnn.Run({str(trained_run)!r})\n"
        "run.history, run.metrics, run.status, repr(run), run._repr_html_(), run.plot()\n"
        f"animalcnn.runs({str(trained_run.parent)!r}).frame\n"
        "print(sorted({'tensorflow', 'keras', 'jax'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_a_stopped_run_resumes_to_completion(tmp_path: Path, dataset: Path):
    from .test_precision import InterruptAfter

    config = write_config(tmp_path / "cut.yaml", dataset, tmp_path / "runs")
    with pytest.raises(animalcnn.TrainingFailed) as stopped:
        animalcnn.train(config, callbacks=[InterruptAfter(1)])
    assert stopped.value.status == "interrupted"
    run = animalcnn.resume(stopped.value.run.path)
    assert run.status == "completed" and run.history["epoch"].tolist() == [1, 2]


def test_a_sweep_runs_its_grid_and_returns_its_trials(tmp_path: Path, dataset: Path):
    import yaml

    import animalcnn.sweep.spec  # noqa: F401 (the package's import must not hide the function)

    config = write_config(tmp_path / "tiny.yaml", dataset, tmp_path / "unused")
    spec = {
        "name": "lr",
        "base": str(config),
        "method": "grid",
        "pruner": "none",
        "parameters": {"training.learning_rate": {"values": [0.001, 0.01]}},
    }
    (tmp_path / "lr.yaml").write_text(yaml.safe_dump(spec))
    trials = animalcnn.sweep(
        tmp_path / "lr.yaml", set={"training.epochs": 1}, runs_dir=tmp_path / "runs"
    )
    assert len(trials) == 2 and (tmp_path / "runs" / "lr" / "sweep.csv").is_file()
    rates = sorted(trials.frame["training.learning_rate"].tolist())
    assert rates == [0.001, 0.01] and trials.frame["epochs"].tolist() == [1, 1]
    again = animalcnn.sweep(
        tmp_path / "lr.yaml", set={"training.epochs": 1}, runs_dir=tmp_path / "runs"
    )  # a second call: nothing left to run
    assert sorted(again.frame["training.learning_rate"].tolist()) == rates
