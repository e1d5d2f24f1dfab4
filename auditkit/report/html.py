"""HTML rendering of the document model with Jinja2.

The environment escapes every value (``autoescape=True``: a group label ``<script>`` is printed, never run),
refuses undefined names (``StrictUndefined``: a typo in a user template is an error, not a blank), and looks
for templates in the user's directory first and the packaged ones second (``ChoiceLoader``), so a user
can override ``report.html.j2``, a partial or ``report.css`` alone. The same HTML is what the PDF is made of.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from ..errors import InputError
from .document import Document

PACKAGED = Path(__file__).parent / "templates"
MAIN = "report.html.j2"


def environment(templates: Path | None = None) -> jinja2.Environment:
    """The Jinja2 environment: user templates (if any) before the packaged ones."""
    loaders = []
    if templates is not None:
        templates = Path(templates)
        if not templates.is_dir():
            raise InputError(f"templates={str(templates)!r} is not a directory; give a folder holding "
                             f"{MAIN} and/or its partials, or leave it out to use the packaged templates")
        loaders.append(jinja2.FileSystemLoader(str(templates)))
    loaders.append(jinja2.FileSystemLoader(str(PACKAGED)))
    return jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=False, lstrip_blocks=False,
                              keep_trailing_newline=True)


def render_html_string(document: Document, *, templates: Path | None = None) -> str:
    return environment(templates).get_template(MAIN).render(doc=document)


def render_html(document: Document, outdir: Path, *, templates: Path | None = None) -> Path:
    """Write ``outdir/report.html``; figures are referred to relative to ``outdir``."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / "report.html"
    path.write_text(render_html_string(document, templates=templates), encoding="utf-8")
    return path
