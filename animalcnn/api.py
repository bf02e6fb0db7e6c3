"""The Python API: what the CLI does, for a notebook or a script, over the same functions.

    import animalcnn
    animalcnn.runs("runs", where="best_val_accuracy > 0.9", sort="-time_s")

Imports no TensorFlow; errors are the exceptions the CLI prints as one line
(`animalcnn.UserError` and its kinds), with the same text.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from animalcnn.errors import RunFolderError

if TYPE_CHECKING:
    import pandas as pd


class Runs:
    """Runs side by side, as `compare` shows them: `frame` has the CSV's columns in its
    order (rows best first, or in the sort's order) and a `best` column; in Jupyter it
    renders as the report's table."""

    def __init__(self, rows: list[dict[str, Any]], folders: list[Path], where: str = "") -> None:
        self.rows, self.folders, self.where = rows, folders, where

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def frame(self) -> pd.DataFrame:
        import pandas as pd

        from animalcnn.reporting.tables import csv_rows

        columns, records = csv_rows(self.rows)
        frame = pd.DataFrame(records, columns=columns)
        frame.insert(1, "best", [bool(r.get("best")) for r in self.rows])
        return frame

    def __repr__(self) -> str:
        best = next((r for r in self.rows if r.get("best")), None)
        where = f" where {self.where}" if self.where else ""
        if best is None:
            return f"<Runs: {len(self)} runs{where}>"
        key = "test_accuracy" if best["test_accuracy"] is not None else "best_val_accuracy"
        return f"<Runs: {len(self)} runs{where}; best {best['run']}, {key} {best[key]:.2%}>"

    def _repr_html_(self) -> str:
        from animalcnn.reporting.html import runs_table
        from animalcnn.reporting.pages import render

        table = runs_table(self.rows, [""] * len(self.rows))
        return render("runs_table_inline.html", table=table)


def runs(
    folder: str | Path | list[str | Path] = "runs",
    where: str | list[str] | None = None,
    sort: str | None = None,
) -> Runs:
    """The runs under `folder` (a runs dir, a sweep's folder, run folders) that meet
    `where`, best first or in `sort`'s order: `compare`'s query language and rows."""
    from animalcnn.reporting.tables import collect, expand_runs, parse_query, select

    paths = [Path(p) for p in (folder if isinstance(folder, list) else [folder])]
    query, order = parse_query(where, sort)
    children = [c for p in paths for c in (sorted(p.iterdir()) if _is_runs_dir(p) else [p])]
    folders, _ = expand_runs(children) if children else ([], [])
    rows, folders = select(collect(folders), folders, query, order)
    return Runs(rows, folders, str(query))


def _is_runs_dir(path: Path) -> bool:
    """A folder of run folders (not itself a run, nor a sweep's folder expand_runs reads)."""
    from animalcnn.reporting.tables import SWEEP_FILES
    from animalcnn.run_folder import METRICS

    if not path.is_dir():
        if not path.exists():
            raise RunFolderError(f"{path}: no such folder")
        return False
    return not (path / METRICS).exists() and not any((path / f).exists() for f in SWEEP_FILES)
