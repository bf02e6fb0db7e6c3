"""The runs table: one pipeline over run records, a module a step.

`find` the run folders that paths name; `rows` reads each once into a row (through the
run folder's records); `ranking` keeps the rows that meet `--where` and orders them by
`--sort` (best first by default); `columns` chooses the columns that fit a width and
each cell's text; `render` draws the table in the terminal and as CSV (the report and
the dashboard render the same rows as HTML, `animalcnn.runs()` as a DataFrame).
`compare`, the report, the dashboard and the API all call `read_runs`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from animalcnn.reporting.query import Query, SortKey
from animalcnn.reporting.runs_table.ranking import select
from animalcnn.reporting.runs_table.rows import collect


@dataclass
class RunsTable:
    rows: list[dict[str, Any]]  # those that met the query, in order
    folders: list[Path]  # each row's run folder
    read: int  # rows read before the query


def read_runs(
    folders: list[Path], query: Query | None = None, order: list[SortKey] | None = None
) -> RunsTable:
    """Read each run folder once into a row; keep those that meet `query`, in `order`."""
    rows = collect(folders)
    kept, kept_folders = select(rows, folders, query or Query(), order or [])
    return RunsTable(kept, kept_folders, len(rows))
