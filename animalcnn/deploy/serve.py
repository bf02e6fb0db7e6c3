"""`animalcnn serve`: a run's model behind HTTP (FastAPI, served by uvicorn), loaded once.

- `GET /health`: `{"status": "ok", "run": ..., "classes": [...]}`
- `POST /predict`: image files in the multipart field `file`; the same numbers as
  `animalcnn predict` (the same decoding, the same model); 422 for a file that is not an
  image, 413 for one over the size limit; the server goes on serving.
- `GET /`: one page to choose or drop images and see each with its Grad-CAM overlay
  and its class probabilities as bars; its script is inline, nothing comes from the
  network.
"""

import tempfile  # no `from __future__ import annotations`: FastAPI reads the route types
from pathlib import Path
from typing import Any

import numpy as np

from animalcnn.data.decoding import try_load
from animalcnn.errors import UserError
from animalcnn.evaluation.evaluate import load_best
from animalcnn.run_folder import RunFolder


def create_app(run: RunFolder, max_upload_mb: float) -> Any:
    """The FastAPI app for `run` (its best model loaded now, once)."""
    try:
        from fastapi import FastAPI, File, HTTPException, UploadFile
        from fastapi.responses import HTMLResponse
    except ImportError:
        raise UserError("fastapi is not installed: pip install 'animalcnn[serve]'") from None

    model = load_best(run)
    classes = run.metrics().get("classes") or []
    size = run.config().data.img_size
    limit = int(max_upload_mb * 2**20)
    app = FastAPI(title=f"animalcnn: {run.name}")

    def decode(name: str, data: bytes) -> np.ndarray:
        if len(data) > limit:
            raise HTTPException(413, f"{name}: {len(data):,} bytes, over the {limit:,} limit")
        with tempfile.NamedTemporaryFile(suffix=Path(name).suffix or ".img") as f:
            f.write(data)
            f.flush()
            image = try_load(Path(f.name), size)  # exactly as `predict` reads a file
        if isinstance(image, str):
            raise HTTPException(422, f"{name}: {image}")
        return image

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "run": str(run.path), "classes": classes}

    @app.post("/predict")
    async def predict(
        file: list[UploadFile] = File(...),  # noqa: B008 (FastAPI's way)
        explain: bool = False,
    ) -> dict[str, Any]:
        """Each image's class probabilities; with `explain`, its Grad-CAM overlay too."""
        names = [f.filename or "upload" for f in file]
        images = [decode(name, await f.read()) for name, f in zip(names, file, strict=True)]
        batch = np.stack(images).astype(np.float32)
        probs = model.predict(batch, verbose=0)
        predictions = [
            {
                "file": name,
                "predicted": classes[int(p.argmax())],
                "confidence": float(p.max()),
                "probabilities": {c: float(v) for c, v in zip(classes, p, strict=True)},
            }
            for name, p in zip(names, probs, strict=True)
        ]
        if explain:
            from animalcnn.evaluation.gradcam import heatmaps
            from animalcnn.reporting.gallery import overlay_uri

            heats, _ = heatmaps(model, batch)
            for prediction, image, heat in zip(predictions, images, heats, strict=True):
                prediction["gradcam"] = overlay_uri(image, heat)
        return {"predictions": predictions}

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE.replace("{{title}}", run.name)

    return app


def serve(run: RunFolder, host: str, port: int, max_upload_mb: float) -> None:
    """Serve until interrupted, one log line per request."""
    try:
        import uvicorn
    except ImportError:
        raise UserError("uvicorn is not installed: pip install 'animalcnn[serve]'") from None
    uvicorn.run(create_app(run, max_upload_mb), host=host, port=port, log_level="info")


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>animalcnn: {{title}}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 900px; color: #222; }
#drop { border: 2px dashed #999; border-radius: 8px; padding: 2em; text-align: center; }
#drop.over { background: #eef; }
.result { display: flex; gap: 1.5em; margin-top: 1.5em; align-items: center; }
.result img { width: 160px; height: 160px; object-fit: cover; border-radius: 4px; }
.bars { flex: 1; } .bar { display: flex; align-items: center; gap: 0.5em; margin: 2px 0; }
.bar span.name { width: 8em; text-align: right; }
.bar div.fill { background: #1f77b4; height: 1em; }
.predicted { font-weight: 600; font-size: 1.1em; } .error { color: #b00; }
</style></head><body>
<h1>animalcnn: {{title}}</h1>
<div id="drop">Drop images here, or <input type="file" id="files" accept="image/*" multiple></div>
<div id="results"></div>
<script>
const results = document.getElementById('results');
async function send(files) {
  const form = new FormData();
  for (const f of files) form.append('file', f);
  const response = await fetch('/predict?explain=true', {method: 'POST', body: form});
  const body = await response.json();
  if (!response.ok) {
    const p = document.createElement('p'); p.className = 'error';
    p.textContent = body.detail; results.prepend(p); return;
  }
  body.predictions.forEach((pred, i) => {
    const row = document.createElement('div'); row.className = 'result';
    const img = document.createElement('img'); img.src = URL.createObjectURL(files[i]);
    const bars = document.createElement('div'); bars.className = 'bars';
    const title = document.createElement('div'); title.className = 'predicted';
    title.textContent = pred.file + ': ' + pred.predicted + ' (' +
      (100 * pred.confidence).toFixed(1) + '%)';
    bars.appendChild(title);
    Object.entries(pred.probabilities).sort((a, b) => b[1] - a[1]).forEach(([name, p]) => {
      const bar = document.createElement('div'); bar.className = 'bar';
      const label = document.createElement('span'); label.className = 'name';
      label.textContent = name;
      const fill = document.createElement('div'); fill.className = 'fill';
      fill.style.width = (300 * p) + 'px';
      const value = document.createElement('span'); value.textContent = (100 * p).toFixed(1) + '%';
      bar.append(label, fill, value); bars.appendChild(bar);
    });
    row.append(img);
    if (pred.gradcam) {
      const heat = document.createElement('img'); heat.className = 'gradcam';
      heat.src = pred.gradcam; heat.title = 'Grad-CAM: where the evidence lies'; row.append(heat);
    }
    row.append(bars); results.prepend(row);
  });
}
document.getElementById('files').addEventListener('change', e => send([...e.target.files]));
const drop = document.getElementById('drop');
drop.addEventListener('dragover', e => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', e => { e.preventDefault(); drop.classList.remove('over');
  send([...e.dataTransfer.files]); });
</script>
</body></html>
"""
