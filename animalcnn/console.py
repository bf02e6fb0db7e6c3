"""The terminal: one console for output, one for errors, and progress for long steps."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

# Logs and pipes get wide tables instead of rich's 80-column default.
_WIDTH = None if sys.stdout.isatty() else 200
console = Console(soft_wrap=True, width=_WIDTH)
Advance = Callable[[int], None]
err_console = Console(stderr=True, soft_wrap=True, width=_WIDTH)


@contextmanager
def progress_bar(label: str, total: int) -> Iterator[Advance]:
    """A bar with a rate (items/s) on a terminal; one closing line elsewhere."""
    columns = [
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
    ]
    bar = Progress(*columns, console=console, transient=True, disable=not console.is_terminal)
    task = bar.add_task(label, total=total)
    with bar:
        yield lambda n: bar.advance(task, n)
    elapsed = bar.tasks[0].finished_time or bar.tasks[0].elapsed or 0.0
    rate = f", {total / elapsed:,.0f}/s" if elapsed > 0 else ""
    console.print(f"{label}: {total:,} in {elapsed:.1f}s{rate}", highlight=False)
