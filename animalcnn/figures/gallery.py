"""Figures of images: the mistakes gallery and Grad-CAM overlays (matplotlib, headless)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np

from animalcnn.atomic import PNG_METADATA, atomic_write
from animalcnn.figures.charts import DPI

HEAT_ALPHA = 0.45  # how strongly a heat map tints the image under it
FLAT = 0.1  # a heat map whose spread (max - mean) is under this shows no localised evidence
FLAT_NOTE = "no localised evidence"


@dataclass(frozen=True)
class Caption:
    """What a mistake's tile says: the true class, the predicted one with its probability,
    the true class's probability and the loss."""

    true: str
    predicted: str
    confidence: float
    true_probability: float
    loss: float

    def lines(self) -> str:
        return (
            f"true {self.true}, predicted {self.predicted} {self.confidence:.0%}\n"
            f"p({self.true}) {self.true_probability:.1%}, loss {self.loss:.2f}"
        )

    def colour(self) -> Any:
        """Red as the model was surer of the wrong class, orange below."""
        from matplotlib import colormaps

        return colormaps["autumn_r"](0.35 + 0.65 * min(max(self.confidence, 0.0), 1.0))


def flat(heat: np.ndarray) -> bool:
    """Whether a Grad-CAM map (in [0, 1]) points nowhere in particular."""
    return float(heat.max() - heat.mean()) < FLAT or not heat.any()


def _save(fig, path: Path) -> Path:  # noqa: ANN001 (a matplotlib Figure, laid out)
    buffer = BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata=PNG_METADATA)
    atomic_write(path, buffer.getvalue())
    return path


def _show(ax, image: np.ndarray, heat: np.ndarray | None) -> None:  # noqa: ANN001
    ax.imshow(image)
    if heat is not None:
        ax.imshow(heat, cmap="jet", alpha=HEAT_ALPHA, vmin=0, vmax=1)
        if flat(heat):
            ax.text(
                0.5,
                0.04,
                FLAT_NOTE,
                transform=ax.transAxes,
                ha="center",
                va="bottom",
                fontsize=8,
                bbox={"fc": "white", "ec": "none", "alpha": 0.85},
            )
    ax.set_xticks([])
    ax.set_yticks([])


def write_gallery(
    images: np.ndarray,
    captions: list[Caption],
    path: Path,
    title: str,
    heats: np.ndarray | None = None,
) -> Path:
    """`gallery_figure` as a PNG."""
    return _save(gallery_figure(images, captions, title, heats), path)


def gallery_figure(
    images: np.ndarray, captions: list[Caption], title: str, heats: np.ndarray | None = None
) -> Any:
    """A grid of mistakes (uint8 RGB), each captioned and framed in its colour (how sure
    the model was of the wrong class); Grad-CAM `heats` over them."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = max(len(images), 1)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3.4 * cols, 3.6 * rows + 0.5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        if i >= len(images):
            ax.axis("off")
            continue
        _show(ax, images[i], None if heats is None else heats[i])
        ax.set_title(captions[i].lines(), fontsize=8.5, color="black")
        for spine in ax.spines.values():
            spine.set_edgecolor(captions[i].colour())
            spine.set_linewidth(4)
    if not len(images):
        axes[0].text(0.5, 0.5, "no mistakes", ha="center", va="center")
    fig.suptitle(title)
    return fig


def write_gradcam(
    image: np.ndarray, heat: np.ndarray, top: list[tuple[str, float]], path: Path, title: str
) -> Path:
    """`gradcam_figure` as a PNG."""
    return _save(gradcam_figure(image, heat, top, title), path)


def gradcam_figure(
    image: np.ndarray, heat: np.ndarray, top: list[tuple[str, float]], title: str
) -> Any:
    """The image, its Grad-CAM heat map over it, and the top class probabilities."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    fig = Figure(figsize=(10, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    left, middle, right = fig.subplots(1, 3)
    _show(left, image, None)
    left.set_title("image")
    _show(middle, image, heat)
    middle.set_title(f"Grad-CAM: {top[0][0]}")
    names, values = [n for n, _ in top][::-1], [v for _, v in top][::-1]
    right.barh(names, values, color="#1f77b4")
    right.set_xlim(0, 1.18)  # room for the last label inside the frame
    right.xaxis.set_major_formatter(PercentFormatter(1.0))
    right.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    for y, v in enumerate(values):
        right.annotate(
            f"{100 * v:.1f}%",
            (v, y),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=9,
        )
    right.set_title("top classes")
    fig.suptitle(title)
    return fig


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
