"""The `animalcnn` Typer app: global options, the error wrapper, shared option types.

The command modules (`experiments`, `runs`, `sweeps`, `datasets`) register on `app`;
each command only parses its arguments and calls the package that does the work, and
`command` turns the errors a user can fix into one line and a non-zero exit.
TensorFlow is imported only inside the commands that need it, so `--help`,
config errors and the commands that only read runs answer at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from enum import Enum
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperCommand

from animalcnn import __version__

app = typer.Typer(
    help="Reproducible CNN image-classification experiments from YAML configs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)
data_app = typer.Typer(
    help="Dataset tools: check a folder, write the synthetic demo set.", no_args_is_help=True
)
app.add_typer(data_app, name="data")

Overrides = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Override a config field, e.g. training.epochs=5 (repeatable).",
    ),
]
RunFolders = Annotated[list[Path], typer.Argument(metavar="RUN", help="Run folders.")]
RunFolderArg = Annotated[Path, typer.Argument(metavar="RUN", help="A trained run folder.")]
ImagePaths = Annotated[list[Path], typer.Argument(metavar="PATH", help="Image files and folders.")]
# The servers' (`serve`, `dashboard`): this machine only unless asked otherwise.
LOOPBACK = "127.0.0.1"
HostOption = Annotated[
    str, typer.Option(metavar="HOST", help="Address to listen on (this machine only).")
]
PortOption = Annotated[int, typer.Option(metavar="N", min=1, max=65535, help="Port to listen on.")]


class TtaChoice(str, Enum):
    """evaluation.inference's views (an Enum: typer's way to offer choices)."""

    none = "none"
    flip = "flip"
    crops = "crops"


TtaOption = Annotated[
    TtaChoice,
    typer.Option(
        "--tta",
        metavar="none|flip|crops",
        help="Test-time augmentation: average the probabilities of the image and its mirror "
        "image (flip), and of four shifted copies too (crops).",
    ),
]


def examples(*lines: str) -> str:
    """A command's help epilog: its examples, one per line."""
    return "Examples:\n\n" + "\n\n".join(f"  {line}" for line in lines)


def _version(show: bool) -> None:
    if show:
        print(f"animalcnn {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="Show TensorFlow's own log lines (or ANIMALCNN_VERBOSE=1)."
        ),
    ] = False,
) -> None:
    """Reproducible CNN image-classification experiments from YAML configs."""
    if verbose:
        from animalcnn.console import VERBOSE_ENV

        os.environ[VERBOSE_ENV] = "1"
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"


class _Command(TyperCommand):
    """Help with plain names: each argument as `RUN...` (not `{RUN}...` nor its Python
    type); number options name theirs (`--trials N`, not `<int range>`)."""

    def get_params(self, ctx: Any) -> list:
        params = super().get_params(ctx)
        for param in params:
            if isinstance(param, TyperArgument):
                param.display_type_rich = lambda ctx: None
        return params

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = (param.metavar or param.name.upper()) + ("..." if param.nargs != 1 else "")
                pieces.append(name if param.required else f"[{name}]")
        return pieces


def summary(doc: str) -> str:
    """A command's line in `--help`'s list: its docstring up to the first colon or full
    stop, whole (click would cut it at 45 characters with "...")."""
    text = " ".join(doc.split())
    ends = [i for i in (text.find(": "), text.find(". "), text.find("; ")) if i > 0]
    return (text[: min(ends)] if ends else text).rstrip(".")


def command(parent: typer.Typer = app, **kwargs: Any) -> Callable[[Callable], Callable]:
    """Register a command whose user errors print as one line (no traceback) and exit
    with their code; an interruption exits 130, an OS error (permissions, a full disk)
    names the file and exits 1."""

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(fn)
        def wrapper(*args: Any, **kw: Any) -> Any:
            from animalcnn.console import err_console, print_error
            from animalcnn.errors import UserError

            try:
                return fn(*args, **kw)
            except UserError as exc:
                print_error(exc)
                raise typer.Exit(exc.exit_code) from None
            except KeyboardInterrupt:
                err_console.print("[red]interrupted[/]")
                raise typer.Exit(130) from None
            except OSError as exc:
                where = f"{exc.filename}: " if exc.filename else ""
                print_error(f"{where}{exc.strerror or exc}")
                raise typer.Exit(1) from None

        kwargs.setdefault("short_help", summary(fn.__doc__ or ""))
        return parent.command(cls=_Command, **kwargs)(wrapper)

    return decorator
