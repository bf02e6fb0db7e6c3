"""Properties that hold for any input (Hypothesis): config overrides round-trip, any bytes
decode to an image or a reason, and the splits are disjoint, stratified and stable."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from animalcnn.config import ExperimentConfig
from animalcnn.errors import ConfigError
from animalcnn.models.configs import load_config

from .conftest import CONFIGS

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

OVERRIDES = st.fixed_dictionaries(
    {
        "training.epochs": st.integers(1, 500),
        "training.learning_rate": st.floats(1e-7, 1.0, allow_nan=False),
        "data.batch_size": st.integers(1, 4096),
        "seed": st.integers(0, 2**32 - 1),
        "data.val_fraction": st.floats(0.01, 0.5, allow_nan=False),
    }
)


@SETTINGS
@given(values=OVERRIDES)
def test_set_values_arrive_and_a_written_config_reads_back_the_same(tmp_path, values):
    sets = [f"{k}={v!r}" for k, v in values.items()]
    cfg = load_config(CONFIGS / "simple.yaml", sets)
    for key, value in values.items():
        node = cfg
        for part in key.split("."):
            node = getattr(node, part)
        assert node == value, key
    written = tmp_path / "again.yaml"
    written.write_text(cfg.to_yaml())
    assert load_config(written) == cfg


@SETTINGS
@given(key=st.text(min_size=1, max_size=30), value=st.text(max_size=30))
def test_any_set_is_a_config_or_one_line_error(key, value):
    try:
        cfg = load_config(CONFIGS / "simple.yaml", [f"{key}={value}"])
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc)
    else:
        assert isinstance(cfg, ExperimentConfig)


def _png(width: int, height: int, mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


@SETTINGS
@given(
    data=st.one_of(
        st.binary(max_size=2000),
        st.builds(
            lambda d, cut, noise: d[:cut] + noise,
            st.builds(
                _png,
                st.integers(1, 40),
                st.integers(1, 40),
                st.sampled_from(["RGB", "L", "RGBA", "P", "I;16", "1"]),
            ),
            st.integers(0, 400),
            st.binary(max_size=50),
        ),
    ),
    as_file=st.booleans(),
)
def test_any_bytes_decode_to_an_image_or_a_reason(tmp_path, data, as_file):
    from animalcnn.data.decoding import try_load

    if as_file:
        source = tmp_path / "any.png"
        source.write_bytes(data)
    else:
        source = io.BytesIO(data)
    result = try_load(source, 16)
    if isinstance(result, str):
        assert result and "\n" not in result
    else:
        assert result.shape == (16, 16, 3) and result.dtype == np.uint8


@SETTINGS
@given(
    counts=st.lists(st.integers(1, 30), min_size=2, max_size=6),
    fraction=st.floats(0.05, 0.5),
    seed=st.integers(0, 10_000),
)
def test_the_split_is_disjoint_stratified_and_stable(counts, fraction, seed):
    from animalcnn.data.discovery import Split, train_val_split

    labels = np.concatenate([np.full(n, i, np.int32) for i, n in enumerate(counts)])
    split = Split([Path(f"img{i}.png") for i in range(len(labels))], labels)
    train, val = train_val_split(split, fraction, seed)
    assert set(train.paths).isdisjoint(val.paths)
    assert len(train) + len(val) == len(split)
    for label, n in enumerate(counts):
        in_val = int((val.labels == label).sum())
        assert (n - in_val) >= 1  # every class keeps a training image
        if n >= 2:
            assert in_val >= 1 and in_val == min(n - 1, max(1, round(n * fraction)))
    again, _ = train_val_split(split, fraction, seed)
    assert again.paths == train.paths
