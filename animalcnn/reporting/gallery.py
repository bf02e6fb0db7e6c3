"""Figures of images: the mistakes gallery and Grad-CAM overlays (matplotlib, headless)."""

from __future__ import annotations

import math
from io import BytesIO
from pathlib import Path

import numpy as np

from animalcnn.atomic import atomic_write

HEAT_ALPHA = 0.45  # how strongly a heat map tints the image under it


def _save(fig, path: Path) -> Path:  # noqa: ANN001 (a matplotlib Figure)
    fig.tight_layout()
    buffer = BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    atomic_write(path, buffer.getvalue())
    return path


def _show(ax, image: np.ndarray, heat: np.ndarray | None) -> None:  # noqa: ANN001
    ax.imshow(image)
    if heat is not None:
        ax.imshow(heat, cmap="jet", alpha=HEAT_ALPHA, vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])


def write_gallery(
    images: np.ndarray, titles: list[str], path: Path, title: str,
    heats: np.ndarray | None = None,
) -> Path:  # fmt: skip
    """A grid of images (uint8 RGB), each with its title; Grad-CAM `heats` over them."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = max(len(images), 1)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3.2 * cols, 3.3 * rows + 0.4))
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        if i >= len(images):
            ax.axis("off")
            continue
        _show(ax, images[i], None if heats is None else heats[i])
        ax.set_title(titles[i], fontsize=9)
    if not len(images):
        axes[0].text(0.5, 0.5, "no mistakes", ha="center", va="center")
    fig.suptitle(title)
    return _save(fig, path)


def write_gradcam(
    image: np.ndarray, heat: np.ndarray, top: list[tuple[str, float]], path: Path, title: str
) -> Path:
    """The image, its Grad-CAM heat map over it, and the top class probabilities."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.6))
    FigureCanvasAgg(fig)
    left, middle, right = fig.subplots(1, 3)
    _show(left, image, None)
    left.set_title("image")
    _show(middle, image, heat)
    middle.set_title(f"Grad-CAM: {top[0][0]}")
    names, values = [n for n, _ in top][::-1], [v for _, v in top][::-1]
    right.barh(names, values, color="#1f77b4")
    right.set_xlim(0, 1)
    for y, v in enumerate(values):
        right.annotate(f"{100 * v:.1f}%", (v, y), xytext=(3, 0), textcoords="offset points",
                       va="center", fontsize=9)  # fmt: skip
    right.set_title("top classes")
    fig.suptitle(title)
    return _save(fig, path)


def overlay_uri(image: np.ndarray, heat: np.ndarray) -> str:
    """An image with its heat map over it, as a data: URI of a PNG (for a web page)."""
    import base64

    from matplotlib import colormaps
    from PIL import Image

    colours = colormaps["jet"](heat)[..., :3] * 255
    blend = (1 - HEAT_ALPHA) * image.astype(np.float64) + HEAT_ALPHA * colours
    buffer = BytesIO()
    Image.fromarray(np.clip(blend, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
