"""Tables people read: one run's evaluation, and runs side by side.

Plain rows, no pandas or TensorFlow: `compare` answers at once."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from animalcnn.errors import RunFolderError
from animalcnn.runs import EVALUATION, RunFolder, atomic_write

if TYPE_CHECKING:
    from animalcnn.checks import Report as CheckReport

COMPARE_COLUMNS = [
    "run", "name", "arch", "strategy", "status", "params_total", "params_trainable",
    "epochs", "best_epoch", "best_val_accuracy", "train_accuracy", "test_accuracy",
    "gap", "time_s", "images_per_s",
]  # fmt: skip


def run_row(path: Path) -> dict[str, Any]:
    """One comparison row; a folder that is not a readable run gets a row saying why."""
    row: dict[str, Any] = dict.fromkeys(COMPARE_COLUMNS)
    row["run"] = path.name
    try:
        run = RunFolder.open(path)
        m = run.metrics()
    except RunFolderError as exc:
        row["status"] = f"damaged: {str(exc).split(': ', 1)[-1]}"
        return row
    best = m.get("best") or {}
    params = m.get("params") or {}
    row.update(
        name=m.get("name"),
        arch=m.get("arch"),
        strategy=m.get("strategy"),
        status=m.get("status"),
        params_total=params.get("total"),
        params_trainable=params.get("trainable"),
        epochs=m.get("epochs_run"),
        best_epoch=m.get("best_epoch"),
        best_val_accuracy=best.get("val_accuracy"),
        train_accuracy=best.get("accuracy"),
        time_s=m.get("wall_time_s"),
        images_per_s=m.get("images_per_second"),
    )
    if run.file(EVALUATION).exists():
        try:
            ev = run.read_json(EVALUATION)
        except RunFolderError:
            ev = {}
        row["test_accuracy"] = ev.get("accuracy")
        if row["test_accuracy"] is not None and row["train_accuracy"] is not None:
            row["gap"] = row["train_accuracy"] - row["test_accuracy"]
    return row


def collect(paths: list[Path]) -> list[dict[str, Any]]:
    """One row per folder; `label` is the run's name, or its folder name where names repeat."""
    rows = [run_row(p) for p in paths]
    names = [r["name"] or r["run"] for r in rows]
    for row, name in zip(rows, names, strict=True):
        row["label"] = name if names.count(name) == 1 else row["run"]
    return rows


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, COMPARE_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, out.getvalue())


def _fmt(value: Any, kind: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if kind == "pct":
        return f"{100 * value:.2f}%"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "float":
        return f"{value:,.1f}"
    return str(value)


def compare_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="runs", header_style="bold")
    spec = [
        ("run", "run", ""), ("arch", "arch", ""), ("strategy", "strategy", ""),
        ("status", "status", ""), ("params", "params_total", "int"),
        ("trainable", "params_trainable", "int"), ("epochs", "epochs", "int"),
        ("best val acc", "best_val_accuracy", "pct"), ("train acc", "train_accuracy", "pct"),
        ("test acc", "test_accuracy", "pct"), ("gap", "gap", "pct"),
        ("time s", "time_s", "float"), ("img/s", "images_per_s", "float"),
    ]  # fmt: skip
    for title, _, kind in spec:
        table.add_column(title, justify="right" if kind else "left")
    for r in rows:
        table.add_row(*(_fmt(r[col], kind) for _, col, kind in spec))
    return table


def evaluation_tables(result: dict[str, Any], title: str) -> list[Table]:
    """Per-class scores and the confusion matrix of one evaluation."""
    classes = result["classes"]
    scores = Table(
        title=f"{title}: accuracy {100 * result['accuracy']:.2f}%, loss {result['loss']:.4f}, "
        f"{result['images']:,} images",
        header_style="bold",
    )
    for col in ("class", "precision", "recall", "f1", "support"):
        scores.add_column(col, justify="left" if col == "class" else "right")
    for name in classes:
        s = result["per_class"][name]
        scores.add_row(name, f"{s['precision']:.3f}", f"{s['recall']:.3f}", f"{s['f1']:.3f}",
                       str(s["support"]))  # fmt: skip
    confusion = Table(title="confusion matrix (rows: true, columns: predicted)")
    confusion.add_column("")
    for name in classes:
        confusion.add_column(name, justify="right")
    for name, row in zip(classes, result["confusion_matrix"], strict=True):
        confusion.add_row(name, *(str(v) for v in row))
    return [scores, confusion]


def check_table(report: CheckReport) -> Table:
    """`data check`'s per split and class summary."""
    table = Table(title="dataset", header_style="bold")
    for col in ("split", "class", "images", "formats", "smallest", "largest"):
        table.add_column(col, justify="right" if col == "images" else "left")
    for s in report.classes:
        formats = ", ".join(f"{f} {n}" for f, n in s.formats.most_common())
        sizes = [f"{wh[0]}x{wh[1]}" if wh else "-" for wh in (s.min_size, s.max_size)]
        table.add_row(s.split, s.name, f"{s.images:,}", formats or "-", *sizes)
    return table
