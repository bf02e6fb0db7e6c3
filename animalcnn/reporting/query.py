"""Run queries as tracking users write them: `--where` conditions and `--sort` keys.

`compare`, the report, the dashboard (its query box and `GET /api/runs`) and the Python
API read the same text here and keep and order the same rows.

    best_val_accuracy > 0.8 and arch in [simple, mid]
    training.learning_rate <= 1e-3 and tag = baseline and test_accuracy >= 90%
    -best_val_accuracy,time_s                     (sort: `-` for descending)

A condition is `KEY OP VALUE` (OP one of `=`, `==`, `!=`, `<`, `<=`, `>`, `>=`) or
`KEY in [V, ...]`; conditions are joined by `and`. KEY is a column of the runs table,
`tag`, or a dotted config key. `<`, `<=`, `>` and `>=` compare numbers (`90%` is 0.9);
`=` compares numbers as numbers and text as text; `tags` and `flags` hold several
values, and `=` asks whether one of them is VALUE. A run without a value for KEY
matches only `!=`. Parsed by the small grammar below, never evaluated as code; a bad
query is one line naming the place it fails.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from animalcnn.errors import UserError

ORDERING = ("<", "<=", ">", ">=")
OPERATORS = ("=", "==", "!=", *ORDERING)
TOKEN = re.compile(
    r"""\s*(?:(?P<op><=|>=|!=|==|=|<|>)|(?P<punct>[\[\](),])|'(?P<sq>[^']*)'|"(?P<dq>[^"]*)"|"""
    r"""(?P<word>[^\s\[\](),=!<>'"]+)|(?P<bad>\S))"""
)
PERCENT = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)%$")

Lookup = Callable[[str], Any]  # a run's value for a key (a column, setting, config value)


@dataclass(frozen=True)
class Value:
    """A value as the query wrote it, and as a number where it reads as one."""

    text: str
    number: float | None

    @classmethod
    def of(cls, text: str, quoted: bool = False) -> Value:
        if quoted:
            return cls(text, None)
        percent = PERCENT.match(text)
        try:
            number = float(percent.group(1)) / 100 if percent else float(text)
        except ValueError:
            number = None
        if number is not None and not math.isfinite(number):
            number = None
        return cls(text, number)


@dataclass(frozen=True)
class Condition:
    key: str
    op: str  # one of OPERATORS, or "in"
    values: tuple[Value, ...]

    def __str__(self) -> str:
        if self.op == "in":
            return f"{self.key} in [{', '.join(v.text for v in self.values)}]"
        return f"{self.key} {self.op} {self.values[0].text}"

    def holds(self, actual: Any) -> bool:
        """Whether a run whose value for the key is `actual` meets the condition."""
        items = actual if isinstance(actual, list | tuple | set) else [actual]
        items = [v for v in items if not _missing(v)]
        if self.op == "!=":
            return not any(_equal(v, self.values[0]) for v in items)
        if self.op in ORDERING:
            wanted = self.values[0].number
            return any(_ordered(v, self.op, wanted) for v in items if _number(v) is not None)
        return any(_equal(v, w) for v in items for w in self.values)


@dataclass(frozen=True)
class Query:
    """Conditions all of which a run meets (an empty query keeps every run)."""

    conditions: tuple[Condition, ...] = ()

    def __str__(self) -> str:
        return " and ".join(str(c) for c in self.conditions)

    def __bool__(self) -> bool:
        return bool(self.conditions)

    def matches(self, lookup: Lookup) -> bool:
        return all(c.holds(lookup(c.key)) for c in self.conditions)


@dataclass(frozen=True)
class SortKey:
    key: str
    descending: bool

    def __str__(self) -> str:
        return ("-" if self.descending else "") + self.key


def _missing(value: Any) -> bool:
    return value is None or value == "-" or (isinstance(value, float) and math.isnan(value))


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return Value.of(value).number
    return None


def _equal(actual: Any, wanted: Value) -> bool:
    if isinstance(actual, bool):
        on = ("true", "on") if actual else ("false", "off")
        return wanted.text.lower() in on
    number = _number(actual)
    if number is not None and wanted.number is not None:
        return math.isclose(number, wanted.number, rel_tol=1e-9, abs_tol=1e-12)
    return str(getattr(actual, "name", actual)) == wanted.text  # a flag by its name


def _ordered(actual: Any, op: str, wanted: float | None) -> bool:
    a = _number(actual)
    if a is None or wanted is None:
        return False
    close = math.isclose(a, wanted, rel_tol=1e-9, abs_tol=1e-12)
    return {
        "<": a < wanted and not close,
        "<=": a < wanted or close,
        ">": a > wanted and not close,
        ">=": a > wanted or close,
    }[op]


class _Tokens:
    """The query's tokens with where each starts, for errors that point at the place."""

    def __init__(self, text: str, flag: str, known: Callable[[str], bool], columns: str):
        self.text, self.flag, self.known, self.columns = text, flag, known, columns
        self.items: list[tuple[str, str, int]] = []  # (kind, text, position)
        for m in TOKEN.finditer(text):
            kind = m.lastgroup
            if kind is None:
                continue
            if kind == "bad":
                self.fail(m.start(kind), f"unexpected {m.group(kind)!r}")
            quoted = kind in ("sq", "dq")
            self.items.append(("quoted" if quoted else kind, m.group(kind), m.start(kind)))
        self.i = 0

    def fail(self, at: int, what: str) -> None:
        shown = self.text if self.text.isprintable() else self.text.encode("unicode_escape")
        near = self.text[at : at + 20] or "the end"
        raise UserError(
            f"{self.flag} {shown!r}: at character {at + 1} ({near!r}): {what}; "
            f"keys: {self.columns}, tag or a dotted config key"
        )

    def peek(self) -> tuple[str, str, int]:
        return self.items[self.i] if self.i < len(self.items) else ("end", "", len(self.text))

    def take(self, kind: str, what: str, text: str | None = None) -> tuple[str, str, int]:
        item = self.peek()
        if item[0] != kind or (text is not None and item[1].lower() != text):
            self.fail(item[2], f"expected {what}")
        self.i += 1
        return item

    def value(self) -> Value:
        kind, text, at = self.peek()
        if kind not in ("word", "quoted"):
            self.fail(at, "expected a value")
        self.i += 1
        return Value.of(text, quoted=kind == "quoted")

    def condition(self) -> Condition:
        _, key, at = self.take("word", "a key (a column or a dotted config key)")
        if not self.known(key):
            self.fail(at, f"unknown key {key!r}")
        kind, text, where = self.peek()
        if kind == "word" and text.lower() == "in":
            self.i += 1
            self.take("punct", "'[' to open the list", "[")
            values = [self.value()]
            while self.peek()[:2] == ("punct", ","):
                self.i += 1
                values.append(self.value())
            self.take("punct", "',' or ']'", "]")
            return Condition(key, "in", tuple(values))
        _, op, _ = self.take("op", f"an operator ({', '.join(OPERATORS)} or in)")
        _, _, value_at = self.peek()
        value = self.value()
        if op in ORDERING and value.number is None:
            self.fail(value_at, f"{op} compares numbers; {value.text!r} is not one")
        return Condition(key, "=" if op == "==" else op, (value,))


def parse_where(
    texts: Sequence[str], known: Callable[[str], bool], columns: Sequence[str]
) -> Query:
    """Every `--where` text as one query (repeated texts join with `and`); `known` says
    whether a key names something a run has."""
    conditions: list[Condition] = []
    for text in texts:
        tokens = _Tokens(text, "--where", known, ", ".join(columns))
        if tokens.peek()[0] == "end":
            tokens.fail(0, "expected a condition, e.g. best_val_accuracy > 0.9")
        conditions.append(tokens.condition())
        while tokens.peek()[0] != "end":
            tokens.take("word", "'and' between conditions", "and")
            conditions.append(tokens.condition())
    return Query(tuple(conditions))


def parse_sort(text: str, known: Callable[[str], bool], columns: Sequence[str]) -> list[SortKey]:
    """`-best_val_accuracy,time_s`: keys in order, a leading `-` for descending (`+` or
    nothing for ascending)."""
    keys: list[SortKey] = []
    position = 0
    for part in text.split(","):
        raw = part.strip()
        descending = raw.startswith("-")
        key = raw[1:].strip() if raw[:1] in "+-" and raw else raw
        if not key or not known(key):
            what = f"unknown key {key!r}" if key else "expected a key"
            shown = text if text.isprintable() else text.encode("unicode_escape")
            raise UserError(
                f"--sort {shown!r}: at character {position + 1}: {what}; keys: "
                f"{', '.join(columns)} or a dotted config key (a leading - sorts descending)"
            )
        keys.append(SortKey(key, descending))
        position += len(part) + 1
    return keys


def _sortable(values: list[Any]) -> list[Any]:
    """Values as numbers where every present one reads as a number, else as text."""
    numbers = [_number(v) for v in values]
    if all(n is not None for v, n in zip(values, numbers, strict=True) if not _missing(v)):
        return numbers
    return [None if _missing(v) else str(v) for v in values]


def order(items: Sequence[Any], keys: Sequence[SortKey], lookup: Callable[[Any, str], Any]) -> list:
    """`items` sorted by `keys` (the first key first, ties by the next), missing values
    last whichever the direction; ties keep the order given."""
    ordered = list(items)
    for key in reversed(keys):
        values = dict(
            zip(map(id, ordered), _sortable([lookup(i, key.key) for i in ordered]), strict=True)
        )
        present = [i for i in ordered if values[id(i)] is not None]
        absent = [i for i in ordered if values[id(i)] is None]
        present.sort(key=lambda i: values[id(i)], reverse=key.descending)
        ordered = present + absent
    return ordered
