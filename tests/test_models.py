"""The custom networks: the notebook's parameter counts, and their size limits."""

from __future__ import annotations

import json

import pytest

from animalcnn.models import build_model, registry
from animalcnn.models.configs import validate_config

from .conftest import CONFIGS

# The notebook's counts (docs/parameter-counts.md): (total, non-trainable) at 100x100x3,
# 5 classes.
SEED_COUNTS = {
    "simple": (726_277, 0),
    "mid": (1_614_885, 0),
    "resnet": (11_705_333, 7_808),
    "inception": (14_633_877, 1_152),
    "resnet_aug": (11_705_333, 7_808),
}


@pytest.mark.parametrize("name", SEED_COUNTS)
def test_summary_json_gives_the_notebook_counts(cli, name):
    code, out, err = cli("summary", CONFIGS / f"{name}.yaml", "--json")
    assert code == 0, err
    total, frozen = SEED_COUNTS[name]
    counts = json.loads(out)
    assert counts["total"] == total and counts["non_trainable"] == frozen
    assert counts["trainable"] == total - frozen and counts["classes"] == 5


def test_the_fast_recipe_is_the_narrow_vgg(cli):
    # 32-64-128 filters, two conv-BN-relu a block at 56 px; the BN moving statistics
    # (mean and variance of 448 channels) are the non-trainable ones.
    code, out, err = cli("summary", CONFIGS / "fast.yaml", "--json")
    assert code == 0, err
    counts = json.loads(out)
    assert (counts["total"], counts["non_trainable"]) == (288_997, 896)


@pytest.mark.parametrize(
    ("arch", "params"),
    [
        ("mid", {"filters": [8, 16]}),
        ("mid", {"filters": [8]}),
        ("inception", {"blocks": 2}),
        ("vgg", {"filters": [8, 8, 16], "convs": 1}),
    ],
)
def test_smallest_input_builds_and_one_less_does_not(arch, params):
    def build(size: int):
        cfg = {"model": {"arch": arch, "params": params}, "data": {"img_size": 64}}
        model_cfg = validate_config(cfg, "x").model_copy(deep=True)
        model_cfg.data.img_size = size  # past validation, to reach Keras itself
        return build_model(model_cfg, 3)

    arch_def = registry.get(arch)
    smallest = arch_def.smallest_input(arch_def.params.model_validate(params))
    assert build(smallest).output_shape == (None, 3)
    with pytest.raises(ValueError):
        build(smallest - 1)


def test_the_registry_lists_every_builtin():
    assert registry.names() == [
        "efficientnetb0",
        "inception",
        "mid",
        "mobilenetv2",
        "resnet",
        "resnet50v2",
        "simple",
        "vgg",
        "xception",
    ]
