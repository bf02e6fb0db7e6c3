"""Every HTML page the project writes or serves, rendered from the Jinja2 templates in
`templates/` with autoescaping: a run's name, a class or a file name is always shown as
text, never read as markup. What a template marks `| safe` is markup we made ourselves
(plotly's charts)."""

from __future__ import annotations

from functools import cache
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


def render(template: str, **values: Any) -> str:
    """The page `template` (a file in `templates/`) filled with `values`."""
    return _environment().get_template(template).render(**values)
