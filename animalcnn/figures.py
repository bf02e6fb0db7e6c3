"""PNG figures with matplotlib: a run's curves, its confusion matrix, and the
notebook's comparison figures. No TensorFlow; no GUI backend (Figure + Agg)."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from animalcnn.runs import atomic_write


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    buffer = BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    atomic_write(path, buffer.getvalue())
    return path


def lr_drops(history: pd.DataFrame) -> list[int]:
    """Epochs whose learning rate is lower than the previous epoch's, within a phase."""
    same_phase = history["phase"].eq(history["phase"].shift())
    dropped = history["lr"] < history["lr"].shift() * (1 - 1e-6)
    return history.loc[same_phase & dropped, "epoch"].astype(int).tolist()


def phase_starts(history: pd.DataFrame) -> list[tuple[int, str]]:
    """(first epoch, name) of every phase after the first."""
    changed = history["phase"].ne(history["phase"].shift())
    starts = history.loc[changed, ["epoch", "phase"]].itertuples(index=False)
    return [(int(e), str(p)) for e, p in starts][1:]


def history_figure(history: pd.DataFrame, title: str, path: Path) -> Path:
    """Loss and accuracy per epoch, training vs validation, LR drops and phases marked."""
    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2)
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        ax.plot(history["epoch"], history[metric], marker=".", label=f"training {metric}")
        ax.plot(
            history["epoch"], history[f"val_{metric}"], marker=".", label=f"validation {metric}"
        )
        for i, epoch in enumerate(lr_drops(history)):
            ax.axvline(
                epoch, color="grey", linestyle=":", label="learning rate drop" if not i else None
            )
        for epoch, phase in phase_starts(history):
            ax.axvline(epoch - 0.5, color="black", linestyle="--")
            ax.annotate(phase, (epoch - 0.5, 1), xycoords=("data", "axes fraction"),
                        xytext=(3, -12), textcoords="offset points")  # fmt: skip
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    return _save(fig, path)


def confusion_figure(evaluation: dict[str, Any], title: str, path: Path) -> Path:
    """The confusion matrix as counts and row-normalised (recall per class)."""
    classes = evaluation["classes"]
    counts = np.asarray(evaluation["confusion_matrix"], dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    k = len(classes)
    fig = Figure(figsize=(5.5 * 2, 0.45 * k + 3))
    panels = ((counts, "counts", "{:.0f}"), (normalised, "row-normalised", "{:.2f}"))
    for ax, (matrix, label, fmt) in zip(fig.subplots(1, 2), panels, strict=True):
        image = ax.imshow(matrix, cmap="Blues", vmin=0)
        fig.colorbar(image, ax=ax, fraction=0.046)
        ax.set_xticks(range(k), classes, rotation=45, ha="right")
        ax.set_yticks(range(k), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(label)
        if k <= 20:
            top = matrix.max() or 1
            for i in range(k):
                for j in range(k):
                    colour = "white" if matrix[i, j] > top / 2 else "black"
                    ax.text(j, i, fmt.format(matrix[i, j]), ha="center", va="center", color=colour)
    fig.suptitle(f"{title}: accuracy {100 * evaluation['accuracy']:.2f}%")
    return _save(fig, path)


def comparison_figures(df: pd.DataFrame, prefix: Path) -> list[Path]:
    """The notebook's comparison figures for the runs in `df` (a `reports.collect` table
    with a `label` column): accuracy against trainable parameters, the train-test gap,
    and test accuracy per model. Written as `<prefix>_<figure>.png`."""
    written = []
    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    for column, marker in (("train_accuracy", "o"), ("test_accuracy", "s")):
        ok = df.dropna(subset=[column, "params_trainable"])
        ax.scatter(
            ok["params_trainable"], ok[column], marker=marker, label=column.replace("_", " ")
        )
        for _, r in ok.iterrows():
            ax.annotate(r["label"], (r["params_trainable"], r[column]), fontsize=8,
                        xytext=(4, 2), textcoords="offset points")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("accuracy against trainable parameters")
    written.append(_save(fig, prefix.with_name(f"{prefix.name}_accuracy_vs_params.png")))
    for column, title, name in (
        ("gap", "train - test accuracy (overfitting)", "gap"),
        ("test_accuracy", "test accuracy", "test_accuracy"),
    ):
        ok = df.dropna(subset=[column]).sort_values(column)
        fig = Figure(figsize=(8, 0.35 * max(len(ok), 3) + 1.5))
        ax = fig.subplots()
        ax.barh(ok["label"], ok[column])
        for y, value in enumerate(ok[column]):
            ax.annotate(f"{100 * value:.1f}%", (value, y), xytext=(3, 0),
                        textcoords="offset points", va="center", fontsize=8)  # fmt: skip
        ax.set_xlabel(column.replace("_", " "))
        ax.set_title(title)
        ax.grid(axis="x", alpha=0.3)
        written.append(_save(fig, prefix.with_name(f"{prefix.name}_{name}.png")))
    return written
