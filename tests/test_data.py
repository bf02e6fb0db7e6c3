"""Finding, splitting and decoding image folders, and the errors for bad ones."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from animalcnn.config import DataConfig
from animalcnn.data.decoding import decode, load_image
from animalcnn.data.discovery import discover, read_split, train_val_split
from animalcnn.errors import DataError


def test_discover_splits_per_class_with_the_seed(dataset: Path):
    cfg = DataConfig(dir=dataset, img_size=32, val_fraction=0.25)
    ds = discover(cfg, seed=1)
    assert ds.classes == ["circle", "cross", "square", "stripes", "triangle"]
    assert len(ds.train) + len(ds.val) == 80 and len(ds.test) == 20
    assert np.bincount(ds.val.labels).tolist() == [4] * 5  # stratified: 25 % of 16 each
    assert not set(ds.train.paths) & set(ds.val.paths)
    again = discover(cfg, seed=1)
    assert again.val.paths == ds.val.paths
    assert discover(cfg, seed=2).val.paths != ds.val.paths


def test_split_keeps_a_training_image_per_class():
    from animalcnn.data.discovery import Split

    split = Split([Path(f"{i}.png") for i in range(4)], np.array([0, 0, 1, 1], np.int32))
    train, val = train_val_split(split, 0.9, seed=0)
    assert np.bincount(train.labels).tolist() == [1, 1] and len(val) == 2


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "RGBA", "LA", "I;16"])
def test_any_image_mode_loads_as_rgb_uint8(tmp_path: Path, mode: str):
    img = Image.new("RGB", (40, 20), (200, 30, 10)).convert(mode)
    path = tmp_path / f"img.{'png' if mode != 'RGB' else 'jpg'}"
    img.save(path)
    array = load_image(path, 16)
    assert array.shape == (16, 16, 3) and array.dtype == np.uint8


def test_transparent_pixels_become_white(tmp_path: Path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(path)
    assert (load_image(path, 8) == 255).all()


def _copy(dataset: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(dataset, tmp_path / "copy"))


def test_bad_files_are_listed_not_fatal(dataset: Path, tmp_path: Path):
    root = _copy(dataset, tmp_path)
    (root / "train/cross/empty.jpg").write_bytes(b"")
    (root / "train/cross/page.jpg").write_text("<html>not an image</html>")
    good = next((root / "train/circle").glob("*.jpg"))
    (root / "train/circle/cut.jpg").write_bytes(good.read_bytes()[:200])
    (root / "train/circle/notes.txt").write_text("ignored: not an image suffix")
    (root / "train/circle/.DS_Store").write_bytes(b"\0\1")
    _, split = read_split(root / "train")
    images = decode(split, DataConfig(dir=root, img_size=32))
    assert sorted(b.path.name for b in images.bad) == ["cut.jpg", "empty.jpg", "page.jpg"]
    reasons = {b.path.name: b.reason for b in images.bad}
    assert reasons["empty.jpg"] == "empty file"
    assert reasons["page.jpg"] == "not an image (cannot identify the format)"
    assert reasons["cut.jpg"].startswith("cannot decode")
    assert len(images) == 80 and images.batch(np.arange(3)).shape == (3, 32, 32, 3)


def test_disk_cache_is_reused_and_matches_memory(dataset: Path, tmp_path: Path):
    _, split = read_split(dataset / "val")
    memory = decode(split, DataConfig(dir=dataset, img_size=24))
    cfg = DataConfig(dir=dataset, img_size=24, cache="disk", cache_dir=tmp_path / "cache")
    first = decode(split, cfg)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1
    second = decode(split, cfg)
    idx = np.array([5, 0, 19, 3])
    assert np.array_equal(first.batch(idx), memory.batch(idx))
    assert np.array_equal(second.batch(idx), memory.batch(idx))
    none = decode(split, cfg.model_copy(update={"cache": "none"}))
    assert none.array is None and np.array_equal(none.batch(idx), memory.batch(idx))


def test_runs_decoding_into_one_disk_cache_at_once_do_not_clash(dataset: Path, tmp_path: Path):
    from concurrent.futures import ThreadPoolExecutor

    _, split = read_split(dataset / "train")
    cfg = DataConfig(dir=dataset, img_size=24, cache="disk", cache_dir=tmp_path / "cache")
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: decode(split, cfg), range(3)))
    memory = decode(split, DataConfig(dir=dataset, img_size=24))
    idx = np.arange(len(memory))
    for images in results:
        assert np.array_equal(images.batch(idx), memory.batch(idx))
    assert sorted(p.suffix for p in (tmp_path / "cache").iterdir()) == [".json", ".npy"]


def test_missing_and_empty_folders_are_one_line_errors(dataset: Path, tmp_path: Path):
    with pytest.raises(DataError, match="data.dir: .*nowhere: folder not found"):
        discover(DataConfig(dir=tmp_path / "nowhere"), 0)
    root = _copy(dataset, tmp_path)
    for f in (root / "train/square").iterdir():
        f.unlink()
    with pytest.raises(DataError, match=r"train/square: class 'square' has no images"):
        discover(DataConfig(dir=root), 0)


def test_test_split_must_have_the_training_classes(dataset: Path, tmp_path: Path):
    root = _copy(dataset, tmp_path)
    shutil.rmtree(root / "val/lion", ignore_errors=True)
    (root / "val/circle").rename(root / "val/lion")
    with pytest.raises(DataError, match=r"missing \['circle'\], extra \['lion'\]"):
        discover(DataConfig(dir=root), 0)


def test_the_memory_cache_is_held_once(dataset: Path):
    """The tensor the pipeline gathers batches from is the decoded array itself."""
    from animalcnn.data import pipeline

    cfg = DataConfig(dir=dataset, img_size=32)
    images = decode(discover(cfg, seed=0).train, cfg)
    table = pipeline._as_tensor(images.array)
    images.array[0, 0, 0] = (1, 2, 3)
    assert table[0, 0, 0].numpy().tolist() == [1, 2, 3]  # same memory, no copy

    unaligned = np.ones(32 * 32 * 3 + 1, np.uint8)[1:].reshape(32, 32, 3)  # copied instead
    np.testing.assert_array_equal(pipeline._as_tensor(unaligned).numpy(), unaligned)
    assert pipeline._as_tensor(np.zeros((0, 32, 32, 3), np.uint8)).shape == (0, 32, 32, 3)
