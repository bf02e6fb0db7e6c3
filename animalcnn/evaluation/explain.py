"""`animalcnn explain`: a Grad-CAM figure per image, for any registered architecture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from animalcnn.atomic import PNG_MARK, check_replaceable
from animalcnn.data.decoding import try_load
from animalcnn.errors import DataError
from animalcnn.evaluation.gradcam import heatmaps
from animalcnn.evaluation.predict import expand_paths
from animalcnn.figures.gallery import write_gradcam
from animalcnn.run_folder import RunFolder

EXPLAIN_DIR = "explain"  # in the run folder, unless --out says otherwise
TOP = 3  # classes shown beside each heat map
SUFFIX = "_gradcam.png"  # after each image's name


def unique_stems(files: list[Path]) -> list[str]:
    """A figure name per file, never the same for two: the file's stem, with its folder's
    name before it where stems repeat (`a/x.jpg`, `b/x.jpg`: `a-x`, `b-x`), and a count
    after it where even that repeats."""
    stems = [f.stem for f in files]
    named = [f"{f.parent.name}-{f.stem}" if stems.count(f.stem) > 1 else f.stem for f in files]
    seen: dict[str, int] = {}
    unique = []
    for name in named:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return unique


def explain(
    run: RunFolder, paths: list[Path], out: Path | None = None, class_name: str | None = None
) -> pd.DataFrame:
    """Write `<stem>_gradcam.png` for each image (heat of the predicted class, or
    `class_name`; names from `unique_stems`) into `out` (default `<run>/explain/`); one row
    per image: `file`, `predicted`, `confidence`, `output`, or why it could not be read in
    `error`."""
    classes = run.metrics().classes
    if class_name is not None and class_name not in classes:
        raise DataError(f"--class {class_name}: not one of the run's classes {classes}")
    files = expand_paths(paths)
    stems = unique_stems(files)
    if out is not None:  # a folder of the user's may hold figures of theirs
        for stem in stems:
            check_replaceable(out / f"{stem}{SUFFIX}", PNG_MARK, "a Grad-CAM figure", "--out")
    out = out if out is not None else run.file(EXPLAIN_DIR)
    model = run.best_model()
    size = run.config().data.img_size
    rows = []
    for path, stem in zip(files, stems, strict=True):
        image = try_load(path, size)
        if isinstance(image, str):
            rows.append({"file": str(path), "error": image})
            continue
        target = None if class_name is None else np.array([classes.index(class_name)])
        heat, probs = heatmaps(model, image[None].astype(np.float32), target)
        order = np.argsort(-probs[0])[:TOP]
        top = [(classes[i], float(probs[0, i])) for i in order]
        shown = class_name or top[0][0]
        output = out / f"{stem}{SUFFIX}"
        write_gradcam(image, heat[0], top, output, f"{path.name}: heat for {shown}")
        rows.append(
            {
                "file": str(path),
                "predicted": top[0][0],
                "confidence": top[0][1],
                "output": str(output),
                "error": None,
            }
        )
    return pd.DataFrame(rows, columns=["file", "predicted", "confidence", "output", "error"])
