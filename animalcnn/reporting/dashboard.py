"""`animalcnn dashboard`: the runs of a folder compared live in the browser.

The same runs table and charts as the report (`reporting.html`), read again from the
run folders on every request, so a run's epochs appear as it trains and a finished
run's flags as soon as they are known. The page refreshes itself every few seconds.

- `GET /?where=...&sort=...`: the runs table (best first, differing settings as columns;
  the query box keeps `compare`'s `--where` and `--sort` in the page's address), every
  run's validation curves on one chart, the sweeps;
- `GET /runs/{run}`: one run (its curves, confusion matrix, per-class scores, mistakes
  gallery, config); `GET /runs/{run}/files/{png}`: its figures;
- `GET /sweeps/{sweep}/`: a sweep's page (`sweep.html`), which loads plotly.js from
  `/sweeps/{sweep}/animalcnn-assets/`;
- `GET /api/runs?where=...&sort=...`: the table as JSON; `GET /api/view`: what the page
  redraws. A bad query is a 400 with compare's one-line error.

Read-only (nothing is written to the runs folder), offline (plotly.js is served from the
installed package), loopback unless told otherwise. No TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from animalcnn.errors import RunFolderError, UserError
from animalcnn.figures.charts import Chart, curves_chart, to_plotly
from animalcnn.reporting.html import run_section, run_view, runs_table
from animalcnn.reporting.pages import ASSETS, render
from animalcnn.reporting.query import Query, SortKey
from animalcnn.reporting.runs_table import read_runs
from animalcnn.reporting.runs_table.find import SWEEP_FILES, expand_runs
from animalcnn.reporting.runs_table.ranking import parse_query
from animalcnn.reporting.runs_table.rows import differing, value_of
from animalcnn.run_folder import METRICS, RunFolder, significant

REFRESH_SECONDS = 3
FIGURES = ("history.png", "confusion.png", "errors.png", "lr_find.png")  # served per run
SHOWN_AS_PNG = ("errors.png", "lr_find.png")  # on a run's page (the others are interactive)
SWEEP_PAGE = "sweep.html"


def _runs(
    runs_dir: Path, where: Query | None = None, sort: list[SortKey] | None = None
) -> tuple[list[dict[str, Any]], list[Path]]:
    """Every run under `runs_dir` (a sweep's trials included) that meets `where`, best
    first or in `sort`'s order."""
    if not runs_dir.is_dir():
        return [], []
    children = sorted(p for p in runs_dir.iterdir() if p.is_dir())
    folders, _ = expand_runs(children) if children else ([], [])
    folders = [f for f in folders if (f / METRICS).is_file()]
    found = read_runs(folders, where, sort)
    return found.rows, found.folders


def _sweeps(runs_dir: Path) -> list[str]:
    if not runs_dir.is_dir():
        return []
    return sorted(
        p.name
        for p in runs_dir.iterdir()
        if p.is_dir() and any((p / f).exists() for f in SWEEP_FILES)
    )


def _address(runs_dir: Path, folder: Path) -> str:
    """A run folder's name in the dashboard's addresses: its path under `runs_dir`."""
    return folder.relative_to(runs_dir).as_posix()


def api_rows(rows: list[dict[str, Any]], folders: list[Path], runs_dir: Path) -> list[dict]:
    """`GET /api/runs`: one object per run, best first, with the settings that differ."""
    keys = differing(rows)
    return [
        {
            "run": _address(runs_dir, folder),
            "name": r["name"],
            "status": r["status"],
            "epochs": r["epochs"],
            "best_val_accuracy": significant(r["best_val_accuracy"]),
            "test_accuracy": significant(r["test_accuracy"]),
            "best": r["best"],
            "flags": [{"name": f.name, "reason": f.reason} for f in r["flags"] or []],
            "tags": (r["tags"] or "").split(", ") if r["tags"] else [],
            **{k: value_of(r, k) for k in keys},
        }
        for r, folder in zip(rows, folders, strict=True)
    ]


def runs_curves(rows: list[dict[str, Any]], folders: list[Path]) -> Chart | None:
    """The runs' validation curves on one chart (None before any epoch); a damaged run is
    left out (the table says so)."""
    histories, classes = {}, 0
    for r, folder in zip(rows, folders, strict=True):
        run = RunFolder(folder)
        try:
            histories[r["label"]] = run.history().frame()
            classes = max(classes, len(run.metrics().classes))
        except RunFolderError:
            continue
    return curves_chart(histories, classes)


def view(runs_dir: Path, where: str = "", sort: str = "") -> dict[str, Any]:
    """What the main page draws for a query: the table's HTML, the curves chart (plotly
    JSON, or None without an epoch), the sweeps, a count, and the query's error if it
    has one (no rows then)."""
    try:
        rows, folders = _runs(runs_dir, *parse_query(where, sort))
        error = None
    except UserError as exc:
        rows, folders, error = [], [], str(exc)
    links = [f"runs/{_address(runs_dir, f)}" for f in folders]
    sorted_by = bool(sort.strip())
    table = render("runs_table.html", table=runs_table(rows, links, sorted_by)) if rows else ""
    chart = runs_curves(rows, folders)
    return {
        "table": table,
        "curves": None if chart is None else to_plotly(chart).to_json(),
        "sweeps": _sweeps(runs_dir),
        "runs": len(rows),
        "error": error,
    }


def _folder_of(runs_dir: Path, run: str) -> Path:
    """A run folder under runs_dir named by its address, or 404 (nothing outside it; a
    name the file system cannot hold, too long or with a NUL, is no run either)."""
    from fastapi import HTTPException

    parts = run.split("/")
    missing = HTTPException(404, f"no such run: {run}")
    if not 1 <= len(parts) <= 2 or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        raise missing
    folder = runs_dir.joinpath(*parts)
    try:
        found = (folder / METRICS).is_file()
    except (OSError, ValueError):  # ENAMETOOLONG, an embedded NUL
        found = False
    if not found:
        raise missing
    return folder


def _query(where: str, sort: str) -> tuple[Query, list[SortKey]]:
    """A page's query, or 400 with the one-line error."""
    from fastapi import HTTPException

    try:
        return parse_query(where, sort)
    except UserError as exc:
        raise HTTPException(400, str(exc)) from None


def _run_page(runs_dir: Path, run: str, refresh: float, plotly_src: str) -> str:
    """A run's page: its row, curves, evaluation, figures and config (404 if damaged)."""
    from fastapi import HTTPException

    folder = _folder_of(runs_dir, run)
    rows, folders = _runs(runs_dir)
    row = next((r for r, f in zip(rows, folders, strict=True) if f == folder), None)
    if row is None or str(row["status"]).startswith("damaged"):
        raise HTTPException(404, f"{run}: {row['status'] if row else 'not readable'}")
    section = run_section(row, folder, examples=False)
    config = (folder / "config.yaml").read_text(encoding="utf-8", errors="replace")
    return render(
        "dashboard_run.html",
        run=run,
        s=run_view(section, 0),
        row=row,
        config=config,
        figures=[n for n in SHOWN_AS_PNG if (folder / n).is_file()],
        refresh=refresh if row["status"] == "running" else None,
        plotly_src=plotly_src,
    )


def _sweep_routes(app: Any, runs_dir: Path) -> None:
    """A sweep's page as its sweep wrote it, and its trials' links."""
    from fastapi import HTTPException
    from fastapi.responses import HTMLResponse, RedirectResponse

    @app.get("/sweeps/{sweep}/", response_class=HTMLResponse)
    def sweep_page(sweep: str) -> str:
        if sweep not in _sweeps(runs_dir) or not (runs_dir / sweep / SWEEP_PAGE).is_file():
            raise HTTPException(404, f"no sweep page for {sweep!r} (yet)")
        return (runs_dir / sweep / SWEEP_PAGE).read_text(encoding="utf-8")

    @app.get("/sweeps/{sweep}/{run}/")
    def sweep_trial(sweep: str, run: str) -> RedirectResponse:
        """A trial's run as the sweep page links it (a folder beside the page)."""
        _folder_of(runs_dir, f"{sweep}/{run}")
        return RedirectResponse(f"/runs/{sweep}/{run}")


def create_app(runs_dir: Path, refresh: float = REFRESH_SECONDS) -> Any:
    """The dashboard's FastAPI app over `runs_dir`; its pages refresh every `refresh` s."""
    import plotly
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
    from plotly.offline import get_plotlyjs

    app = FastAPI(title="animalcnn dashboard", docs_url=None, redoc_url=None)
    script = get_plotlyjs()
    plotly_name = f"plotly-{plotly.__version__}.min.js"

    @app.get("/", response_class=HTMLResponse)
    def page(where: str = "", sort: str = "") -> str:
        shown = view(runs_dir, where, sort)
        return render(
            "dashboard.html",
            runs_dir=str(runs_dir),
            view=shown,
            where=where,
            sort=sort,
            refresh=refresh,
            plotly_src=f"assets/{plotly_name}",
        )

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)  # none: but a browser asks

    @app.get("/api/view")
    def api_view(where: str = "", sort: str = "") -> JSONResponse:
        return JSONResponse(view(runs_dir, where, sort))

    @app.get("/api/runs")
    def api_runs(where: str = "", sort: str = "") -> JSONResponse:
        rows, folders = _runs(runs_dir, *_query(where, sort))
        return JSONResponse(api_rows(rows, folders, runs_dir))

    @app.get("/assets/{name}")
    @app.get("/sweeps/{sweep}/" + ASSETS + "/{name}")
    def asset(name: str, sweep: str = "") -> Response:
        if not name.startswith("plotly-") or not name.endswith(".min.js"):
            raise HTTPException(404, "no such file")
        return Response(script, media_type="text/javascript")

    @app.get("/runs/{run:path}/files/{name}")
    def figure(run: str, name: str) -> FileResponse:
        path = _folder_of(runs_dir, run) / name
        if name not in FIGURES or not path.is_file():
            raise HTTPException(404, "no such figure")
        return FileResponse(path, media_type="image/png")

    @app.get("/runs/{run:path}", response_class=HTMLResponse)
    def run_page(run: str) -> str:
        return _run_page(runs_dir, run, refresh, f"/assets/{plotly_name}")

    _sweep_routes(app, runs_dir)
    return app


def dashboard(runs_dir: Path, host: str, port: int, say: Any) -> None:
    """Serve the dashboard until interrupted."""
    from animalcnn.server import run_app

    run_app(create_app(runs_dir), host, port, f"the runs in {runs_dir}", say)
