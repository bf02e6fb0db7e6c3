"""Filtering and ranking rows: `--where` and `--sort`, best first by default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from animalcnn.config.loading import is_config_key
from animalcnn.reporting.query import Query, SortKey, order, parse_sort, parse_where
from animalcnn.reporting.runs_table.rows import COMPARE_COLUMNS, value_of


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


def _config_value(row: dict[str, Any], key: str) -> Any:
    """A dotted key's value in the config the row was read from (`model.params.filters`),
    or None."""
    value: Any = row["config"]
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def query_value(row: dict[str, Any], key: str) -> Any:
    """A run's value for a query key: `tag` and `tags` as a list, `flags` as the flags,
    a column, a setting, or a deeper config value."""
    if key in ("tag", "tags"):
        return (row["tags"] or "").split(", ") if row["tags"] else []
    if key == "flags":
        return list(row["flags"] or [])
    if key in row or key in row["settings"]:
        return value_of(row, key)
    return _config_value(row, key)


def select(
    rows: list[dict[str, Any]], folders: list[Path], where: Query, sort: list[SortKey]
) -> tuple[list[dict[str, Any]], list[Path]]:
    """The runs table's rows that meet `where`, ranked (`ranked`): one step for every
    renderer (terminal, CSV, report, dashboard, API)."""
    kept = [
        (r, f)
        for r, f in zip(rows, folders, strict=True)
        if where.matches(lambda key, r=r: query_value(r, key))
    ]
    return ranked([r for r, _ in kept], [f for _, f in kept], sort)
