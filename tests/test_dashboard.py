"""`animalcnn dashboard`: the runs table as JSON and pages, read-only and loopback, and a
training run's epochs growing on the page while it trains."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from .conftest import write_config


@pytest.fixture
def start_dashboard():
    """Start the dashboard app over a folder in this process on a free port; returns its
    URL."""
    import uvicorn

    from animalcnn.reporting.dashboard import create_app
    from animalcnn.server import listen

    servers = []

    def start(runs_dir: Path, refresh: float = 3) -> str:
        server = uvicorn.Server(uvicorn.Config(create_app(runs_dir, refresh), log_level="warning"))
        sock = listen("127.0.0.1", 0)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        servers.append((server, thread))
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.05)
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def runs_dir(trained_run: Path, tmp_path_factory) -> Path:
    """Two runs that differ in their learning rate, and a sweep folder with a page."""
    import yaml

    folder = tmp_path_factory.mktemp("dash") / "runs"
    first = Path(shutil.copytree(trained_run, folder / trained_run.name))
    second = Path(shutil.copytree(trained_run, folder / "other-run"))
    config = yaml.safe_load((second / "config.yaml").read_text())
    config["training"]["learning_rate"] = 0.5
    (second / "config.yaml").write_text(yaml.safe_dump(config))
    metrics = json.loads((second / "metrics.json").read_text())
    (second / "metrics.json").write_text(json.dumps({**metrics, "tags": ["high"]}))
    sweep = folder / "lr-sweep"
    sweep.mkdir()
    (sweep / "sweep.csv").write_text("trial,state,value\n")
    (sweep / "sweep.html").write_text(
        '<html><script src="animalcnn-assets/plotly-1.min.js"></script>sweep page</html>'
    )
    assert first.is_dir()
    return folder


def test_api_runs_is_the_table_as_json(start_dashboard, runs_dir: Path):
    url = start_dashboard(runs_dir)
    runs = requests.get(f"{url}/api/runs", timeout=30).json()
    assert {r["run"] for r in runs} == {p.name for p in runs_dir.iterdir()} - {"lr-sweep"}
    for r in runs:
        assert {
            "run",
            "status",
            "epochs",
            "best_val_accuracy",
            "test_accuracy",
            "flags",
            "tags",
            "training.learning_rate",
        } <= set(r)
        assert r["status"] == "completed" and r["epochs"] == 2
        assert "not evaluated" in [f["name"] for f in r["flags"]]
    rates = {r["run"]: r["training.learning_rate"] for r in runs}
    assert rates["other-run"] == 0.5 and sum(r["best"] for r in runs) == 1
    assert [r["tags"] for r in runs if r["run"] == "other-run"] == [["high"]]


def test_api_runs_takes_a_query_and_impossible_runs_are_404(start_dashboard, runs_dir: Path):
    url = start_dashboard(runs_dir)

    def names(**query: str) -> list[str]:
        answer = requests.get(f"{url}/api/runs", params=query, timeout=30)
        assert answer.ok, answer.text
        return [r["run"] for r in answer.json()]

    assert names(where="training.learning_rate > 0.1") == ["other-run"]
    assert names(where="tag = high and status = completed") == ["other-run"]
    assert names(where="training.learning_rate in [7, 8]") == []
    everything = names(sort="-training.learning_rate")
    assert everything[0] == "other-run" and len(everything) == 2
    assert names(sort="training.learning_rate")[-1] == "other-run"
    bad = requests.get(f"{url}/api/runs", params={"where": "epochs >> 2"}, timeout=30)
    detail = bad.json()["detail"]
    assert bad.status_code == 400 and "\n" not in detail
    assert detail.startswith("--where 'epochs >> 2': at character 9") and "keys: run," in detail
    assert requests.get(f"{url}/api/runs", params={"sort": "-speed"}, timeout=30).status_code == 400
    for impossible in ("x" * 5000, "a%00b", "x" * 300 + "/" + "y" * 300):
        answer = requests.get(f"{url}/runs/{impossible}", timeout=30)
        assert answer.status_code == 404, impossible[:20]
        assert answer.json()["detail"].startswith("no such run: "), impossible[:20]
    missing = requests.get(f"{url}/runs/nope", timeout=30).json()["detail"]
    assert missing == "no such run: nope"


def names_in(page) -> list[str]:
    """The runs a page's table shows, in its order (the first word of each first cell)."""
    cells = page.locator("table.runs tbody tr td:first-child").all_inner_texts()
    return [text.split()[0] for text in cells]


def test_the_query_box_filters_the_table_and_keeps_the_query_in_the_url(
    start_dashboard, browser, runs_dir: Path
):
    url = start_dashboard(runs_dir, refresh=0.5)
    page = browser.new_page()
    page.goto(url)
    everything = names_in(page)
    assert len(everything) == 2 and "other-run" in everything
    page.fill("#where", "training.learning_rate > 0.1")
    page.fill("#sort", "-best_val_accuracy")
    page.click("form.query button[type=submit]")
    page.wait_for_url("**where=*")
    shared = page.url
    assert "sort=-best_val_accuracy" in shared
    api = requests.get(shared.replace(url + "/", url + "/api/runs"), timeout=30).json()
    assert [r["run"] for r in api] == ["other-run"]

    def shown() -> list[str]:
        return names_in(page)

    assert shown() == ["other-run"]
    time.sleep(1.2)  # two refreshes: they keep the query
    assert shown() == ["other-run"] and page.input_value("#where") == "training.learning_rate > 0.1"
    other = browser.new_page()  # the address shared: the same view
    other.goto(shared)
    assert names_in(other) == shown()
    page.fill("#where", "epochs >> 2")
    page.click("form.query button[type=submit]")
    page.wait_for_selector("#query-error:not([hidden])")
    assert "at character 9" in page.inner_text("#query-error")
    page.close()
    other.close()


def test_pages_read_runs_and_nothing_else(start_dashboard, runs_dir: Path):
    url = start_dashboard(runs_dir)
    before = sorted(str(p) for p in runs_dir.rglob("*"))
    page = requests.get(url, timeout=30).text
    assert "training.learning_rate" in page and 'href="runs/other-run"' in page
    assert 'href="sweeps/lr-sweep/"' in page
    run = requests.get(f"{url}/runs/other-run", timeout=30)
    assert run.ok and "other-run: training curves" in run.text and "learning_rate: 0.5" in run.text
    png = requests.get(f"{url}/runs/other-run/files/history.png", timeout=30)
    assert png.ok and png.content[:4] == b"\x89PNG"
    assert requests.get(f"{url}/runs/other-run/files/config.yaml", timeout=30).status_code == 404
    for bad in ("/runs/..%2F..%2Fetc", "/runs/nope", "/sweeps/nope/", "/assets/x.js"):
        assert requests.get(url + bad, timeout=30).status_code == 404, bad
    trial = Path(shutil.copytree(runs_dir / "other-run", runs_dir / "lr-sweep" / "t0"))
    shown = requests.get(f"{url}/sweeps/lr-sweep/t0/", timeout=30)  # as the sweep page links
    assert shown.ok and shown.url.endswith("/runs/lr-sweep/t0") and "t0" in shown.text
    shutil.rmtree(trial)
    sweep = requests.get(f"{url}/sweeps/lr-sweep/", timeout=30)
    assert sweep.ok and "sweep page" in sweep.text
    script = requests.get(f"{url}/sweeps/lr-sweep/animalcnn-assets/plotly-1.min.js", timeout=30)
    assert script.ok and "Plotly" in script.text[:5000]
    assert sorted(str(p) for p in runs_dir.rglob("*")) == before  # read-only


def test_dashboard_command_needs_no_tensorflow_and_a_real_folder(cli, tmp_path: Path):
    code, _, err = cli("dashboard", tmp_path / "missing")
    assert code == 2 and "missing: no such folder" in err
    probe = (
        "import sys; from animalcnn.reporting.dashboard import create_app, view; "
        f"create_app(__import__('pathlib').Path({str(tmp_path)!r})); "
        f"view(__import__('pathlib').Path({str(tmp_path)!r})); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", probe], check=True)


@pytest.mark.slow
def test_a_training_runs_epochs_grow_on_the_page(
    start_dashboard, browser, dataset: Path, tmp_path: Path
):
    runs = tmp_path / "runs"
    runs.mkdir()
    config = write_config(
        tmp_path / "live.yaml",
        dataset,
        runs,
        training={"epochs": 40, "val_patience": 100, "lr_patience": 100},
    )
    url = start_dashboard(runs, refresh=0.5)
    page = browser.new_page()
    page.goto(url)
    assert "No runs yet" in page.content()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    training = subprocess.Popen(
        [sys.executable, "-m", "animalcnn", "train", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        page.check("input.all-columns", timeout=120_000)  # the table appeared: show "epochs"

        def epochs() -> int:
            header = page.locator("table.runs th").all_inner_texts()
            cell = page.locator("table.runs tbody tr td").nth(header.index("epochs"))
            return int(cell.inner_text()) if cell.inner_text().isdigit() else 0

        seen = []
        deadline = time.time() + 120
        while time.time() < deadline and training.poll() is None:
            if page.locator("table.runs td", has_text="running").count():
                seen.append(epochs())
            time.sleep(0.3)
        assert training.wait(timeout=120) == 0, training.stderr.read().decode()[-2000:]
        page.wait_for_selector("table.runs td:has-text('completed')", timeout=30_000)
    finally:
        if training.poll() is None:
            training.kill()
    assert len({e for e in seen if e > 0}) >= 2, seen  # the count grew while it ran
    assert page.locator("#curves .scatterlayer .trace").count() >= 1  # its curve is drawn
    page.close()
