"""Every HTML page the project writes or serves, rendered from the Jinja2 templates in
`templates/` with autoescaping: a run's name, a class or a file name is always shown as
text, never read as markup. What a template marks `| safe` is markup we made ourselves
(plotly's charts).

plotly.js (4.8 MB) is not inlined: each page loads the one copy in `animalcnn-assets/`
beside it, so a page stays small and still opens offline."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any


@cache
def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("animalcnn.reporting", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


ASSETS = "animalcnn-assets"  # beside the pages we write: what they load, shared between them


def plotly_asset(folder: Path) -> str:
    """plotly.js in `folder/animalcnn-assets/` (written once per plotly version; a copy
    there that differs is replaced, as it is ours), as the pages' relative address."""
    import plotly
    from plotly.offline import get_plotlyjs

    from animalcnn.atomic import atomic_write

    name = f"plotly-{plotly.__version__}.min.js"
    path = folder / ASSETS / name
    script = get_plotlyjs()
    if not path.is_file() or path.stat().st_size != len(script.encode()):
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, script)
    return f"{ASSETS}/{name}"


def render(template: str, **values: Any) -> str:
    """The page `template` (a file in `templates/`) filled with `values`."""
    return _environment().get_template(template).render(**values)
