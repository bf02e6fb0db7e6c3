"""`animalcnn data ...`: check a dataset folder, write the synthetic demo set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from animalcnn.cli.app import command, data_app, examples


@command(data_app, name="synth", epilog=examples("animalcnn data synth data/demo"))
def data_synth(
    root: Annotated[Path, typer.Argument(metavar="DIR", help="Folder to create.")],
    per_class: Annotated[
        int, typer.Option(metavar="N", min=2, help="Training images per class.")
    ] = 60,
    test_per_class: Annotated[
        int, typer.Option(metavar="N", min=1, help="Test images per class.")
    ] = 20,
    size: Annotated[int, typer.Option(metavar="N", min=16, help="Image side in pixels.")] = 64,
    seed: Annotated[int, typer.Option(metavar="N", min=0, help="Seeds the drawing.")] = 0,
) -> None:
    """Write a small synthetic 5-class dataset in the Animals layout (train/, val/, inf/)."""
    from animalcnn.console import console
    from animalcnn.data.synthetic import make_dataset
    from animalcnn.errors import DataError

    if (root / "train").exists():
        raise DataError(f"{root}: already holds a train/ folder; choose a new folder")
    make_dataset(root, per_class, test_per_class, size=size, seed=seed)
    console.print(f"wrote {root}: train/, val/ and inf/ with 5 classes", markup=False)


@command(data_app, name="check", epilog=examples("animalcnn data check data/animals"))
def data_check(
    root: Annotated[
        Path, typer.Argument(metavar="DIR", help="Dataset folder (holding train/, val/, ...).")
    ],
) -> None:
    """Count images per split and class; list every file that is broken or suspicious.

    Exits 1 when a file would be left out of training (it does not decode)."""
    if _check(root.expanduser()):
        raise typer.Exit(1)


def _check(root: Path) -> int:
    """Print `data check`'s table, layout and problems; the number of errors."""
    from animalcnn.config import DataConfig
    from animalcnn.console import console, err_console
    from animalcnn.data.checks import check
    from animalcnn.data.discovery import layout
    from animalcnn.reporting.tables import check_table

    report = check(root)
    console.print(check_table(report))
    console.print(f"layout: {layout(DataConfig(dir=root))}", markup=False)
    for problem in report.problems:
        err_console.print(
            str(problem), style="red" if problem.error else "yellow", highlight=False, markup=False
        )
    errors, warnings = len(report.errors), len(report.problems) - len(report.errors)
    summary = f"{_count(errors, 'error')} and {_count(warnings, 'warning')}."
    console.print(
        summary[0].upper() + summary[1:] + ("" if errors else " The dataset can be trained on.")
    )
    return errors


@command(
    data_app,
    name="download",
    epilog=examples("animalcnn data download", "animalcnn data download owner/name --to data/x"),
)
def data_download(
    dataset: Annotated[
        str, typer.Argument(metavar="DATASET", help="A Kaggle dataset, owner/name.")
    ] = "antobenedetti/animals",
    to: Annotated[
        Path, typer.Option(metavar="DIR", help="Where it goes (the configs' default data.dir).")
    ] = Path("data/animals"),
) -> None:
    """Download a Kaggle dataset (kagglehub), then check it like `data check`."""
    from animalcnn.console import console
    from animalcnn.data.download import download

    root = download(dataset, to)
    console.print(f"downloaded {dataset} into {root}", highlight=False, markup=False)
    if _check(root):
        raise typer.Exit(1)


def _count(n: int, noun: str) -> str:
    return f"{'no' if n == 0 else n} {noun}{'' if n == 1 else 's'}"
