"""Tables people read: one run's evaluation, and runs side by side.

Plain rows, no pandas or TensorFlow: `compare` answers at once."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from rich.table import Table
from rich.text import Text

from animalcnn.atomic import atomic_write
from animalcnn.config.loading import is_config_key
from animalcnn.errors import RunFolderError
from animalcnn.reporting.pages import ASSETS
from animalcnn.reporting.query import Query, SortKey, order, parse_sort, parse_where
from animalcnn.run_folder import RunFolder, significant
from animalcnn.run_folder.flags import Flag, flags, gap_to_test

if TYPE_CHECKING:
    import pandas as pd

    from animalcnn.data.checks import Report as CheckReport

PREDICTIONS_SHOWN = 50  # rows `predict` prints; its CSV has them all

COMPARE_COLUMNS = [
    "run",
    "name",
    "tags",
    "notes",
    "arch",
    "strategy",
    "status",
    "flags",
    "backend",
    "precision",
    "params_total",
    "params_trainable",
    "epochs",
    "best_epoch",
    "best_val_accuracy",
    "train_accuracy",
    "test_accuracy",
    "gap",
    "test_data",
    "tta",
    "time_s",
    "images_per_s",
    "device",
]


def run_row(path: Path) -> dict[str, Any]:
    """One comparison row; a folder that is not a readable run gets a row saying why.

    The test accuracy is the run's own test split's, shown only while it belongs to the
    run's current best checkpoint: an evaluation of an earlier best (a run evaluated,
    then resumed) is `stale`."""
    row: dict[str, Any] = dict.fromkeys(COMPARE_COLUMNS)
    row["run"] = path.name
    try:
        run = RunFolder.open(path)
        m = run.metrics()
        status = run.status()
        test = run.test_result(m)
    except RunFolderError as exc:
        row["status"] = f"damaged: {str(exc).split(': ', 1)[-1]}"
        row["settings"] = {}
        return row
    try:
        row["settings"] = settings(run.config().model_dump(mode="json"))
    except RunFolderError:  # a config this version cannot read: the row, without settings
        row["settings"] = {}
    best = m.best
    row.update(
        name=m.name,
        tags=", ".join(m.tags) or None,
        notes=m.notes,
        arch=m.arch,
        strategy=m.strategy,
        status=status,
        precision=m.precision,
        backend=m.backend,
        device=m.device,
        params_total=m.params.total,
        params_trainable=m.params.trainable,
        epochs=m.epochs_run,
        best_epoch=m.best_epoch,
        best_val_accuracy=best.val_accuracy if best else None,
        train_accuracy=best.accuracy if best else None,
        time_s=m.wall_time_s,
        images_per_s=m.images_per_second,
        test_result=test,
        test_data=test.text(),
    )
    if test.evaluation is not None:
        row["test_accuracy"] = test.evaluation.accuracy
        row["tta"] = test.evaluation.tta
        row["gap"] = gap_to_test(m, test)
    row["flags"] = flags(run, m, test, status)
    return row


NOT_SETTINGS = ("name", "tags", "notes", "output", "data.cache", "data.cache_dir")


def setting_text(value: Any) -> str:
    """A config value as short text: `0.001`, `on`, `flip(horizontal), zoom(0.2)`,
    `decay=0.99`; `-` for none."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ", ".join(setting_text(v) for v in value) or "none"
    if isinstance(value, dict):
        if "type" in value:  # an augmentation: its type and its options' values
            options = [setting_text(v) for k, v in value.items() if k != "type"]
            return f"{value['type']}({', '.join(options)})" if options else str(value["type"])
        return ", ".join(f"{k}={setting_text(v)}" for k, v in value.items()) or "-"
    return str(value)


def settings(config: dict[str, Any]) -> dict[str, str]:
    """A run's config as `{dotted key: short text}`, one key per option of each section
    (`training.learning_rate`, `model.augmentation`); what names the run or says where
    its files go is not a setting."""
    flat: dict[str, str] = {}
    for section, value in config.items():
        if isinstance(value, dict):
            flat.update({f"{section}.{k}": setting_text(v) for k, v in value.items()})
        else:
            flat[section] = setting_text(value)
    return {
        k: v
        for k, v in flat.items()
        if k not in NOT_SETTINGS and k.split(".")[0] not in NOT_SETTINGS
    }


def differing(rows: list[dict[str, Any]]) -> list[str]:
    """The settings that differ between the readable runs among `rows`, in config order."""
    readable = [r["settings"] for r in rows if r.get("settings")]
    if len(readable) < 2:
        return []
    keys = list(dict.fromkeys(k for s in readable for k in s))
    return [k for k in keys if len({s.get(k, "-") for s in readable}) > 1]


def value_of(row: dict[str, Any], key: str) -> Any:
    """A row's column, or its setting for a dotted config key (as a number where it is one)."""
    if key in row:
        return row[key]
    text = row.get("settings", {}).get(key)
    for number in (int, float):
        try:
            return number(text) if text not in (None, "-") else None
        except ValueError:
            continue
    return text


def resume_hints(rows: list[dict[str, Any]], folders: list[Path]) -> list[str]:
    """For each stopped or interrupted run that can be resumed, the command to resume it."""
    return [
        f"{row['run']}: {row['status']}; continue with: animalcnn train --resume {folder}"
        for row, folder in zip(rows, folders, strict=True)
        if row["status"] in ("stopped", "interrupted") and RunFolder(folder).resumable()
    ]


SWEEP_FILES = ("sweep.journal", "sweep.csv")  # what marks a sweep's folder


def expand_runs(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """Run folders as given; a folder of runs (a sweep's, a runs dir) as the runs in it.
    Returns them with a note for each path left out: a sweep folder with no run yet
    (every trial failed before training), a folder with no run at all (a new runs dir),
    a path that does not exist (a typo); one line when that leaves nothing. The pages'
    `animalcnn-assets/` folder is not a run."""
    from animalcnn.run_folder import CONFIG, METRICS

    found: list[Path] = []
    notes: list[str] = []
    for path in paths:
        if path.name == ASSETS and not (path / METRICS).exists():
            continue  # what our pages load (a report or sweep page written there), not a run
        if not path.exists():
            notes.append(f"{path}: no such folder")
            continue
        inner = (
            sorted(p for p in path.iterdir() if (p / METRICS).is_file())
            if (path.is_dir() and not (path / METRICS).exists())
            else []
        )
        if not inner and any((path / f).exists() for f in SWEEP_FILES):
            notes.append(
                f"{path}: a sweep with no trial run folders (every trial failed "
                "before training; sweep.csv says why)"
            )
            continue
        if not inner and path.is_dir() and not any((path / f).exists() for f in (CONFIG, METRICS)):
            notes.append(f"{path}: no run folders in it (animalcnn train CONFIG writes them)")
            continue
        found += inner or [path]
    if not found and notes:
        raise RunFolderError(notes[0])
    return found, notes


def collect(paths: list[Path]) -> list[dict[str, Any]]:
    """One row per folder; `label` is the run's name, or its folder name where names repeat."""
    rows = [run_row(p) for p in paths]
    names = [r["name"] or r["run"] for r in rows]
    for row, name in zip(rows, names, strict=True):
        row["label"] = name if names.count(name) == 1 else row["run"]
    return rows


def flag_text(found: list[Flag] | None) -> str | None:
    """Flags as written to CSV and the report: "name (reason); ..."."""
    return "; ".join(str(f) for f in found) if found else None


def _default_order(pairs: list[tuple[dict[str, Any], Path]]) -> list[tuple[dict[str, Any], Path]]:
    """Best first: by test accuracy where any run has one (runs without it after, by
    validation accuracy), else by best validation accuracy."""
    tested = any(r["test_accuracy"] is not None for r, _ in pairs)

    def score(pair: tuple[dict[str, Any], Path]) -> tuple[float, float]:
        r = pair[0]
        test, val = r["test_accuracy"], r["best_val_accuracy"]
        first = (test if test is not None else -1.0) if tested else 0.0
        return (-first, -(val if val is not None else -1.0))

    return sorted(pairs, key=score)


def ranked(
    rows: list[dict[str, Any]], folders: list[Path], sort: list[SortKey] | None = None
) -> tuple[list[dict[str, Any]], list[Path]]:
    """Rows (and their folders) best first, or in the order of the `sort` keys (missing
    values last, ties best first). The best row, whatever the order, gets `best: True`."""
    pairs = _default_order(list(zip(rows, folders, strict=True)))
    for r, _ in pairs:
        r["best"] = False
    if pairs and (
        pairs[0][0]["test_accuracy"] is not None or pairs[0][0]["best_val_accuracy"] is not None
    ):
        pairs[0][0]["best"] = True
    if sort:
        pairs = order(pairs, sort, lambda pair, key: sort_value(pair[0], key))
    return [r for r, _ in pairs], [f for _, f in pairs]


QUERY_KEYS = ("tag",)  # keys a query takes that are not columns: one of a run's tags


def known_key(key: str) -> bool:
    """Whether a query or sort key names something a run has: a column, `tag`, or a
    dotted config key."""
    return key in COMPARE_COLUMNS or key in QUERY_KEYS or is_config_key(key)


def parse_query(where: list[str] | str | None, sort: str | None) -> tuple[Query, list[SortKey]]:
    """`--where` texts and a `--sort` text as the runs table reads them (one-line errors)."""
    texts = [where] if isinstance(where, str) else list(where or [])
    keys = [*COMPARE_COLUMNS, *QUERY_KEYS]
    query = parse_where([t for t in texts if t.strip()], known_key, keys)
    return query, parse_sort(sort, known_key, keys) if sort and sort.strip() else []


def sort_value(row: dict[str, Any], key: str) -> Any:
    """A row's value to sort by: its column or setting; flags by their names."""
    if key == "flags":
        return ", ".join(f.name for f in row["flags"] or []) or None
    return value_of(row, key)


def _config_value(folder: Path, key: str) -> Any:
    """A dotted key's value in a run's config (`model.params.filters`), or None."""
    try:
        value: Any = RunFolder(folder).config().model_dump(mode="json")
    except RunFolderError:
        return None
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def query_value(row: dict[str, Any], folder: Path, key: str) -> Any:
    """A run's value for a query key: `tag` and `tags` as a list, `flags` as the flags,
    a column, a setting, or a deeper config value."""
    if key in ("tag", "tags"):
        return (row["tags"] or "").split(", ") if row["tags"] else []
    if key == "flags":
        return list(row["flags"] or [])
    if key in row or key in row.get("settings", {}):
        return value_of(row, key)
    return _config_value(folder, key)


def select(
    rows: list[dict[str, Any]], folders: list[Path], where: Query, sort: list[SortKey]
) -> tuple[list[dict[str, Any]], list[Path]]:
    """The runs table's rows that meet `where`, ranked (`ranked`): one step for every
    renderer (terminal, CSV, report, dashboard, API)."""
    kept = [
        (r, f)
        for r, f in zip(rows, folders, strict=True)
        if where.matches(lambda key, r=r, f=f: query_value(r, f, key))
    ]
    return ranked([r for r, _ in kept], [f for _, f in kept], sort)


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
        return row.get("settings", {}).get(key, "-")
    test = row.get("test_result")
    if key == "test_accuracy" and test is not None and test.state == "stale":
        return "stale"
    return format_cell(row[key], kind) + (" (best)" if key == "run" and row.get("best") else "")


def dotted_header(title: str) -> str:
    """A dotted setting's header broken after its section (`training.` / `learning_rate`)."""
    return title.replace(".", ".\n", 1)


def _fit(
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


def _folded(key: str, cells: list[str]) -> list[str]:
    """A column's cells as narrow as the table may draw them: the run's `(best)` may go
    under its name (the name itself, copied to the commands that take it, never breaks)."""
    return [part for c in cells for part in c.split(" ")] if key == "run" else cells


def compare_table(rows: list[dict[str, Any]], width: int | None = None) -> Table:
    """Runs side by side (`layout`); at `width` characters, the columns that fit, dropped
    by priority, the caption naming those left out (`compare --csv` has them all)."""
    view = layout(rows)
    needed = {
        key: max(
            *(len(line) for line in dotted_header(title).split("\n")),
            *(len(c) for c in _folded(key, view.cells[key])),
        )
        + CELL_PADDING
        for title, key, _, _ in view.columns
    }
    shown = view.columns if width is None else _fit(view.columns, view.columns, needed, width)
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


def evaluation_tables(result: dict[str, Any], title: str) -> list[Table]:
    """Per-class scores and the confusion matrix of one evaluation."""
    classes = result["classes"]
    heading = (
        f"{title}: accuracy {100 * result['accuracy']:.2f}%, loss {result['loss']:.4f}, "
        f"{result['images']:,} images"
    )
    scores = Table(title=Text(heading), header_style="bold", min_width=len(heading))
    for col in ("class", "precision", "recall", "f1", "support"):
        scores.add_column(col, justify="left" if col == "class" else "right")
    for name in classes:
        s = result["per_class"][name]
        scores.add_row(
            Text(name),
            f"{s['precision']:.1%}",
            f"{s['recall']:.1%}",
            f"{s['f1']:.1%}",
            str(s["support"]),
        )
    confusion = Table(title="confusion matrix (rows: true, columns: predicted)")
    confusion.add_column("")
    for name in classes:
        confusion.add_column(Text(name), justify="right")
    for name, row in zip(classes, result["confusion_matrix"], strict=True):
        confusion.add_row(Text(name), *(str(v) for v in row))
    confused = Table(title="most confused (true -> predicted)", header_style="bold")
    for col in ("true", "predicted", "images"):
        confused.add_column(col, justify="right" if col == "images" else "left")
    for pair in result.get("most_confused", []):
        confused.add_row(Text(pair["true"]), Text(pair["predicted"]), str(pair["count"]))
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
