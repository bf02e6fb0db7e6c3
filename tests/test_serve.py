"""`animalcnn serve`: real HTTP requests to a server on a free local port, and its page in
a real headless browser."""

from __future__ import annotations

import os
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
        [
            sys.executable,
            "-m",
            "animalcnn",
            "serve",
            str(trained_run),
            "--port",
            str(port),
            "--max-upload-mb",
            "0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
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


def test_health_and_predictions_match_the_predict_command(
    cli, server, trained_run, dataset, tmp_path
):
    health = requests.get(f"{server}/health", timeout=10).json()
    assert health == {
        "status": "ok",
        "run": str(trained_run),
        "classes": ["circle", "cross", "square", "stripes", "triangle"],
    }
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
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(good)
    answer = _upload(server, good, junk, good)  # each file its own result, in order
    assert answer.status_code == 200
    mixed = answer.json()["predictions"]
    assert [p["file"] for p in mixed] == ["good.png", "notes.jpg", "good.png"]
    assert mixed[1] == {"file": "notes.jpg", "error": "not an image (cannot identify the format)"}
    assert mixed[0]["predicted"] == mixed[2]["predicted"] and "error" not in mixed[0]
    big = tmp_path / "big.png"
    noise = np.random.default_rng(0).integers(0, 256, (600, 600, 3), dtype=np.uint8)
    Image.fromarray(noise).save(big)  # ~1 MB, over the 0.5 MB limit
    answer = _upload(server, big)
    assert answer.status_code == 413 and "over the 524,288 limit" in answer.json()["detail"]
    half = tmp_path / "half.png"
    Image.fromarray(noise[:200, :]).save(half)  # each under the limit, two of them over it
    assert _upload(server, half).status_code == 200
    assert _upload(server, half, half).status_code == 413

    def endless():  # chunked, no Content-Length: counted as it arrives
        yield (
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
            b"Content-Type: image/png\r\n\r\n"
        )
        for _ in range(10_000):
            yield b"x" * 65536

    answer = requests.post(
        f"{server}/predict",
        data=endless(),
        timeout=60,
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert answer.status_code == 413
    assert requests.get(f"{server}/health", timeout=10).ok


@pytest.mark.slow
def test_the_page_shows_each_files_class_or_error_in_order(
    server, trained_run: Path, dataset: Path, tmp_path: Path, browser
):
    images = sorted((dataset / "inf").iterdir())[:2]
    junk = tmp_path / "notes.jpg"
    junk.write_text("not an image")
    expected = [p["predicted"] for p in _upload(server, *images).json()["predictions"]]
    page_html = requests.get(server, timeout=10).text
    assert "<script src=" not in page_html  # nothing from the network
    page = browser.new_page()
    page.goto(server)
    about = page.locator("#model").inner_text()  # the model, before any upload
    assert "5 classes (circle, cross, square, stripes, triangle)" in about and "32x32" in about
    page.set_input_files("#files", [str(images[0]), str(junk), str(images[1])])
    page.wait_for_selector(".predicted", timeout=30_000)
    shown = [e.inner_text() for e in page.locator(".predicted, p.error").all()]
    captions = page.locator("figcaption").all_inner_texts()
    gradcam = page.get_attribute("img.gradcam", "src")
    page.screenshot(path=str(tmp_path / "page.png"))
    page.close()
    assert shown[0].startswith(f"{images[0].name}: {expected[0]} (")
    assert shown[1] == "notes.jpg: not an image (cannot identify the format)"
    assert shown[2].startswith(f"{images[1].name}: {expected[1]} (")
    assert any(c.startswith("Grad-CAM: where the evidence for") for c in captions)
    assert gradcam.startswith("data:image/png;base64,")


# ---- one server in this process, for what needs its settings or its timing -----------


@pytest.fixture
def local_server(run_copy: Path):
    """Start `create_app` for a run in this process on a free port; yields a function
    that starts it (for another run folder, say) and returns its URL."""
    import threading

    import uvicorn

    from animalcnn.deploy.serve import create_app
    from animalcnn.server import listen

    servers = []

    def start(run: Path = run_copy, limit_mb: float = 4.0) -> str:
        from animalcnn.run_folder import RunFolder

        server = uvicorn.Server(
            uvicorn.Config(create_app(RunFolder.open(run), limit_mb), log_level="warning")
        )
        sock = listen("127.0.0.1", 0)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        servers.append((server, thread))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        return url

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


def _sixteen_bit(path: Path, side: int = 7000) -> Path:
    """A 16-bit gray PNG of `side`² pixels that compresses to ~100 kB."""
    Image.fromarray(np.full((side, side), 40000, np.uint16)).save(path)
    return path


def test_health_answers_while_the_largest_images_decode(local_server, tmp_path):
    import threading

    url = local_server()
    image = _sixteen_bit(tmp_path / "deep.png")
    answers: list = []
    upload = threading.Thread(target=lambda: answers.append(_upload(url, *[image] * 6)))
    upload.start()
    time.sleep(0.3)
    during = 0
    while upload.is_alive():
        assert requests.get(f"{url}/health", timeout=30).ok
        during += upload.is_alive()  # (answered while the upload was still being worked on)
    upload.join()
    assert answers[0].status_code == 200 and len(answers[0].json()["predictions"]) == 6
    assert during >= 1


def test_a_full_queue_answers_503_and_names_are_checked(local_server, tmp_path, monkeypatch):
    import threading

    from animalcnn.deploy import serve

    monkeypatch.setattr(serve, "WORKERS", 1)
    monkeypatch.setattr(serve, "QUEUE", 0)
    url = local_server()
    image = _sixteen_bit(tmp_path / "deep.png")
    slow = threading.Thread(target=lambda: _upload(url, *[image] * 6))
    slow.start()
    time.sleep(0.5)
    busy = _upload(url, image)
    slow.join()
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "2"
    small = sorted(Path(image).parent.glob("*.png"))[0].read_bytes()
    for name, expected in (
        ("cat\x00.png", "file name with a control character"),
        ("c" * 300 + ".png", "over 255 characters"),
        ("cat." + "x" * 250, "an extension over 32 characters"),
    ):
        answer = requests.post(f"{url}/predict", files=[("file", (name, small))], timeout=60)
        assert answer.status_code == 422 and expected in answer.json()["detail"], answer.text


def test_markup_in_a_run_name_is_shown_as_text(local_server, run_copy, tmp_path):
    odd = run_copy.rename(run_copy.parent / "x<img src=x onerror=alert(1)>")
    page = requests.get(local_server(odd), timeout=10).text
    assert "<img src=x" not in page and "animalcnn: x&lt;img src=x onerror=alert(1)&gt;" in page
    assert "5 classes (circle, cross, square, stripes, triangle)" in page


def test_serve_says_why_it_cannot_listen_and_warns_off_loopback(cli, run_copy):
    from animalcnn.server import listen, loopback

    taken = listen("127.0.0.1", 0)
    port = taken.getsockname()[1]
    code, out, err = cli("serve", run_copy, "--port", port)
    assert code == 2 and f"error: cannot listen on 127.0.0.1:{port}: " in err
    assert "serving" not in out
    assert loopback("127.0.0.1") and loopback("localhost") and not loopback("0.0.0.0")
    code, _, err = cli("serve", run_copy, "--max-upload-mb", "inf")
    assert code == 2 and "OverflowError" not in err and "--max-upload-mb" in err
    taken.close()
