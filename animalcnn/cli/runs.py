"""Commands that read run folders: evaluate, compare, predict."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from animalcnn.cli.app import (
    LOOPBACK,
    HostOption,
    ImagePaths,
    PortOption,
    RunFolderArg,
    RunFolders,
    TtaChoice,
    TtaOption,
    command,
    examples,
)


@command(
    epilog=examples(
        "animalcnn evaluate runs/mid-20261129-101500",
        "animalcnn evaluate runs/mid-20261129-101500 --data ~/other_animals",
        "animalcnn evaluate runs/mid-20261129-101500 --errors 24 --explain",
        "animalcnn evaluate runs/mid-20261129-101500 --tta flip",
    )
)
def evaluate(
    runs: RunFolders,
    data: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="Another dataset root or labelled split folder."),
    ] = None,
    errors: Annotated[
        int, typer.Option(metavar="N", min=0, help="Most confident mistakes shown in errors.png.")
    ] = 16,
    explain: Annotated[
        bool, typer.Option("--explain", help="Draw each mistake's Grad-CAM over it.")
    ] = False,
    tta: TtaOption = TtaChoice.none,
) -> None:
    """Score each run's best checkpoint on its test split: scores, confusion matrix, the
    most confused classes and a gallery of the most confident mistakes."""
    from animalcnn import backends
    from animalcnn.console import console, print_warning
    from animalcnn.reporting.tables import evaluation_tables
    from animalcnn.run_folder import RunFolder
    from animalcnn.run_folder.flags import run_flags

    folders = [RunFolder.open(path) for path in runs]
    backends.start()
    from animalcnn.evaluation.evaluate import evaluate as evaluate_run

    for run in folders:
        scored = evaluate_run(run, data, errors, explain, tta.value)
        for table in evaluation_tables(scored.evaluation, run.name):
            console.print(table)
        for flag in run_flags(run):
            print_warning(f"{run.name}: {flag}")
        written = ", ".join(str(p) for p in scored.written)
        console.print(f"wrote {written}", highlight=False, markup=False)


@command(
    epilog=examples(
        "animalcnn compare runs/*",
        "animalcnn compare runs/* --csv table.csv --report report.html",
        "animalcnn compare runs/lr-and-batch  # a sweep's trials",
        "animalcnn compare runs/* --where status=completed --where training.optimizer=adamw",
        'animalcnn compare runs/* --where "best_val_accuracy > 0.9 and arch in [simple, mid]"',
        "animalcnn compare runs/* --sort -best_val_accuracy,time_s",
    )
)
def compare(
    runs: RunFolders,
    csv: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Also write the table as CSV.")
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE", help="Write an offline HTML report, and its figures as PNG beside it."
        ),
    ] = None,
    sort: Annotated[
        str | None,
        typer.Option(
            metavar="KEYS",
            help="Order by --csv columns or config keys, comma-separated, a leading - for "
            "descending: -best_val_accuracy,time_s (default: best first).",
        ),
    ] = None,
    where: Annotated[
        list[str] | None,
        typer.Option(
            metavar="QUERY",
            help="Only runs that meet it: KEY OP VALUE (=, !=, <, <=, >, >=) or KEY in [A, B], "
            "joined by 'and'; KEY a --csv column, tag, or a dotted config key: "
            '"best_val_accuracy > 0.9 and arch in [simple, mid]"; repeatable.',
        ),
    ] = None,
) -> None:
    """Runs side by side, best first: parameters, epochs, validation and test accuracy,
    gap, time, and sanity flags."""
    from animalcnn.atomic import check_replaceable
    from animalcnn.console import console, print_warning
    from animalcnn.errors import UserError
    from animalcnn.reporting.runs_table import read_runs
    from animalcnn.reporting.runs_table.find import expand_runs
    from animalcnn.reporting.runs_table.ranking import parse_query
    from animalcnn.reporting.runs_table.render import RUNS_CSV_MARK, compare_table, write_csv
    from animalcnn.reporting.runs_table.rows import resume_hints

    if csv is not None:
        check_replaceable(csv, RUNS_CSV_MARK, "a runs table", "--csv")
    if report is not None:
        from animalcnn.reporting.html import check_report_target

        check_report_target(report)

    query, order = parse_query(where, sort)
    folders, notes = expand_runs([p for p in runs if p.is_dir() or not p.exists()])
    for note in notes:
        print_warning(note)
    found = read_runs(folders, query, order)
    rows, folders = found.rows, found.folders
    if not rows and found.read:
        raise UserError(f"no run has {query}")
    console.print(compare_table(rows, console.width), soft_wrap=False)  # the caption wraps
    for hint in resume_hints(rows, folders):
        console.print(hint, highlight=False, markup=False)
    if csv is not None:
        write_csv(rows, csv)
        console.print(f"wrote {csv}", highlight=False, markup=False)
    if report is not None:
        from animalcnn.reporting.html import write_comparison

        written = write_comparison(rows, folders, report, str(query), ",".join(map(str, order)))
        console.print(f"wrote {', '.join(str(p) for p in written)}", highlight=False, markup=False)


@command(
    epilog=examples(
        "animalcnn predict runs/mid-20261129-101500 data/animals/inf",
        "animalcnn predict runs/mid-20261129-101500 cat.jpg dog.png --csv labels.csv",
    )
)
def predict(
    run: RunFolderArg,
    paths: ImagePaths,
    csv: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Write one row per image as CSV.")
    ] = None,
    tta: TtaOption = TtaChoice.none,
) -> None:
    """Label images with a run's best checkpoint: class, confidence, class probabilities."""
    from animalcnn import backends
    from animalcnn.atomic import atomic_write, check_replaceable
    from animalcnn.console import console
    from animalcnn.errors import DataError
    from animalcnn.reporting.tables import prediction_table
    from animalcnn.run_folder import RunFolder

    folder = RunFolder.open(run)
    backends.start()
    from animalcnn.evaluation.predict import CSV_MARK
    from animalcnn.evaluation.predict import predict as predict_images

    if csv is not None:
        check_replaceable(csv, CSV_MARK, "a predictions table", "--csv")

    df = predict_images(folder, paths, tta.value)
    console.print(prediction_table(df))
    if df["predicted"].isna().all():  # nothing labelled: the input was wrong, not the run
        raise DataError(
            f"no image to label: none of the {len(df):,} file(s) could be read "
            "as an image (the table says why)"
        )
    if csv is not None:
        atomic_write(csv, df.to_csv(index=False, float_format="%.6g"))
        console.print(f"wrote {csv}", highlight=False, markup=False)


@command(
    epilog=examples(
        "animalcnn explain runs/mid-20261129-101500 data/animals/inf",
        "animalcnn explain runs/mid-20261129-101500 cat.jpg --class dog --out heatmaps",
    )
)
def explain(
    run: RunFolderArg,
    paths: ImagePaths,
    out: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="Where the figures go (default: RUN/explain)."),
    ] = None,
    class_name: Annotated[
        str | None,
        typer.Option("--class", metavar="NAME", help="Explain this class (default: predicted)."),
    ] = None,
) -> None:
    """Show where each image's evidence lies: a Grad-CAM heat map per image."""
    from animalcnn import backends
    from animalcnn.console import console
    from animalcnn.reporting.tables import explain_table
    from animalcnn.run_folder import RunFolder

    folder = RunFolder.open(run)
    backends.start()
    from animalcnn.evaluation.explain import explain as explain_images

    console.print(explain_table(explain_images(folder, paths, out, class_name)))


@command(
    epilog=examples(
        "animalcnn export runs/mid-20261129-101500",
        "animalcnn export runs/mid-20261129-101500 --format onnx --out mid.onnx",
    )
)
def export(
    run: RunFolderArg,
    fmt: Annotated[
        str,
        typer.Option("--format", metavar="FORMAT", help="savedmodel, tflite or onnx."),
    ] = "savedmodel",
    out: Annotated[
        Path | None, typer.Option(metavar="PATH", help="Where it goes (default: RUN/export/).")
    ] = None,
) -> None:
    """Export the best model and check it: its runtime's probabilities against model.keras
    on a few of the run's images (exit 1 above 1e-3)."""
    from animalcnn import backends
    from animalcnn.console import console
    from animalcnn.errors import UserError
    from animalcnn.run_folder import RunFolder

    folder = RunFolder.open(run)
    formats = ("savedmodel", "tflite", "onnx")
    if fmt not in formats:
        raise UserError(f"--format {fmt}: one of {', '.join(formats)}")
    backend = backends.start()
    if fmt in ("savedmodel", "tflite") and not backends.installed("tensorflow"):
        raise UserError(
            f"{fmt}: needs TensorFlow, which is not installed here (backend {backend}): "
            "pip install 'animalcnn[cpu]', or use --format onnx"
        )
    from animalcnn.deploy.export import PARITY_TOLERANCE
    from animalcnn.deploy.export import export as export_model

    path, delta = export_model(folder, fmt, out)
    verdict = "ok" if delta <= PARITY_TOLERANCE else f"above {PARITY_TOLERANCE:g}"
    console.print(
        f"wrote {path}; max |Δp| = {delta:.2e} against model.keras ({verdict})",
        highlight=False,
        markup=False,
    )
    if delta > PARITY_TOLERANCE:
        raise typer.Exit(1)


@command(
    epilog=examples(
        "animalcnn serve runs/mid-20261129-101500",
        "animalcnn serve runs/mid-20261129-101500 --host 0.0.0.0 --port 8080",
    )
)
def serve(
    run: RunFolderArg,
    host: HostOption = LOOPBACK,
    port: PortOption = 8000,
    max_upload_mb: Annotated[
        float,
        typer.Option(
            metavar="MB",
            min=0.001,
            max=4096,
            help="Largest request, all its images together (413 above).",
        ),
    ] = 20.0,
) -> None:
    """Serve the run's model over HTTP: a page at /, POST /predict, GET /health. Listens
    on this machine only unless --host says otherwise (there is no authentication)."""
    from animalcnn import backends
    from animalcnn.console import console
    from animalcnn.run_folder import RunFolder

    folder = RunFolder.open(run)
    backends.start()
    from animalcnn.deploy.serve import serve as serve_run

    serve_run(
        folder,
        host,
        port,
        max_upload_mb,
        lambda line: console.print(line, highlight=False, markup=False),
    )


@command(
    epilog=examples(
        "animalcnn dashboard",
        "animalcnn dashboard runs --port 8050",
        "animalcnn dashboard runs --host 0.0.0.0  # reachable from other machines",
    )
)
def dashboard(
    runs_dir: Annotated[
        Path, typer.Argument(metavar="RUNS_DIR", help="The folder of runs (default: runs).")
    ] = Path("runs"),
    host: HostOption = LOOPBACK,
    port: PortOption = 8050,
) -> None:
    """Compare the runs of a folder live in the browser: the runs table best first, every
    run's curves as they train, a page per run and per sweep, GET /api/runs. Read-only."""
    from animalcnn.console import console
    from animalcnn.errors import UserError
    from animalcnn.reporting.dashboard import dashboard as serve_dashboard

    if not runs_dir.is_dir():
        raise UserError(f"{runs_dir}: no such folder (animalcnn train CONFIG writes runs there)")
    serve_dashboard(
        runs_dir, host, port, lambda line: console.print(line, highlight=False, markup=False)
    )
