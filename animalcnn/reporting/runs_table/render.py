"""Rendering the runs table: in the terminal (rich) and as CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from animalcnn.atomic import atomic_write
from animalcnn.reporting.runs_table.columns import CELL_PADDING, dotted_header, fit, folded, layout
from animalcnn.reporting.runs_table.rows import COMPARE_COLUMNS, differing, flag_text, value_of
from animalcnn.run_folder import significant


def compare_table(rows: list[dict[str, Any]], width: int | None = None) -> Table:
    """Runs side by side (`layout`); at `width` characters, the columns that fit, dropped
    by priority, the caption naming those left out (`compare --csv` has them all)."""
    view = layout(rows)
    needed = {
        key: max(
            *(len(line) for line in dotted_header(title).split("\n")),
            *(len(c) for c in folded(key, view.cells[key])),
        )
        + CELL_PADDING
        for title, key, _, _ in view.columns
    }
    shown = view.columns if width is None else fit(view.columns, view.columns, needed, width)
    lines = [view.caption] if view.caption else []
    left_out = [c[0] for c in view.columns if c not in shown]
    if left_out:
        lines.append(f"left out to fit: {', '.join(left_out)}; --csv has them all")
    table = Table(
        title="runs", header_style="bold", caption="\n".join(lines) or None, caption_justify="left"
    )
    for title, _, kind, _ in shown:
        table.add_column(
            dotted_header(title),
            overflow="fold",
            justify="right" if kind not in ("", "names", "setting") else "left",
        )
    for i in range(len(rows)):
        table.add_row(*(Text(view.cells[key][i]) for _, key, _, _ in shown))
    return table


def csv_rows(rows: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """The table as CSV columns and rows: every column, then the differing settings;
    fractions rounded to 6 significant digits, flags as text."""
    keys = differing(rows)
    out = [
        {
            **{k: significant(r[k]) for k in COMPARE_COLUMNS},
            "flags": flag_text(r["flags"]),
            **{k: value_of(r, k) for k in keys},
        }
        for r in rows
    ]
    return [*COMPARE_COLUMNS, *keys], out


RUNS_CSV_MARK = ",".join(COMPARE_COLUMNS[:2]).encode()  # how `write_csv`'s header begins


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    columns, records = csv_rows(rows)
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    atomic_write(path, out.getvalue())
