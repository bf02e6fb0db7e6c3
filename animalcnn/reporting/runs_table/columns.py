"""Choosing columns: which fit a width, in what order of importance, and each cell's text."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from animalcnn.reporting.runs_table.rows import differing


def format_cell(value: Any, kind: str = "") -> str:
    """A table cell: `-` for nothing, percentages, thousands separators."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if kind == "pct":
        return f"{100 * value:.2f}%"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "float":
        return f"{value:,.1f}"
    if kind == "names":  # sanity flags: their names
        return ", ".join(f.name for f in value) or "-"
    return str(value)


# (title, row key, format, priority): at a narrow width the highest priorities drop first.
COMPARE_SPEC = [
    ("run", "run", "", 0),
    ("tags", "tags", "", 3),
    ("arch", "arch", "", 1),
    ("strategy", "strategy", "", 3),
    ("status", "status", "", 0),
    ("flags", "flags", "names", 1),
    ("backend", "backend", "", 2),
    ("precision", "precision", "", 2),
    ("params", "params_total", "int", 4),
    ("trainable", "params_trainable", "int", 2),
    ("epochs", "epochs", "int", 3),
    ("best val acc", "best_val_accuracy", "pct", 0),
    ("train acc", "train_accuracy", "pct", 3),
    ("test acc", "test_accuracy", "pct", 0),
    ("gap", "gap", "pct", 3),
    ("test data", "test_data", "", 4),
    ("tta", "tta", "", 4),
    ("notes", "notes", "", 4),
    ("time s", "time_s", "float", 4),
    ("img/s", "images_per_s", "float", 5),
    ("device", "device", "", 5),
]


CELL_PADDING = 3  # a column's border and padding, in characters


# Values that say what they are in the caption; the others are shown with their title.
BARE_IN_CAPTION = {"arch", "status", "flags", "backend", "precision", "device"}


SHOWN_AS_COLUMNS = {"model.arch", "transfer.strategy"}  # settings the table has already


def compare_spec(rows: list[dict[str, Any]]) -> list[tuple[str, str, str, int]]:
    """The table's columns for these rows: COMPARE_SPEC with, after the run, one column per
    setting that differs between them (priority 2: when the width is short they go
    after the run's other facts, before its flags and scores)."""
    keys = [k for k in differing(rows) if k not in SHOWN_AS_COLUMNS]
    return [COMPARE_SPEC[0], *((k, k, "setting", 2) for k in keys), *COMPARE_SPEC[1:]]


def cell_text(row: dict[str, Any], key: str, kind: str) -> str:
    """What a person reads in one cell: a formatted value, `stale`, `(best)` after the
    best run, a setting's short text."""
    if kind == "setting":
        return row["settings"].get(key, "-")
    if key == "test_accuracy" and row["test_result"].state == "stale":
        return "stale"
    return format_cell(row[key], kind) + (" (best)" if key == "run" and row["best"] else "")


def dotted_header(title: str) -> str:
    """A dotted setting's header broken after its section (`training.` / `learning_rate`)."""
    return title.replace(".", ".\n", 1)


def fit(
    spec: list[tuple[str, str, str, int]],
    shown: list[tuple[str, str, str, int]],
    needed: dict[str, int],
    width: int,
) -> list[tuple[str, str, str, int]]:
    """The columns of `shown` that fit in `width`: drop by priority (the rightmost of a
    priority first) until the table fits, then take back, most important first, any
    dropped column that still fits, never one of a lower priority while one of a higher
    priority is left out (a setting that differs outranks a derived column)."""

    def total(columns: list[tuple[str, str, str, int]]) -> int:
        return sum(needed[c[1]] for c in columns) + 1  # + the closing border

    by_priority = sorted(shown, key=lambda c: (-c[3], -spec.index(c)))
    kept = list(shown)
    for column in by_priority:
        if total(kept) <= width:
            break
        if column[3] > 0:
            kept.remove(column)
    left_out_at: int | None = None  # the highest priority with a column left out
    for column in reversed(by_priority):
        if left_out_at is not None and column[3] > left_out_at:
            break
        if column not in kept:
            if total([*kept, column]) <= width:
                kept.append(column)
            else:
                left_out_at = column[3]
    return [c for c in spec if c in kept]


@dataclass
class Layout:
    """What every runs table shows (terminal, report, dashboard): its columns, each row's
    cell text by column key, and the columns equal for every run, moved to a caption."""

    columns: list[tuple[str, str, str, int]]  # (title, key, format, priority)
    cells: dict[str, list[str]]
    common: list[str]  # "all runs: ..." items

    @property
    def caption(self) -> str | None:
        return f"all runs: {', '.join(self.common)}" if self.common else None


def layout(rows: list[dict[str, Any]]) -> Layout:
    """The runs table for `rows`: the settings that differ between them as columns; with
    several runs, a column that is the same for all of them in the caption instead (one
    empty for all left out)."""
    spec = compare_spec(rows)
    cells = {key: [cell_text(r, key, kind) for r in rows] for _, key, kind, _ in spec}
    same = [
        c
        for c in spec
        if len(rows) > 1 and (c[3] > 0 or c[1] == "status") and len(set(cells[c[1]])) == 1
    ]
    common = [
        cells[key][0] if key in BARE_IN_CAPTION else f"{title} {cells[key][0]}"
        for title, key, _, _ in same
        if cells[key][0] != "-"
    ]
    return Layout([c for c in spec if c not in same], cells, common)


def folded(key: str, cells: list[str]) -> list[str]:
    """A column's cells as narrow as the table may draw them: the run's `(best)` may go
    under its name (the name itself, copied to the commands that take it, never breaks)."""
    return [part for c in cells for part in c.split(" ")] if key == "run" else cells
