"""The Python API: what the CLI does, for a notebook or a script, over the same functions.

    import animalcnn
    run = animalcnn.train("configs/demo.yaml", **{"training.epochs": 3})
    run.history.tail(); run.evaluate(tta="flip"); run.plot()
    animalcnn.runs("runs", where="best_val_accuracy > 0.9", sort="-time_s")

Imports no TensorFlow until a call needs it; errors are the exceptions the CLI prints as
one line (`animalcnn.UserError` and its kinds), with the same text, and a run that stops
before completing raises `animalcnn.TrainingFailed` (its `.run` is the folder).
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from animalcnn.errors import RunFolderError

if TYPE_CHECKING:
    import keras
    import numpy as np
    import pandas as pd
    from matplotlib.figure import Figure

    from animalcnn.config import ExperimentConfig
    from animalcnn.run_folder import Evaluation, Metrics, RunFolder, TestResult


def load_config(
    config: str | Path | Mapping[str, Any] | ExperimentConfig,
    set: Mapping[str, Any] | None = None,
    runs_dir: str | Path | None = None,
    **overrides: Any,
) -> ExperimentConfig:
    """A config (a YAML file, a mapping or a loaded config) with overrides by dotted key,
    `set={"training.epochs": 5}` or `**{"training.epochs": 5}`, validated as `train`
    validates it: a bad value is the CLI's one-line `ConfigError`."""
    from animalcnn.config import ExperimentConfig
    from animalcnn.config.loading import apply_override, read_config
    from animalcnn.models.configs import validate_config

    if isinstance(config, ExperimentConfig):
        data, source = config.model_dump(mode="json"), "config"
    elif isinstance(config, Mapping):
        data, source = copy.deepcopy(dict(config)), "config"
    else:
        data, source = read_config(Path(config)), str(config)
    changes = {**(set or {}), **overrides}
    if runs_dir is not None:
        changes["output.runs_dir"] = str(runs_dir)
    for key, value in changes.items():
        apply_override(data, key.split("."), value, f"{key}={value!r}")
    return validate_config(data, source)


def train(
    config: str | Path | Mapping[str, Any] | ExperimentConfig,
    set: Mapping[str, Any] | None = None,
    runs_dir: str | Path | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    **overrides: Any,
) -> Run:
    """Train a config (as `load_config` takes it) into a new run folder, as `animalcnn
    train` does, with the same progress lines; the completed run, or TrainingFailed.
    `callbacks` (Keras callbacks) join every phase's `fit`."""
    from animalcnn.data.discovery import check_data_dir
    from animalcnn.run_folder import RunFolder
    from animalcnn.training.runner import train_config

    cfg = load_config(config, set, runs_dir, **overrides)
    check_data_dir(cfg.data, Path(config) if isinstance(config, str | Path) else "config")
    RunFolder.check_runs_dir(cfg.output.runs_dir)
    return Run(train_config(cfg, callbacks).path)


def resume(run: str | Path | Run) -> Run:
    """Continue a stopped run from its last completed epoch, as `train --resume` does."""
    from animalcnn.training.runner import resume_run

    return Run(resume_run(_open(run.path if isinstance(run, Run) else run)).path)


def sweep(
    path: str | Path,
    set: Mapping[str, Any] | None = None,
    runs_dir: str | Path = "runs",
    storage: str | None = None,
    trials: int | None = None,
    new_study: bool = False,
) -> Runs:
    """Run a sweep file's trials until it is complete, as `animalcnn sweep` does (with
    `set` as its `--set`, the same options, progress and files); its trials' runs, best
    first. Why it is not complete, if it is not, is said as the CLI says it."""
    from animalcnn.sweep import job
    from animalcnn.sweep.spec import override

    overrides = [override(k, v) for k, v in (set or {}).items()]
    done = job.run(Path(path), overrides, Path(runs_dir), storage, trials, new_study)
    return runs(done.folder)


def check_data(root: str | Path) -> pd.DataFrame:
    """What `animalcnn data check` reports of a dataset folder: one row per split and
    class (images, formats, smallest and largest size); its problems (broken, odd and
    leaked files), one line each, in `.attrs["problems"]`."""
    import pandas as pd

    from animalcnn.data.checks import check

    report = check(Path(root).expanduser())
    frame = pd.DataFrame(
        [
            {
                "split": c.split,
                "class": c.name,
                "images": c.images,
                "formats": ", ".join(sorted(c.formats)),
                "smallest": c.min_size,
                "largest": c.max_size,
            }
            for c in report.classes
        ]
    )
    frame.attrs["problems"] = [str(p) for p in report.problems]
    return frame


def _inline(figure: Figure) -> Figure:
    """`figure`, shown as a PNG where IPython displays it (a notebook cell's value), as
    pyplot's inline backend shows its own: it was drawn without pyplot, which registers
    that display only once pyplot is imported."""
    shell = sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None
    if shell is not None:
        from IPython.core.pylabtools import print_figure

        formatter = shell.display_formatter.formatters["image/png"]
        formatter.for_type(type(figure), lambda f: print_figure(f, "png", bbox_inches=None))
    return figure


def _open(path: str | Path) -> RunFolder:
    from animalcnn.run_folder import RunFolder

    return RunFolder.open(Path(path))


class Run:
    """One run folder, read when asked (a training run's epochs show as they come): its
    config, metrics, history and status; scored, used and drawn through the functions the
    CLI calls. In Jupyter it renders as its row of the runs table."""

    def __init__(self, path: str | Path) -> None:
        self.folder = _open(path)
        self.path, self.name = self.folder.path, self.folder.name

    @property
    def config(self) -> ExperimentConfig:
        return self.folder.config()

    @property
    def metrics(self) -> Metrics:
        """`metrics.json` as its typed record (checked, upgraded from older formats)."""
        return self.folder.metrics()

    @property
    def history(self) -> pd.DataFrame:
        """One row per epoch: `history.csv`, as a table."""
        return self.folder.history().frame()

    @property
    def status(self) -> str:
        """completed, running, stopped, interrupted, diverged or failed."""
        return self.folder.status()

    @property
    def test(self) -> TestResult:
        """The run's test figure: `scored` (with its evaluation), `stale` (scored on an
        earlier best epoch), `damaged` or `none`, as `compare` shows it."""
        return self.folder.test_result()

    @cached_property
    def model(self) -> keras.Model:
        """The best checkpoint, loaded once: the loader every command uses."""
        from animalcnn import backends

        backends.start()
        return self.folder.best_model()

    def evaluate(
        self,
        tta: str = "none",
        data: str | Path | None = None,
        errors: int | None = None,
        explain: bool = False,
    ) -> Evaluation:
        """Score the best checkpoint on the run's test split (or `data`), as `animalcnn
        evaluate` does, writing the same files; the record that `evaluation.json` holds."""
        from animalcnn import backends

        backends.start()
        from animalcnn.evaluation.evaluate import DEFAULT_ERRORS
        from animalcnn.evaluation.evaluate import evaluate as evaluate_run

        folder = None if data is None else Path(data)
        chosen = DEFAULT_ERRORS if errors is None else errors
        return evaluate_run(self.folder, folder, chosen, explain, tta).evaluation  # type: ignore[arg-type]

    def predict(
        self, images: str | Path | list[str | Path] | np.ndarray, tta: str = "none"
    ) -> pd.DataFrame:
        """Label images, as `animalcnn predict --csv` does: files and folders, or pixels
        (uint8, an image (height, width[, channels]) or a batch of them, resized as a file
        is); one row per image (file, predicted, confidence, p_<class>..., error)."""
        import numpy as np

        from animalcnn import backends

        backends.start()
        from animalcnn.evaluation.predict import predict

        if isinstance(images, np.ndarray):
            return predict(self.folder, images, tta)  # type: ignore[arg-type]
        listed = images if isinstance(images, list) else [images]
        return predict(self.folder, [Path(p) for p in listed], tta)  # type: ignore[arg-type]

    def explain(
        self,
        paths: str | Path | list[str | Path],
        class_name: str | None = None,
        out: str | Path | None = None,
    ) -> pd.DataFrame:
        """Grad-CAM figures of image files and folders, as `animalcnn explain` writes them
        (into the run's `explain/`, or `out`); one row per image, its figure in `output`."""
        from animalcnn import backends

        backends.start()
        from animalcnn.evaluation.explain import explain

        listed = paths if isinstance(paths, list) else [paths]
        folder = None if out is None else Path(out)
        return explain(self.folder, [Path(p) for p in listed], folder, class_name)

    def plot(self) -> Figure:
        """The training curves (`history.png`'s figure), drawn now, as a matplotlib Figure."""
        from animalcnn.figures.charts import draw, history_chart

        return _inline(draw(history_chart(self.history, self.name)))

    def __repr__(self) -> str:
        """One line: the run's row of the runs table (status, epochs, accuracies)."""
        from animalcnn.reporting.runs_table.rows import run_row

        row = run_row(self.path)
        parts = [row["status"], f"{row['epochs'] or 0} epochs"]
        for key, title in (
            ("best_val_accuracy", "best val accuracy"),
            ("test_accuracy", "test accuracy"),
        ):
            if row[key] is not None:
                parts.append(f"{title} {row[key]:.2%}")
        return f"<Run {self.name}: {', '.join(parts)}>"

    def _repr_html_(self) -> str:
        return runs([self.path])._repr_html_()


class Runs:
    """Runs side by side, as `compare` shows them: `frame` has the CSV's columns in its
    order (rows best first, or in the sort's order) and a `best` column; in Jupyter it
    renders as the report's table."""

    def __init__(self, rows: list[dict[str, Any]], folders: list[Path], where: str = "") -> None:
        self.rows, self.folders, self.where = rows, folders, where

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def frame(self) -> pd.DataFrame:
        import pandas as pd

        from animalcnn.reporting.runs_table.render import csv_rows

        columns, records = csv_rows(self.rows)
        frame = pd.DataFrame(records, columns=columns)
        frame.insert(1, "best", [r["best"] for r in self.rows])
        return frame

    def plot(self) -> Figure | None:
        """Every run's validation curves on one chart (the dashboard's), as a matplotlib
        Figure; None before any run has an epoch."""
        from animalcnn.figures.charts import draw
        from animalcnn.reporting.dashboard import runs_curves

        chart = runs_curves(self.rows, self.folders)
        return None if chart is None else _inline(draw(chart))

    def figures(self) -> dict[str, Figure]:
        """The report's comparison figures (accuracy against parameters, the train-val
        gap, test accuracy), by name, as matplotlib Figures."""
        import pandas as pd

        from animalcnn.figures.charts import comparison_charts, draw

        charts = comparison_charts(pd.DataFrame(self.rows))
        return {name: _inline(draw(chart)) for name, chart in charts.items()}

    def __repr__(self) -> str:
        best = next((r for r in self.rows if r["best"]), None)
        where = f" where {self.where}" if self.where else ""
        if best is None:
            return f"<Runs: {len(self)} runs{where}>"
        key = "test_accuracy" if best["test_accuracy"] is not None else "best_val_accuracy"
        return f"<Runs: {len(self)} runs{where}; best {best['run']}, {key} {best[key]:.2%}>"

    def _repr_html_(self) -> str:
        from animalcnn.reporting.html import runs_table
        from animalcnn.reporting.pages import render

        table = runs_table(self.rows, [""] * len(self.rows))
        return render("runs_table_inline.html", table=table)


def runs(
    folder: str | Path | list[str | Path] = "runs",
    where: str | list[str] | None = None,
    sort: str | None = None,
) -> Runs:
    """The runs under `folder` (a runs dir, a sweep's folder, run folders) that meet
    `where`, best first or in `sort`'s order: `compare`'s query language and rows."""
    from animalcnn.reporting.runs_table import read_runs
    from animalcnn.reporting.runs_table.find import expand_runs
    from animalcnn.reporting.runs_table.ranking import parse_query

    paths = [Path(p) for p in (folder if isinstance(folder, list) else [folder])]
    query, order = parse_query(where, sort)
    children = [c for p in paths for c in (sorted(p.iterdir()) if _is_runs_dir(p) else [p])]
    folders, _ = expand_runs(children) if children else ([], [])
    found = read_runs(folders, query, order)
    return Runs(found.rows, found.folders, str(query))


def _is_runs_dir(path: Path) -> bool:
    """A folder of run folders (not itself a run, nor a sweep's folder expand_runs reads)."""
    from animalcnn.reporting.runs_table.find import SWEEP_FILES
    from animalcnn.run_folder import METRICS

    if not path.is_dir():
        if not path.exists():
            raise RunFolderError(f"{path}: no such folder")
        return False
    return not (path / METRICS).exists() and not any((path / f).exists() for f in SWEEP_FILES)
