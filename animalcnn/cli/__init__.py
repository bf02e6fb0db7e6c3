"""The `animalcnn` command: a thin layer that parses arguments and calls the packages."""

from animalcnn.cli import datasets, experiments, runs, sweeps  # noqa: F401 (they register)
from animalcnn.cli.app import app


def main() -> None:
    app(prog_name="animalcnn")


__all__ = ["app", "main"]
