"""Every figure's text stays inside the figure and clear of other text: titles, axis
labels, legends, the labels placed on points and marks, tile captions (matplotlib's own
text bounding boxes, measured after layout)."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text

from animalcnn.figures.charts import (
    comparison_charts,
    confusion_chart,
    curves_chart,
    draw,
    history_chart,
    lr_find_chart,
)
from animalcnn.figures.gallery import FLAT_NOTE, Caption, gallery_figure, gradcam_figure

LONG = ["elephant", "horse", "lion", "a-very-long-class-name", "dog"]


def _history(epochs: int = 12) -> pd.DataFrame:
    e = np.arange(1, epochs + 1)
    return pd.DataFrame(
        {
            "epoch": e,
            "phase": ["head"] * (epochs // 2) + ["finetune"] * (epochs - epochs // 2),
            "loss": 1.5 / e,
            "accuracy": 1 - 0.8 / e,
            "val_loss": 1.6 / e + 0.01 * e,
            "val_accuracy": 1 - 0.9 / e,
            "lr": np.where(e < 4, 1e-3, 2e-4),
            "seconds": 1.0,
        }
    )


def _confusion() -> list[list[int]]:
    rng = np.random.default_rng(0)
    return (rng.integers(0, 40, (5, 5)) + np.eye(5, dtype=int) * 150).tolist()


def _comparison() -> pd.DataFrame:
    names = [f"run-{i}-with-a-long-name" for i in range(6)]
    return pd.DataFrame(
        {
            "label": names,
            "params_trainable": [1e4, 1.1e4, 1e5, 1e6, 1.05e6, 2e7],
            "train_accuracy": [0.9, 0.91, 0.95, 0.99, 0.985, 0.97],
            "test_accuracy": [0.8, 0.805, 0.9, 0.93, 0.931, 0.95],
            "gap": [0.1, 0.105, 0.05, 0.06, 0.054, 0.02],
        }
    )


def _lr_find():
    lrs = np.geomspace(1e-7, 10, 100)
    losses = 1.6 - 0.5 / (1 + np.exp(-3 * (np.log10(lrs) + 3)))
    losses[85:] += np.linspace(0, 30, 15)
    return lr_find_chart(
        lrs,
        losses,
        {"valley": 3e-4, "steep": 1e-3, "minimum/10": 1.1e-3},
        1.1e-2,
        {"valley": "rule one", "steep": "rule two", "minimum/10": "rule three"},
        "run",
    )


def _shown_ticks(ax) -> tuple[set[int], set[int]]:
    """(ids of the tick labels drawn, ids of every tick label): matplotlib keeps labels
    for ticks outside the view, which it does not draw."""
    shown, every = set(), set()
    for axis in (ax.xaxis, ax.yaxis):
        lo, hi = sorted(axis.get_view_interval())
        slack = (hi - lo) * 1e-9
        for tick in axis.get_major_ticks() + axis.get_minor_ticks():
            for label in (tick.label1, tick.label2):
                every.add(id(label))
                if label.get_visible() and lo - slack <= tick.get_loc() <= hi + slack:
                    shown.add(id(label))
    return shown, every


def _texts(fig) -> list[tuple[str, object, bool]]:
    """(text, window box, is a tick label) of every visible, non-empty text drawn."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    shown, every = set(), set()
    for ax in fig.axes:
        s, e = _shown_ticks(ax)
        shown |= s
        every |= e
    found = []
    for text in fig.findobj(Text):
        if id(text) in every and id(text) not in shown:
            continue
        if text.get_visible() and text.get_text().strip():
            found.append((text.get_text(), text.get_window_extent(renderer), id(text) in every))
    return found


def _cells(fig) -> set[int]:
    """The numbers written in heat map cells (each inside its own cell)."""
    return {
        id(t)
        for ax in fig.axes
        for t in ax.texts
        if t.get_text().replace(".", "").replace("%", "").isdigit()
    }


def assert_text_clear(fig) -> None:
    width, height = fig.bbox.width, fig.bbox.height
    texts = _texts(fig)
    for label, box, _ in texts:
        assert box.x0 >= -1 and box.y0 >= -1 and box.x1 <= width + 1 and box.y1 <= height + 1, (
            f"{label!r} crosses the figure's frame"
        )
    for (a, box_a, tick_a), (b, box_b, tick_b) in combinations(texts, 2):
        if tick_a and tick_b:
            continue  # matplotlib spaces its own ticks
        assert not box_a.overlaps(box_b), f"{a!r} and {b!r} overlap"


FIGURES = {
    "history": lambda: draw(history_chart(_history(), "a-run-with-a-long-name-20261130")),
    "confusion": lambda: draw(confusion_chart(LONG, _confusion(), "a-run-with-a-long-name")),
    "curves": lambda: draw(curves_chart({"a": _history(), "b": _history(8)}, 5)),
    "lr_find": lambda: draw(_lr_find()),
    **{
        f"comparison {name}": (lambda c=chart: draw(c))
        for name, chart in comparison_charts(_comparison()).items()
    },
}


@pytest.mark.parametrize("name", list(FIGURES))
def test_chart_text_is_inside_and_clear(name: str):
    fig = FIGURES[name]()
    if name == "confusion":  # cell numbers sit inside cells; check them against the rest
        cells = _cells(fig)
        for t in fig.findobj(Text):
            if id(t) in cells:
                t.set_visible(False)
    assert_text_clear(fig)


def test_accuracy_axes_are_in_percent():
    fig = draw(history_chart(_history(), "r"))
    fig.canvas.draw()
    accuracy = fig.axes[1]
    assert all(t.get_text().endswith("%") for t in accuracy.get_yticklabels() if t.get_text())


def test_gallery_captions_say_what_went_wrong_and_stay_clear():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    captions = [
        Caption("a-very-long-class-name", "elephant", 0.91, 0.02, 3.91),
        *[Caption("dog", "lion", 0.5 - 0.05 * i, 0.3, 1.2) for i in range(5)],
    ]
    heats = np.zeros((6, 32, 32))
    heats[1:, 8:16, 8:16] = 1.0  # the first is flat: nothing localised
    fig = gallery_figure(images, captions, "run on val: most confident mistakes", heats)
    texts = [t for t, _, _ in _texts(fig)]
    first = "true a-very-long-class-name, predicted elephant 91%\n"
    assert f"{first}p(a-very-long-class-name) 2.0%, loss 3.91" in texts
    assert texts.count(FLAT_NOTE) == 1
    assert_text_clear(fig)
    sure, unsure = (fig.axes[i].spines["top"].get_edgecolor() for i in (0, 5))
    assert sure != unsure  # framed by how wrong


def test_gradcam_figure_stays_clear():
    image = np.full((32, 32, 3), 128, np.uint8)
    heat = np.zeros((32, 32))
    heat[4:10, 20:28] = 1
    top = [("elephant", 0.999), ("a-very-long-class-name", 0.0009), ("dog", 0.0001)]
    assert_text_clear(gradcam_figure(image, heat, top, "photo.jpg: heat for elephant"))


def test_a_flat_accuracy_curve_is_not_zoomed_into_noise():
    """A run stuck at chance: its accuracy axis spans at least 10 points, not 17.5-20.5 %."""
    from animalcnn.figures.charts import to_plotly

    history = _history()
    history["accuracy"] = 0.2 + 0.001 * np.sin(np.arange(len(history)))
    history["val_accuracy"] = 0.2
    chart = history_chart(history, "stuck")
    low, high = draw(chart).axes[1].get_ylim()
    assert high - low >= 0.1 - 1e-9 and low <= 0.2 <= high
    assert list(to_plotly(chart).layout.yaxis2.range) == pytest.approx([low, high])
    moving = draw(history_chart(_history(), "learning")).axes[1].get_ylim()
    assert moving[1] - moving[0] > 0.5  # a curve that moves keeps matplotlib's own range
