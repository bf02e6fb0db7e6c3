"""Finding runs: the run folders that paths name (a sweep's folder or a runs dir as the
runs in it)."""

from __future__ import annotations

from pathlib import Path

from animalcnn.errors import RunFolderError
from animalcnn.reporting.pages import ASSETS

SWEEP_FILES = ("sweep.journal", "sweep.csv")  # what marks a sweep's folder


def expand_runs(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """Run folders as given; a folder of runs (a sweep's, a runs dir) as the runs in it.
    Returns them with a note for each path left out: a sweep folder with no run yet
    (every trial failed before training), a folder with no run at all (a new runs dir),
    a path that does not exist (a typo); one line when that leaves nothing. The pages'
    `animalcnn-assets/` folder is not a run."""
    from animalcnn.run_folder import CONFIG, METRICS

    found: list[Path] = []
    notes: list[str] = []
    for path in paths:
        if path.name == ASSETS and not (path / METRICS).exists():
            continue  # what our pages load (a report or sweep page written there), not a run
        if not path.exists():
            notes.append(f"{path}: no such folder")
            continue
        inner = (
            sorted(p for p in path.iterdir() if (p / METRICS).is_file())
            if (path.is_dir() and not (path / METRICS).exists())
            else []
        )
        if not inner and any((path / f).exists() for f in SWEEP_FILES):
            notes.append(
                f"{path}: a sweep with no trial run folders (every trial failed "
                "before training; sweep.csv says why)"
            )
            continue
        if not inner and path.is_dir() and not any((path / f).exists() for f in (CONFIG, METRICS)):
            notes.append(f"{path}: no run folders in it (animalcnn train CONFIG writes them)")
            continue
        found += inner or [path]
    if not found and notes:
        raise RunFolderError(notes[0])
    return found, notes
