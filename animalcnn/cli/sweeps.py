"""`animalcnn sweep`: many experiments from one file, on Optuna."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from animalcnn.cli.app import Overrides, command, examples


@command(
    epilog=examples(
        "animalcnn sweep configs/sweeps/demo.yaml",
        "animalcnn sweep configs/sweeps/seed.yaml --set training.epochs=5",
        "animalcnn sweep lr.yaml --storage postgresql://user:pw@db/sweeps  # on every machine",
        "animalcnn sweep --schema > sweep.schema.json  # for an editor's YAML support",
    )
)
def sweep(
    file: Annotated[
        Path | None, typer.Argument(metavar="SWEEP", help="A sweep file (YAML).")
    ] = None,
    overrides: Overrides = None,
    runs_dir: Annotated[
        Path, typer.Option(metavar="DIR", help="Where the sweep's folder goes.")
    ] = Path("runs"),
    storage: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Optuna storage shared by machines (default: a journal file in the sweep folder).",
        ),
    ] = None,  # fmt: skip
    trials: Annotated[
        int | None,
        typer.Option(metavar="N", min=1, help="random/tpe: trials in all (default: the file's)."),
    ] = None,
    new_study: Annotated[
        bool,
        typer.Option(
            "--new-study",
            help="Start the sweep's study again (its settings changed); old runs are kept.",
        ),
    ] = False,
    schema: Annotated[
        bool, typer.Option("--schema", help="Print the JSON Schema of sweep files instead.")
    ] = False,
) -> None:
    """Run a sweep's trials until it is complete; run it again (or on more machines) to
    continue it (points left without a value are retried). Writes sweep.csv and sweep.html
    in the sweep folder; exits 1 when a grid point has no value or no trial completed."""
    from animalcnn import backends
    from animalcnn.console import console, print_error
    from animalcnn.errors import UserError
    from animalcnn.sweep.spec import check_data_dirs, load_sweep

    if schema:
        from animalcnn.schemas import dumps, sweep_schema

        print(dumps(sweep_schema()), end="")
        return
    if file is None:
        raise UserError("sweep: give a sweep file, or --schema")

    spec = load_sweep(file, overrides)
    check_data_dirs(spec, file)
    if trials is not None:
        spec.trials = trials
    backends.start(str(spec.set.get("training.backend", "auto")))
    from animalcnn.reporting import sweep as report
    from animalcnn.sweep.search import run_sweep

    result = run_sweep(spec, runs_dir, storage, new_study)
    study = result.study
    keys = list(spec.search_space())
    rows = report.trial_rows(study, spec)
    folder = runs_dir / spec.name
    written = [report.write_sweep_csv(rows, keys, folder / "sweep.csv"),
               report.write_sweep_html(study, spec, rows, folder / "sweep.html")]  # fmt: skip
    console.print(report.trials_table(rows, keys, spec.metric))
    best = report.best_line(study, spec)
    if best:
        console.print(best, highlight=False, markup=False)
    console.print(f"wrote {', '.join(str(p) for p in written)}", highlight=False, markup=False)
    for problem in result.problems:
        print_error(f"sweep {spec.name}: {problem}")
    if result.problems:
        raise typer.Exit(1)
