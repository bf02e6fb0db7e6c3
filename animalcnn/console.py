"""The terminal: one console for output, one for errors, progress for long steps, and
TensorFlow's start-up noise kept off both unless asked for."""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

PIPED_WIDTH = 100  # columns when output goes to a pipe or a file and COLUMNS is not set


def _width() -> int | None:
    """A terminal's own width; elsewhere COLUMNS, else PIPED_WIDTH."""
    if sys.stdout.isatty():
        return None
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else PIPED_WIDTH


_WIDTH = _width()
# Output fits the width: lines wrap between words, tables and the epoch lines
# (`fields_lines`) are laid out to it. An error or a warning stays one line, whole.
console = Console(width=_WIDTH)
Advance = Callable[[int], None]
err_console = Console(stderr=True, width=_WIDTH, soft_wrap=True)  # an error is one line

# Set to 1 (or pass --verbose) to see TensorFlow's own start-up log lines.
VERBOSE_ENV = "ANIMALCNN_VERBOSE"


def fields_lines(fields: list[str], width: int, indent: str = "    ") -> str:
    """Fields (`loss 0.4321`, `acc 87.50%`) joined by two spaces into lines of at most
    `width` characters, broken only between fields; later lines indented."""
    lines: list[str] = []
    for field in fields:
        if lines and len(lines[-1]) + 2 + len(field) <= width:
            lines[-1] += "  " + field
        else:
            lines.append(field if not lines else indent + field)
    return "\n".join(lines)


class NotebookOutput:
    """One output of a Jupyter cell replaced in place as it changes (IPython's display
    handle), so that progress is one updating block rather than a line per epoch."""

    def __init__(self, handle: object) -> None:
        self._handle = handle

    @classmethod
    def open(cls) -> NotebookOutput | None:
        """A new output in the running cell, in a Jupyter kernel; None anywhere else (a
        terminal, a plain or terminal IPython shell)."""
        shell = sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None
        if shell is None or getattr(shell, "kernel", None) is None:
            return None
        from IPython.display import display

        return cls(display({"text/plain": ""}, raw=True, display_id=True))

    def show(self, text: str) -> None:
        self._handle.update({"text/plain": text}, raw=True)


def text_bar(done: int, total: int, width: int = 24) -> str:
    """A bar drawn in characters, for outputs that are text."""
    filled = round(width * done / total) if total else width
    return "█" * filled + "░" * (width - filled)


def print_error(message: object) -> None:
    """The one-line form every user error takes (the message printed as text, not markup)."""
    err_console.print(f"[red]error:[/] {escape(str(message))}", highlight=False)


def print_warning(message: object) -> None:
    """A warning line (the message printed as text, not markup)."""
    err_console.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False)


@contextmanager
def progress_bar(label: str, total: int) -> Iterator[Advance]:
    """A bar with a rate (items/s) on a terminal; one closing line elsewhere."""
    columns = [
        TextColumn(escape(label)),
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
    console.print(f"{label}: {total:,} in {elapsed:.1f}s{rate}", highlight=False, markup=False)


@contextmanager
def native_stderr_held() -> Iterator[None]:
    """Hold back what native libraries (TensorFlow, TFLite) write straight to the
    process's standard error while the block runs: caught at the file descriptor, where
    no Python setting applies. With ANIMALCNN_VERBOSE=1 (or --verbose) each distinct
    message is shown once; if the block fails, everything it wrote is shown."""
    sys.stderr.flush()
    saved = os.dup(2)
    ok = False
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
            ok = True
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            lines = caught.read().decode(errors="replace").splitlines()
            if lines and (not ok or verbose()):
                shown = lines if not ok else unique_log_lines(lines)
                print("\n".join(shown), file=sys.stderr)


def import_tensorflow() -> None:
    """Import TensorFlow with its start-up log lines held back (it writes them twice,
    from two of its libraries, before any Python setting applies)."""
    if "tensorflow" in sys.modules:
        return
    with native_stderr_held():
        import tensorflow  # noqa: F401


# TensorFlow's log prefix: severity, date, time, thread, source line.
_LOG_PREFIX = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ [^\]]+\] ")


def unique_log_lines(lines: list[str]) -> list[str]:
    """Each distinct message once (two of TensorFlow's libraries log the same one)."""
    seen: set[str] = set()
    kept = []
    for line in lines:
        message = _LOG_PREFIX.sub("", line)
        if message.strip() and message not in seen:
            seen.add(message)
            kept.append(line)
    return kept


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")
