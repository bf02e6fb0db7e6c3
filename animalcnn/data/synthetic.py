"""A small synthetic image dataset in the Animals layout, for the demo and the tests.

Each class is a shape (drawn at random position, size, rotation and colour on a
noisy background), saved in the formats scraped photo folders mix: JPEG, RGB,
gray, palette and RGBA PNG. It is learnable but not trivial at low resolution.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from animalcnn.atomic import atomic_path

SHAPES = ["circle", "cross", "square", "stripes", "triangle"]


def _polygon(cx: float, cy: float, r: float, sides: int, angle: float) -> list[tuple]:
    return [
        (
            cx + r * math.cos(angle + 2 * math.pi * k / sides),
            cy + r * math.sin(angle + 2 * math.pi * k / sides),
        )
        for k in range(sides)
    ]


def draw(shape: str, size: int, rng: np.random.Generator) -> Image.Image:
    """One RGB image of `shape`."""
    base = rng.integers(0, 256, 3)
    noise = rng.normal(0, 25, (size, size, 3))
    background = np.clip(base + noise, 0, 255).astype(np.uint8)
    img = Image.fromarray(background, "RGB")
    d = ImageDraw.Draw(img)
    colour = tuple(int(c) for c in (base + 128 + rng.integers(-40, 40, 3)) % 256)
    r = size * rng.uniform(0.18, 0.32)
    cx, cy = rng.uniform(r, size - r, 2)
    angle = rng.uniform(0, 2 * math.pi)
    width = max(2, int(r / 3))
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif shape == "square":
        d.polygon(_polygon(cx, cy, r * 1.2, 4, angle), fill=colour)
    elif shape == "triangle":
        d.polygon(_polygon(cx, cy, r * 1.3, 3, angle), fill=colour)
    elif shape == "cross":
        for a in (angle, angle + math.pi / 2):
            dx, dy = r * math.cos(a), r * math.sin(a)
            d.line([cx - dx, cy - dy, cx + dx, cy + dy], fill=colour, width=width)
    elif shape == "stripes":
        for k in range(-3, 4):
            ox, oy = k * 2 * width * math.cos(angle), k * 2 * width * math.sin(angle)
            dx, dy = size * math.cos(angle + math.pi / 2), size * math.sin(angle + math.pi / 2)
            d.line(
                [cx + ox - dx, cy + oy - dy, cx + ox + dx, cy + oy + dy], fill=colour, width=width
            )
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return img.filter(ImageFilter.GaussianBlur(0.6))


def save(img: Image.Image, stem: Path, k: int) -> Path:
    """Save in one of the formats real folders mix, chosen by `k`."""
    kind = k % 6
    if kind == 1:
        path, img = stem.with_suffix(".png"), img
    elif kind == 2:
        path, img = stem.with_suffix(".png"), img.convert("L")
    elif kind == 3:
        path, img = stem.with_suffix(".png"), img.convert("P", palette=Image.Palette.ADAPTIVE)
    elif kind == 4:
        path, img = stem.with_suffix(".png"), img.convert("RGBA")
    elif kind == 5:
        path = stem.with_suffix(".jpeg")
    else:
        path = stem.with_suffix(".jpg")
    with atomic_path(path, suffix=path.suffix) as tmp:  # PIL picks the format by suffix
        img.save(tmp)
    return path


def make_dataset(
    root: Path,
    per_class: int = 60,
    test_per_class: int = 20,
    unlabeled: int = 10,
    size: int = 64,
    seed: int = 0,
    classes: list[str] | None = None,
) -> Path:
    """Write `root/train/<class>/`, `root/val/<class>/` and `root/inf/`; returns `root`."""
    classes = classes or SHAPES
    rng = np.random.default_rng(seed)
    for split, n in (("train", per_class), ("val", test_per_class)):
        for shape in classes:
            folder = root / split / shape
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(n):
                save(draw(shape, size, rng), folder / f"{shape}_{k:04d}", k)
    (root / "inf").mkdir(parents=True, exist_ok=True)
    for k in range(unlabeled):
        shape = classes[k % len(classes)]
        save(draw(shape, size, rng), root / "inf" / f"image_{k:04d}", k)
    return root
