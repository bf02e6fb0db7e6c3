"""`animalcnn serve`: real HTTP requests to a server on a free local port, and its page in
a real headless browser."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from PIL import Image


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(trained_run: Path):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "animalcnn", "serve", str(trained_run), "--port", str(port),
         "--max-upload-mb", "0.05"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/health", timeout=1).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.2)
        if proc.poll() is not None:
            pytest.fail(proc.stdout.read())
    yield url
    proc.terminate()
    log = proc.communicate(timeout=30)[0]
    assert "POST /predict HTTP/1.1" in log  # one line per request


def _upload(url: str, *paths: Path) -> requests.Response:
    files = [("file", (p.name, p.read_bytes())) for p in paths]
    return requests.post(f"{url}/predict", files=files, timeout=60)


def test_health_and_predictions_match_the_predict_command(cli, server, trained_run, dataset,
                                                           tmp_path):  # fmt: skip
    health = requests.get(f"{server}/health", timeout=10).json()
    assert health == {"status": "ok", "run": str(trained_run),
                      "classes": ["circle", "cross", "square", "stripes", "triangle"]}  # fmt: skip
    images = sorted((dataset / "inf").iterdir())[:3]
    answer = _upload(server, *images)
    assert answer.status_code == 200
    predictions = answer.json()["predictions"]
    assert [p["file"] for p in predictions] == [p.name for p in images]
    assert cli("predict", trained_run, *images, "--csv", tmp_path / "p.csv")[0] == 0
    table = pd.read_csv(tmp_path / "p.csv")
    assert "gradcam" not in predictions[0]
    for p, (_, row) in zip(predictions, table.iterrows(), strict=True):
        assert p["predicted"] == row["predicted"]
        for name, value in p["probabilities"].items():
            assert value == pytest.approx(row[f"p_{name}"], abs=1e-5)


def test_bad_and_oversized_uploads_are_refused_and_the_server_goes_on(server, tmp_path):
    junk = tmp_path / "notes.jpg"
    junk.write_text("not an image")
    answer = _upload(server, junk)
    assert answer.status_code == 422
    assert answer.json() == {"detail": "notes.jpg: not an image (cannot identify the format)"}
    big = tmp_path / "big.png"
    noise = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    Image.fromarray(noise).save(big)  # ~120 kB, over the 0.05 MB limit
    answer = _upload(server, big)
    assert answer.status_code == 413 and "over the 52,428 limit" in answer.json()["detail"]
    assert requests.get(f"{server}/health", timeout=10).ok


@pytest.mark.slow
def test_the_page_shows_an_uploaded_images_class(server, dataset: Path, tmp_path: Path):
    browser_path = shutil.which("chromium") or shutil.which("chromium-browser")
    playwright = pytest.importorskip("playwright.sync_api")
    if browser_path is None:
        pytest.skip("no Chromium on this machine (.ci/run installs Debian's chromium)")
    image = sorted((dataset / "inf").iterdir())[0]
    expected = _upload(server, image).json()["predictions"][0]["predicted"]
    page_html = requests.get(server, timeout=10).text
    assert "<script src=" not in page_html  # nothing from the network
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=browser_path,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        page = browser.new_page()
        page.goto(server)
        page.set_input_files("#files", str(image))
        shown = page.wait_for_selector(".predicted", timeout=30_000).inner_text()
        gradcam = page.get_attribute("img.gradcam", "src")
        page.screenshot(path=str(tmp_path / "page.png"))
        browser.close()
    assert shown.startswith(f"{image.name}: {expected} (")
    assert gradcam.startswith("data:image/png;base64,")
