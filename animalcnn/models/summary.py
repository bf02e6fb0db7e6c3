"""What a built model holds: parameter counts and its layer table."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    import keras

# Wide enough for every column of a deep network's table, whatever the terminal.
TABLE_WIDTH = 120


def parameter_counts(model: keras.Model) -> dict[str, int]:
    """Total, trainable and non-trainable parameters, as Keras reports them."""
    import numpy as np

    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    total = sum(int(np.prod(w.shape)) for w in model.weights)
    return {"total": total, "trainable": trainable, "non_trainable": total - trainable}


def layer_table(model: keras.Model) -> str:
    """The model's layers with output shape, parameters and whether they train, as text of
    a fixed width: the same in a terminal, a pipe, `nohup` or a batch job's log."""
    table = Table(title=f"{model.name}", title_justify="left", header_style="bold")
    table.add_column("layer (type)", overflow="fold")
    table.add_column("output shape", overflow="fold")
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("trains", justify="center", no_wrap=True)
    for layer in model.layers:
        shape = tuple(layer.output.shape) if hasattr(layer, "output") else "?"
        trains = "yes" if layer.trainable_weights else "no" if layer.weights else "-"
        table.add_row(
            f"{layer.name} ({type(layer).__name__})",
            str(shape),
            f"{layer.count_params():,}",
            trains,
        )
    counts = parameter_counts(model)
    console = Console(width=TABLE_WIDTH, record=True, file=io.StringIO(), color_system=None)
    console.print(table)
    console.print(
        f"total {counts['total']:,} parameters: {counts['trainable']:,} trainable, "
        f"{counts['non_trainable']:,} non-trainable"
    )
    return console.export_text()
