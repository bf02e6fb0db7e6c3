"""`animalcnn serve`: a run's model behind HTTP (FastAPI, served by uvicorn), loaded once.

- `GET /health`: `{"status": "ok", "run": ..., "classes": [...]}`, answered at once
  whatever the server is doing (it never waits for predictions).
- `POST /predict`: image files in the multipart field `file`; the same numbers as
  `animalcnn predict` (the same decoding, the same model), one entry per file in the
  order sent, a file that is not an image with its own `error`. 413 for a request over
  the size limit, counted as it arrives (never read whole first); 422 when no file is an
  image, for an unusable file name, or too many files; 503 when the queue is full.
- `GET /`: one page to choose or drop images and see each with its Grad-CAM overlay
  and its class probabilities as bars; rendered from a template, its script inline,
  nothing from the network.

The work (decoding and the model) runs in a bounded thread pool behind a bounded
queue, so one client cannot starve the others, and decoding is bounded by the
decoded size of each image (`data.decoding.MAX_DECODED_BYTES`).
"""

import asyncio  # no `from __future__ import annotations`: FastAPI reads the route types
import contextlib
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from animalcnn.data.decoding import try_load
from animalcnn.errors import UserError
from animalcnn.evaluation.evaluate import warn_unfinished
from animalcnn.evaluation.inference import in_memory, probabilities
from animalcnn.reporting.pages import render
from animalcnn.run_folder import RunFolder
from animalcnn.server import run_app

WORKERS = 2  # requests worked on at once (each decodes and predicts its files)
QUEUE = 8  # requests waiting for a worker; past that, 503
MAX_FILES = 64  # files in one request
MAX_NAME = 255  # characters in an uploaded file's name
MAX_SUFFIX = 32  # characters in its extension (no image format has a longer one)


class RequestTooLarge(Exception):
    """The request body passed the limit as it arrived."""


class LimitRequestSize:
    """ASGI middleware: a request body over `limit` bytes gets 413 as soon as that is
    known, from its Content-Length or from the running count of what arrived; the rest
    is never read."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send, int(declared))
            return
        seen, over, started = 0, False, False

        async def counted() -> dict:
            nonlocal seen, over
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                over = True
                raise RequestTooLarge
            return message

        async def guarded(message: dict) -> None:
            nonlocal started
            if over:  # the app's own answer to the broken-off body is replaced by 413
                return
            started = True
            await send(message)

        with contextlib.suppress(RequestTooLarge):
            await self.app(scope, counted, guarded)
        if over and not started:
            await self._refuse(send, seen)

    async def _refuse(self, send: Callable, size: int) -> None:
        body = json.dumps(
            {"detail": f"request of {size:,}+ bytes, over the {self.limit:,} limit"}
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"connection", b"close"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _bad_name(name: str) -> str | None:
    """Why an uploaded file's name is refused, if it is."""
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "a control character"
    if len(name) > MAX_NAME:
        return f"over {MAX_NAME} characters"
    if len(name.rsplit(".", 1)[-1]) > MAX_SUFFIX and "." in name:
        return f"an extension over {MAX_SUFFIX} characters"
    return None


class Predictor:
    """The served model: uploaded files in, each one's prediction or its own error (as
    `predict` reports an unreadable file in its row); one model call at a time, while
    requests decode in parallel."""

    def __init__(self, model: Any, classes: list[str], size: int) -> None:
        self.model, self.classes, self.size = model, classes, size
        self.lock = threading.Lock()

    def __call__(self, uploads: list[tuple[str, Any]], explain: bool) -> dict[str, Any]:
        """422 only when no file is an image."""
        from fastapi import HTTPException

        loaded = [(name, try_load(stream, self.size)) for name, stream in uploads]
        good = [(name, image) for name, image in loaded if not isinstance(image, str)]
        if not good:
            raise HTTPException(422, "; ".join(f"{name}: {why}" for name, why in loaded))
        batch = np.stack([image for _, image in good])
        with self.lock:
            probs = probabilities(self.model, in_memory(batch), len(batch))
        found = [self._row(name, p) for (name, _), p in zip(good, probs, strict=True)]
        if explain:
            self._explain(batch, found)
        rows = iter(found)  # in the order sent, errors in their places
        return {
            "predictions": [
                {"file": name, "error": image} if isinstance(image, str) else next(rows)
                for name, image in loaded
            ]
        }

    def _row(self, name: str, p: np.ndarray) -> dict[str, Any]:
        return {
            "file": name,
            "predicted": self.classes[int(p.argmax())],
            "confidence": float(p.max()),
            "probabilities": {c: float(v) for c, v in zip(self.classes, p, strict=True)},
        }

    def _explain(self, batch: np.ndarray, found: list[dict[str, Any]]) -> None:
        """Each prediction's Grad-CAM overlay, as a data URI."""
        from animalcnn.evaluation.gradcam import heatmaps
        from animalcnn.figures.gallery import overlay_uri

        with self.lock:
            heats, _ = heatmaps(self.model, batch.astype(np.float32))
        for row, image, heat in zip(found, batch, heats, strict=True):
            row["gradcam"] = overlay_uri(image, heat)


def _checked_uploads(files: list[Any]) -> list[tuple[str, Any]]:
    """A request's files with their names; 422 for too many, or for a bad name."""
    from fastapi import HTTPException

    if len(files) > MAX_FILES:
        raise HTTPException(422, f"{len(files)} files: at most {MAX_FILES} a request")
    uploads = []
    for f in files:
        name = f.filename or "upload"
        why = _bad_name(name)
        if why is not None:
            raise HTTPException(422, f"{ascii(name[:80])}: file name with {why}")
        uploads.append((name, f.file))
    return uploads


def create_app(run: RunFolder, max_upload_mb: float) -> Any:
    """The FastAPI app for `run` (its best model loaded now, once)."""
    try:
        from fastapi import FastAPI, File, HTTPException, UploadFile
        from fastapi.responses import HTMLResponse
    except ImportError:
        raise UserError("fastapi is not installed: pip install 'animalcnn[serve]'") from None

    warn_unfinished(run, "serving")
    predictor = Predictor(run.best_model(), run.metrics().classes, run.config().data.img_size)
    pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="predict")
    waiting = 0  # requests queued or being worked on
    test = run.test_result()
    app = FastAPI(title=f"animalcnn: {run.name}")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "run": str(run.path), "classes": predictor.classes}

    @app.post("/predict")
    async def predict(
        file: list[UploadFile] = File(...),  # noqa: B008 (FastAPI's way)
        explain: bool = False,
    ) -> dict[str, Any]:
        """Each image's class probabilities; with `explain`, its Grad-CAM overlay too."""
        nonlocal waiting
        uploads = _checked_uploads(file)
        if waiting >= WORKERS + QUEUE:
            raise HTTPException(
                503,
                "busy: too many requests waiting; try again shortly",
                headers={"Retry-After": "2"},
            )
        waiting += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(pool, predictor, uploads, explain)
        finally:
            waiting -= 1

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return render(
            "serve.html",
            run=run.name,
            classes=predictor.classes,
            size=predictor.size,
            test_accuracy=test.evaluation.accuracy if test.evaluation else None,
            max_files=MAX_FILES,
            max_mb=f"{max_upload_mb:g}",
        )

    return LimitRequestSize(app, int(max_upload_mb * 2**20))


def serve(
    run: RunFolder, host: str, port: int, max_upload_mb: float, say: Callable[[str], None]
) -> None:
    """Serve until interrupted; `say` tells where, once the address is bound."""
    run_app(create_app(run, max_upload_mb), host, port, str(run.path), say)
