"""Tables people read in the terminal: one run's evaluation, a data check, predictions,
explanations, the registered architectures and augmentations (the runs table is
`reporting.runs_table`). No pandas or TensorFlow at import."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    import pandas as pd

    from animalcnn.data.checks import Report as CheckReport
    from animalcnn.run_folder import Evaluation


PREDICTIONS_SHOWN = 50  # rows `predict` prints; its CSV has them all


def evaluation_tables(result: Evaluation, title: str) -> list[Table]:
    """Per-class scores and the confusion matrix of one evaluation."""
    classes = result.classes
    heading = (
        f"{title}: accuracy {100 * result.accuracy:.2f}%, loss {result.loss:.4f}, "
        f"{result.images:,} images"
    )
    scores = Table(title=Text(heading), header_style="bold", min_width=len(heading))
    for col in ("class", "precision", "recall", "f1", "support"):
        scores.add_column(col, justify="left" if col == "class" else "right")
    for name, s in result.per_class.items():
        scores.add_row(
            Text(name), f"{s.precision:.1%}", f"{s.recall:.1%}", f"{s.f1:.1%}", str(s.support)
        )
    confusion = Table(title="confusion matrix (rows: true, columns: predicted)")
    confusion.add_column("")
    for name in classes:
        confusion.add_column(Text(name), justify="right")
    for name, row in zip(classes, result.confusion_matrix, strict=True):
        confusion.add_row(Text(name), *(str(v) for v in row))
    confused = Table(title="most confused (true -> predicted)", header_style="bold")
    for col in ("true", "predicted", "images"):
        confused.add_column(col, justify="right" if col == "images" else "left")
    for pair in result.most_confused:
        confused.add_row(Text(pair.true), Text(pair.predicted), str(pair.count))
    return [scores, confusion, confused]


def check_table(report: CheckReport) -> Table:
    """`data check`'s per split and class summary."""
    table = Table(title="dataset", header_style="bold")
    for col in ("split", "class", "images", "formats", "smallest", "largest"):
        table.add_column(col, justify="right" if col == "images" else "left")
    for s in report.classes:
        formats = ", ".join(f"{f} {n}" for f, n in s.formats.most_common())
        sizes = [f"{wh[0]}x{wh[1]}" if wh else "-" for wh in (s.min_size, s.max_size)]
        table.add_row(Text(s.split), Text(s.name), f"{s.images:,}", formats or "-", *sizes)
    return table


def prediction_table(df: pd.DataFrame) -> Table:
    """`predict`'s rows: file, class and confidence, or why the file could not be read."""
    failed = int(df["error"].notna().sum())
    table = Table(
        title=f"{len(df):,} images, {failed} unreadable"
        + (f" (first {PREDICTIONS_SHOWN} shown)" if len(df) > PREDICTIONS_SHOWN else ""),
        header_style="bold",
    )
    for col in ("file", "predicted", "confidence"):
        table.add_column(col, justify="right" if col == "confidence" else "left", overflow="fold")
    for _, r in df.head(PREDICTIONS_SHOWN).iterrows():
        if isinstance(r["error"], str):
            table.add_row(Text(r["file"]), Text(r["error"], style="red"), "-")
        else:
            table.add_row(Text(r["file"]), Text(r["predicted"]), f"{r['confidence']:.1%}")
    return table


def explain_table(df: pd.DataFrame) -> Table:
    """`explain`'s rows: file, class, confidence and the figure written, or the error."""
    table = Table(title=f"Grad-CAM of {len(df):,} images", header_style="bold")
    for col in ("file", "predicted", "confidence", "output"):
        table.add_column(col, justify="right" if col == "confidence" else "left", overflow="fold")
    for _, r in df.iterrows():
        if isinstance(r["error"], str):
            table.add_row(Text(r["file"]), Text(r["error"], style="red"), "-", "-")
        else:
            table.add_row(
                Text(r["file"]), Text(r["predicted"]), f"{r['confidence']:.1%}", Text(r["output"])
            )
    return table


def _defaults(params: type[BaseModel]) -> str:
    """`name=default` for each option of a params or augmentation schema, one per line."""
    return "\n".join(
        f"{name}={field.get_default(call_default_factory=True)!r}"
        for name, field in params.model_fields.items()
        if name != "type"
    )


def models_table() -> Table:
    """The registered architectures with their minimum image size and `model.params`."""
    from animalcnn.models import registry

    table = Table(title="architectures (model.arch)", header_style="bold")
    for col in ("arch", "min size", "model.params (defaults)", "description"):
        table.add_column(
            col,
            justify="right" if col == "min size" else "left",
            overflow="fold",
            ratio=None if col in ("arch", "min size") else 1,
        )
    for name in registry.names():
        a = registry.get(name)
        kind = "pretrained" if a.pretrained else "custom"
        table.add_row(
            f"{name}\n({kind})",
            str(a.smallest_input()),
            Text(_defaults(a.params) or "-"),
            Text(a.description),
        )
    return table


def augmentations_table() -> Table:
    """The registered augmentations (model.augmentation) with their options."""
    from animalcnn.models import augmentation

    table = Table(
        title="augmentations (model.augmentation: - {type: ..., ...})", header_style="bold"
    )
    table.add_column("type", overflow="fold")
    table.add_column("options (defaults)", overflow="fold")
    for name in augmentation.names():
        table.add_row(name, Text(_defaults(augmentation.get(name)) or "-"))
    return table
