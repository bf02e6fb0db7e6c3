"""A sweep from its file to its written table and page, said as it goes: what `animalcnn
sweep` and the Python API's `animalcnn.sweep` both run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from animalcnn import backends
from animalcnn.console import console, print_error
from animalcnn.sweep.spec import SweepSpec, check_data_dirs, load_sweep

if TYPE_CHECKING:
    import optuna


@dataclass
class Finished:
    folder: Path  # the sweep's folder: its trials' run folders, sweep.csv, sweep.html
    written: list[Path]
    problems: list[str]  # why the sweep is not done (each said as an error line)


def run(
    file: Path,
    overrides: list[str] | None = None,
    runs_dir: Path = Path("runs"),
    storage: str | None = None,
    trials: int | None = None,
    new_study: bool = False,
    report_only: bool = False,
) -> Finished:
    """Run a sweep's trials until it is complete (with every process working on it), then
    write sweep.csv and sweep.html and print the trials' table and the best trial. With
    `report_only`, train nothing: report the study as it stands in its storage."""
    spec = load_sweep(file, overrides)
    if report_only:
        from animalcnn.sweep.storage import existing_study
        from animalcnn.sweep.trials import problems

        study = existing_study(spec, runs_dir / spec.name, storage)
        return _report(spec, study, runs_dir, problems(study, spec))
    check_data_dirs(spec, file)
    if trials is not None:
        spec.trials = trials
    backends.start(str(spec.set.get("training.backend", "auto")))
    from animalcnn.sweep.search import run_sweep

    result = run_sweep(spec, runs_dir, storage, new_study)
    return _report(spec, result.study, runs_dir, result.problems)


def _report(spec: SweepSpec, study: optuna.Study, runs_dir: Path, problems: list[str]) -> Finished:
    """Write sweep.csv and sweep.html in the sweep folder; print the trials and the best."""
    from animalcnn.reporting import sweep as report

    keys = list(spec.search_space())
    rows = report.trial_rows(study, spec)
    folder = runs_dir / spec.name
    written = [
        report.write_sweep_csv(rows, keys, folder / "sweep.csv"),
        report.write_sweep_html(study, spec, rows, folder / "sweep.html"),
    ]
    console.print(report.trials_table(rows, keys, spec.metric))
    best = report.best_line(study, spec)
    if best:
        console.print(best, highlight=False, markup=False)
    console.print(f"wrote {', '.join(str(p) for p in written)}", highlight=False, markup=False)
    for problem in problems:
        print_error(f"sweep {spec.name}: {problem}")
    return Finished(folder, written, problems)
