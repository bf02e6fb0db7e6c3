"""docs/notebook.ipynb, the course notebook's story on the Python API, executed top to
bottom by a real Jupyter kernel: any error cell fails it. Kept in git without outputs."""

from __future__ import annotations

import json

import nbformat
import pytest
from nbclient import NotebookClient

from .conftest import ROOT

NOTEBOOK = ROOT / "docs" / "notebook.ipynb"


def test_the_notebook_is_kept_without_outputs():
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert code and all(not c["outputs"] and c["execution_count"] is None for c in code)


@pytest.mark.slow
def test_the_notebook_runs_top_to_bottom_in_a_kernel():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    ).execute()
    outputs = {i: c.outputs for i, c in enumerate(notebook.cells) if c.cell_type == "code"}
    assert not [o for out in outputs.values() for o in out if o.output_type == "error"]
    shown = " ".join(json.dumps(out) for out in outputs.values())
    assert "image/png" in shown  # the figures are drawn inline
    assert 'table class=\\"runs all\\"' in shown and "badge best" in shown  # the runs table
    assert "test accuracy" in shown and "Traceback" not in shown
    (trained,) = [i for i, c in enumerate(notebook.cells) if "simple = animalcnn.train" in c.source]
    progress = [o for o in outputs[trained] if "val_acc" in json.dumps(o)]
    assert len(progress) == 1, progress  # one output redrawn in place, not a line per epoch
    assert "epoch   2/2" in json.dumps(progress[0]) and "val_acc" in json.dumps(progress[0])
