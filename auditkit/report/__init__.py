"""The regulator-facing report: document model → figures → HTML (Jinja2) → PDF/A-3b (WeasyPrint).

``render_run(run, outdir)`` is the one call the runner needs; the pieces are public for re-rendering and
for tests. Importing this package imports neither matplotlib, Jinja2 nor WeasyPrint: each is loaded by
the function that needs it, so ``import auditkit`` stays light.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping
from pathlib import Path

from ..rundoc import RunDocument, findings_of, load_run
from .document import SECTION_TITLES, Document, build_document, min_cell


def findings_subset(run: RunDocument | Mapping) -> dict:
    """The machine-readable findings of ``run`` (what is attached to the PDF when no file is given): the same
    document as ``findings.json`` (:func:`auditkit.rundoc.findings_of`)."""
    return findings_of(run)


def render_figures(run: RunDocument | Mapping, outdir: Path) -> dict[str, str]:
    """Write the report's figures of ``run`` under ``outdir/figures``; ``{name: relative path}``."""
    from .figures import render_figures as _render
    return _render(load_run(run), Path(outdir))


def render_html(document: Document, outdir: Path, *, templates: Path | None = None) -> Path:
    from .html import render_html as _render
    return _render(document, Path(outdir), templates=templates)


def render_pdf(html_path: Path, pdf_path: Path, *, attachments=()) -> Path:
    from .pdf import render_pdf as _render
    return _render(html_path, pdf_path, attachments=attachments)


def render_run(run: RunDocument | Mapping, outdir: Path, *, templates: Path | None = None,
               findings_path: Path | None = None) -> dict[str, Path]:
    """Write ``report.html``, ``report.pdf`` (findings attached) and ``figures/`` into ``outdir``.

    ``findings_path``: the findings file to attach; when it lies outside ``outdir`` it is copied in as
    ``findings.json`` (the PDF renderer reads nothing outside ``outdir``); when None, the run's findings
    subset (:func:`findings_subset`) is written to ``outdir/findings.json``. Returns the paths by name:
    ``html``, ``pdf``, ``findings``, ``figures`` (the folder). A dict ``run`` is validated into a
    :class:`~auditkit.rundoc.RunDocument` first (an :class:`~auditkit.errors.InputError` naming what is missing
    or invalid, before anything is written).
    """
    run = load_run(run)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    if findings_path is None:
        findings = outdir / "findings.json"
        findings.write_text(json.dumps(findings_subset(run), indent=1, ensure_ascii=False, allow_nan=False),
                            encoding="utf-8")
    else:
        findings = Path(findings_path)
        if not findings.resolve().is_relative_to(outdir.resolve()):
            findings = Path(shutil.copyfile(findings_path, outdir / "findings.json"))
    data = findings.read_bytes()
    try:
        keys = list(json.loads(data))
    except (ValueError, TypeError):
        keys = []
    annex = {"name": findings.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "keys": keys}
    figures = render_figures(run, outdir)
    document = build_document(run, figures=figures, annex=annex)
    html = render_html(document, outdir, templates=templates)
    pdf = render_pdf(html, outdir / "report.pdf", attachments=[findings])
    return {"html": html, "pdf": pdf, "findings": findings, "figures": outdir / "figures"}


__all__ = ["render_run", "build_document", "render_figures", "render_html", "render_pdf", "findings_subset",
           "Document", "SECTION_TITLES", "min_cell"]
