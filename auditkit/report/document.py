"""The document model: what the report says, as already-formatted strings, before any HTML exists.

``build_document(run)`` turns a run document (a :class:`~auditkit.rundoc.RunDocument`, or ``run.json``'s
dict, validated into one) into a :class:`Document`: the fifteen sections of ``SECTION_TITLES`` in order, with
one section per third-party plugin after the data-quality section, each a list of blocks (paragraphs,
tables, figures, ...; :mod:`auditkit.report.blocks`). The renderers see only this object, never tensors or
plugin objects, so the HTML and the PDF say the same thing and a saved run re-renders without recomputing
anything.

Rules applied here, once, for every renderer:

- every number has plain words beside it (what it measures, which direction is bad);
- cells with fewer records than the minimum group size are suppressed: their metrics are replaced
  by "suppressed (n < min)" and their counts are not printed;
- records appear only as their random tokens ("R-XXXXXXXX"); the run carries no record ids;
- strings stay raw: escaping is the job of the template engine (autoescape), never of this module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

from ..rundoc import RunDocument, load_run
from . import results as R
from . import sections as S
from .blocks import (
    Annex,
    Bullets,
    Cell,
    Code,
    Figure,
    Heading,
    Paragraph,
    Section,
    Signatures,
    Table,
    kv,
    min_cell,
    suppressed,
)
from .fmt import when
from .performance import performance_section
from .plugins import plugin_section

SECTION_TITLES = (
    ("cover", "Cover and document control"),
    ("scope", "Scope and intended purpose"),
    ("model", "Model identity"),
    ("data", "Data provenance"),
    ("subgroups", "Subgroups"),
    ("methodology", "Methodology"),
    ("fairness", "Fairness results"),
    ("performance", "Performance and calibration"),
    ("privacy", "Privacy results"),
    ("quality", "Data quality and explanations"),
    ("policy", "Policy evaluation"),
    ("limitations", "Limitations"),
    ("history", "History"),
    ("signoff", "Sign-off"),
    ("reproducibility", "Reproducibility"),
    ("annex", "Machine-readable annex"),
)

STATUS_LABELS = {
    "pass": ("PASS", "Every rule of the policy was met."),
    "pass_with_warnings": ("PASS WITH WARNINGS",
                           "No rule failed, but at least one result is close to its bound or rests on too few "
                           "records to decide; the warnings are listed in the Policy evaluation section."),
    "fail": ("FAIL", "At least one rule of the policy was not met; see the Policy evaluation section."),
    "incomplete": ("INCOMPLETE", "At least one rule could not be decided because there were too few records, "
                                 "and the policy treats that as blocking."),
}


@dataclass
class Document:
    """Everything the templates need; all strings raw (the templates escape them)."""

    report_id: str
    title: str
    organisation: str
    system: str
    model_label: str
    created: str
    status: str
    status_label: str
    status_text: str
    check_counts: list[tuple[str, int]]
    sections: list[Section]
    footer: str
    lang: str = "en"


BUILDERS = {
    "cover": S.cover, "scope": S.scope, "model": S.model, "data": S.data, "subgroups": S.subgroups,
    "methodology": S.methodology, "fairness": R.fairness, "privacy": R.privacy, "quality": R.quality,
    "policy": S.policy, "limitations": S.limitations, "history": S.history, "signoff": S.signoff,
    "reproducibility": S.reproducibility, "annex": S.annex,
    "performance": performance_section,
}


def plan(run: RunDocument) -> list[tuple[str, str, Callable]]:
    """The sections of the report for ``run`` in order, as ``(key, title, builder)``: the fifteen of
    ``SECTION_TITLES``, with one section per third-party plugin (``run.plugins``, by name) after the data
    quality section."""
    out = []
    for key, title in SECTION_TITLES:
        out.append((key, title, BUILDERS[key]))
        if key == "quality":
            out += [(f"plugin-{i}", name, partial(plugin_section, name=name, findings=findings))
                    for i, (name, findings) in enumerate(sorted(run.plugins.items()), start=1)]
    return out


def build_document(run: RunDocument | Mapping, *, figures: dict[str, str] | None = None,
                   annex: Annex | Mapping | None = None) -> Document:
    """The report's content for ``run`` (a :class:`~auditkit.rundoc.RunDocument`; a dict is validated into one,
    an :class:`~auditkit.errors.InputError` naming what is missing or invalid).

    ``figures`` maps figure names (see :func:`auditkit.report.figures.render_figures`) to paths relative
    to the report's directory; a figure that is absent is simply not shown. ``annex`` describes the
    attached findings file (:class:`~auditkit.report.blocks.Annex`, or a dict of its fields).
    """
    run = load_run(run)
    figures = figures or {}
    annex = annex if isinstance(annex, Annex) else Annex(**(annex or {}))
    sections = plan(run)
    numbers = {key: number for number, (key, _, _) in enumerate(sections, start=1)}
    out = []
    for number, (key, title, builder) in enumerate(sections, start=1):
        section = Section(number, key, title)
        builder(section, run, figures=figures, annex=annex, numbers=numbers)
        out.append(section)
    label, text = STATUS_LABELS.get(run.status, (run.status.upper(), "Status as recorded by the run."))
    counts = [(s.replace("_", " "), sum(1 for c in run.checks if c.status == s))
              for s in ("pass", "warn", "fail", "insufficient_data")]
    model = run.model
    return Document(
        report_id=run.report_id, title="Fairness and privacy audit report",
        organisation=run.scope.organisation, system=run.scope.system,
        model_label=f"{model.name} version {model.version}",
        created=when(run.created_utc), status=run.status, status_label=label, status_text=text,
        check_counts=counts, sections=out, footer=f"{run.report_id} · {model.name} {model.version}")


#: the blocks are defined in :mod:`auditkit.report.blocks`; they are re-exported here, where readers look for them
__all__ = ["SECTION_TITLES", "STATUS_LABELS", "Document", "build_document", "plan", "Annex", "Section", "Cell",
           "Table", "Paragraph", "Heading", "Bullets", "Figure", "Code", "Signatures", "kv", "min_cell", "suppressed"]
