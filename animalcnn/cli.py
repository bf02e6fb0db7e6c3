"""The `animalcnn` command: a thin layer over the modules that do the work.

TensorFlow is imported only inside the commands that need it (train, summary,
evaluate), so `--help`, config errors and `compare` answer at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    help="Reproducible CNN image-classification experiments from YAML configs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Dataset tools.", no_args_is_help=True)
app.add_typer(data_app, name="data")

Overrides = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config field: dotted.key=value (repeatable)."),
]


def print_error(message: object) -> None:
    """The one-line form every user error takes."""
    from animalcnn.console import err_console

    err_console.print(f"[red]error:[/] {message}", highlight=False)


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Print a UserError as one line and exit with its code, without a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from animalcnn.console import err_console
        from animalcnn.errors import UserError

        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            print_error(exc)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("[red]interrupted[/]")
            raise typer.Exit(130) from None
        except OSError as exc:  # permissions, a full disk: the file and the reason
            where = f"{exc.filename}: " if exc.filename else ""
            print_error(f"{where}{exc.strerror or exc}")
            raise typer.Exit(1) from None

    return wrapper


def _load(config: Path, overrides: list[str] | None, runs_dir: Path | None = None):
    from animalcnn.config import load_config

    extra = [f"output.runs_dir={runs_dir}"] if runs_dir is not None else []
    return load_config(config, [*(overrides or []), *extra])


@app.command()
@user_errors
def train(
    configs: Annotated[
        list[Path] | None, typer.Argument(help="Config files, trained in turn.")
    ] = None,
    overrides: Overrides = None,
    runs_dir: Annotated[
        Path | None, typer.Option(help="Where run folders go (default: output.runs_dir).")
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(help="Continue an interrupted run folder from its last completed epoch."),
    ] = None,
) -> None:
    """Train each config into a new run folder; a failed one does not stop the rest."""
    from animalcnn.console import console
    from animalcnn.errors import UserError

    if resume is not None:
        if configs or overrides or runs_dir:
            raise UserError("--resume takes a run folder alone: its config is in the folder")
        _resume(resume)
        return
    if not configs:
        raise UserError("train: give one or more config files, or --resume RUN")
    # Validate every config before the first (long) training starts.
    loaded: list[tuple[Path, Any]] = []
    for path in configs:
        try:
            loaded.append((path, _load(path, overrides, runs_dir)))
        except UserError as exc:
            if len(configs) == 1:
                raise
            print_error(exc)
            loaded.append((path, exc))

    import keras

    from animalcnn.runtime import keeps_run_folder
    from animalcnn.trainer import TrainingFailed
    from animalcnn.trainer import train as train_one

    results: list[tuple[str, str]] = []
    for path, cfg in loaded:
        if isinstance(cfg, UserError):
            results.append((str(path), "config error"))
            continue
        keras.backend.clear_session()
        try:
            run = train_one(cfg)
        except TrainingFailed as exc:
            _report_failure(exc, cfg)
            results.append((str(path), f"{exc.status}: {exc.run.path}"))
            if exc.status == "interrupted":
                break
            continue
        except UserError as exc:
            if len(configs) == 1:
                raise
            print_error(exc)
            results.append((str(path), "error"))
            continue
        _report_success(run, cfg)
        kept = run.path if keeps_run_folder(cfg) else "this worker's share"
        results.append((str(path), f"completed: {kept}"))
    failed = [r for r in results if not r[1].startswith("completed")]
    if len(configs) > 1:
        for path, outcome in results:
            console.print(f"{path}: {outcome}", highlight=False)
    if failed:
        raise typer.Exit(130 if "interrupted" in failed[-1][1] else 1)


def _resume(path: Path) -> None:
    from animalcnn.runs import RunFolder
    from animalcnn.trainer import TrainingFailed, resume

    folder = RunFolder.open(path)
    try:
        run = resume(folder)
    except TrainingFailed as exc:
        _report_failure(exc, folder.config())
        raise typer.Exit(130 if exc.status == "interrupted" else 1) from None
    _report_success(run, folder.config())


def _report_failure(exc: Any, cfg: Any) -> None:
    from animalcnn.console import err_console
    from animalcnn.runtime import keeps_run_folder

    run = exc.run.path if keeps_run_folder(cfg) else "<the chief's run folder>"
    every = ", on every worker" if cfg.distribute.strategy == "multi_worker" else ""
    hint = f"; continue with: animalcnn train --resume {run}{every}"
    err_console.print(
        f"[red]{exc.status}:[/] {exc}" + (hint if exc.status == "interrupted" else ""),
        highlight=False,
    )


def _report_success(run: Any, cfg: Any) -> None:
    from animalcnn.console import console
    from animalcnn.runtime import keeps_run_folder

    if not keeps_run_folder(cfg):
        console.print("[green]completed[/] this worker's share; the chief keeps the run folder")
        return
    best = run.metrics().get("best") or {}
    acc = best.get("val_accuracy")
    console.print(
        f"[green]completed[/] {run.path}"
        + (f"  best val_accuracy {acc:.4f} (epoch {best['epoch']})" if acc is not None else ""),
        highlight=False,
    )


@app.command()
@user_errors
def summary(
    config: Path,
    overrides: Overrides = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
    classes: Annotated[
        int | None,
        typer.Option(help="Number of classes (default: class folders in data.dir, else 5)."),
    ] = None,
) -> None:
    """Build the model and show its layers and parameter counts (no training, no data)."""
    cfg = _load(config, overrides)
    from animalcnn.data import class_names
    from animalcnn.errors import DataError

    if classes is None:
        try:
            classes = len(class_names(cfg.data.dir / cfg.data.train_split))
        except DataError:
            classes = 5
    from animalcnn.models import build_model
    from animalcnn.strategies import parameter_counts, phases, set_trainable
    from animalcnn.trainer import summary_text

    model = build_model(cfg, classes)
    set_trainable(model, phases(cfg)[-1], cfg)
    counts = parameter_counts(model)
    if as_json:
        print(json.dumps({**counts, "arch": cfg.model.arch, "classes": classes}))
        return
    from animalcnn.console import console

    console.print(summary_text(model), highlight=False, markup=False)


@app.command()
@user_errors
def evaluate(
    runs: Annotated[list[Path], typer.Argument(help="Run folders.")],
    data: Annotated[
        Path | None, typer.Option(help="Another dataset root or labelled split folder.")
    ] = None,
) -> None:
    """Score each run's best checkpoint on its test split; writes evaluation.json."""
    from animalcnn.console import console
    from animalcnn.evaluation import evaluate as evaluate_run
    from animalcnn.reports import evaluation_tables
    from animalcnn.runs import RunFolder

    for path in runs:
        run = RunFolder.open(path)
        result = evaluate_run(run, data)
        for table in evaluation_tables(result, run.name):
            console.print(table)


@app.command()
@user_errors
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Run folders.")],
    csv: Annotated[Path | None, typer.Option(help="Also write the table as CSV.")] = None,
    report: Annotated[
        Path | None,
        typer.Option(help="Write an offline HTML report, and its figures as PNG beside it."),
    ] = None,
) -> None:
    """Runs side by side: parameters, epochs, validation and test accuracy, gap, time."""
    from animalcnn.console import console
    from animalcnn.reports import collect, compare_table, write_csv
    from animalcnn.runs import RunFolder

    folders = [p for p in runs if p.is_dir() or not p.exists()]
    rows = collect(folders)
    console.print(compare_table(rows))
    if csv is not None:
        write_csv(rows, csv)
        console.print(f"wrote {csv}")
    if report is not None:
        import pandas as pd

        from animalcnn.figures import comparison_figures
        from animalcnn.report import write_report

        df = pd.DataFrame(rows)
        histories = {
            row["label"]: RunFolder(path).history()
            for row, path in zip(rows, folders, strict=True)
            if not str(row["status"]).startswith("damaged")
        }
        write_report(df, histories, report)
        pngs = comparison_figures(df, report.with_suffix(""))
        console.print(f"wrote {report} and {', '.join(p.name for p in pngs)}")


@app.command()
@user_errors
def predict(
    run: Annotated[Path, typer.Argument(help="A trained run folder.")],
    paths: Annotated[list[Path], typer.Argument(help="Image files and folders.")],
    csv: Annotated[Path | None, typer.Option(help="Write one row per image as CSV.")] = None,
) -> None:
    """Label images with a run's best checkpoint: class, confidence, class probabilities."""
    from animalcnn.console import console
    from animalcnn.prediction import predict as predict_images
    from animalcnn.prediction import prediction_table
    from animalcnn.runs import RunFolder, atomic_write

    df = predict_images(RunFolder.open(run), paths)
    console.print(prediction_table(df))
    if csv is not None:
        atomic_write(csv, df.to_csv(index=False))
        console.print(f"wrote {csv}")


@app.command()
def models() -> None:
    """List the registered architectures."""
    from rich.table import Table

    from animalcnn.console import console
    from animalcnn.models import registry

    table = Table("arch", "kind", "min size", "description", header_style="bold")
    for name in registry.names():
        a = registry.get(name)
        kind = "pretrained" if a.pretrained else "custom"
        table.add_row(name, kind, str(a.min_size), a.description)
    console.print(table)


@data_app.command("synth")
@user_errors
def data_synth(
    root: Annotated[Path, typer.Argument(help="Folder to create.")],
    per_class: Annotated[int, typer.Option(min=2, help="Training images per class.")] = 60,
    test_per_class: Annotated[int, typer.Option(min=1, help="Test images per class.")] = 20,
    size: Annotated[int, typer.Option(min=16, help="Image side in pixels.")] = 64,
    seed: int = 0,
) -> None:
    """Write a small synthetic 5-class dataset in the Animals layout (train/, val/, inf/)."""
    from animalcnn.console import console
    from animalcnn.errors import DataError
    from animalcnn.synthetic import make_dataset

    if (root / "train").exists():
        raise DataError(f"{root}: already holds a train/ folder; choose a new folder")
    make_dataset(root, per_class, test_per_class, size=size, seed=seed)
    console.print(f"wrote {root}: train/, val/ and inf/ with 5 classes")


@data_app.command("check")
@user_errors
def data_check(
    root: Annotated[Path, typer.Argument(help="Dataset folder (holding train/, val/, ...).")],
) -> None:
    """Count images per split and class; list every file that is broken or suspicious.

    Exits 1 when a file would be left out of training (it does not decode)."""
    from animalcnn.checks import check
    from animalcnn.console import console, err_console
    from animalcnn.reports import check_table

    report = check(root.expanduser())
    console.print(check_table(report))
    for problem in report.problems:
        colour = "red" if problem.error else "yellow"
        err_console.print(f"[{colour}]{problem}[/]", highlight=False)
    errors, warnings = len(report.errors), len(report.problems) - len(report.errors)
    console.print(f"{errors} error(s), {warnings} warning(s)")
    if errors:
        raise typer.Exit(1)


def main() -> None:
    app(prog_name="animalcnn")
