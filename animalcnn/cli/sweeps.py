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
        "animalcnn sweep lr.yaml --storage postgresql://user:pw@db/sweeps --report-only",
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
    ] = None,
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
    report_only: Annotated[
        bool,
        typer.Option(
            "--report-only",
            help="Train nothing: write sweep.csv and sweep.html and print the trials from the "
            "study as it stands (the journal, or --storage URL: from any machine).",
        ),
    ] = False,
    schema: Annotated[
        bool, typer.Option("--schema", help="Print the JSON Schema of sweep files instead.")
    ] = False,
) -> None:
    """Run a sweep's trials until it is complete; run it again (or on more machines) to
    continue it (points left without a value are retried). Writes sweep.csv and sweep.html
    in the sweep folder; exits 1 when a grid point has no value or no trial completed."""
    from animalcnn.errors import UserError

    if schema:
        from animalcnn.schemas import dumps, sweep_schema

        print(dumps(sweep_schema()), end="")
        return
    if file is None:
        raise UserError("sweep: give a sweep file, or --schema")
    from animalcnn.sweep import job

    if job.run(file, overrides, runs_dir, storage, trials, new_study, report_only).problems:
        raise typer.Exit(1)
