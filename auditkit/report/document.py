"""The document model: what the report says, as already-formatted strings, before any HTML exists.

``build_document(run)`` turns a run document (a :class:`~auditkit.rundoc.RunDocument`, or ``run.json``'s
dict, validated into one) into a :class:`Document`: the seventeen sections of ``SECTION_TITLES`` in order, with
one section per third-party plugin after the data-quality section, then the appendices of ``APPENDIX_TITLES``
(the bulk moved out of the body by ``MOVES``), each a list of blocks (paragraphs, tables, figures, ...;
:mod:`auditkit.report.blocks`). The renderers see only this object, never tensors or
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
from dataclasses import dataclass, field
from functools import partial

from ..rundoc import RunDocument, load_run
from . import policy_table as P
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
from .datasheet import datasheet
from .executive import STATUS_LABELS, check_sentence, executive_summary, flagged
from .fmt import when
from .performance import performance_section
from .plugins import plugin_section

SECTION_TITLES = (
    ("cover", "Cover and document control"),
    ("summary", "Executive summary"),
    ("scope", "Scope and intended purpose"),
    ("model", "Model identity"),
    ("data", "Data provenance"),
    ("datasheet", "Datasheet"),
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

#: the appendices, after the body: (key, title). Their content is the bulk a reviewer looks up rather than
#: reads: moved out of the body sections by :data:`MOVES`, or built by their own builder.
APPENDIX_TITLES = (
    ("appendix-groups", "Per-group results in full"),
    ("appendix-drivers", "Drivers of each gap in detail"),
    ("appendix-checks", "Every policy rule and check"),
    ("appendix-influence", "Influence diagnostics"),
    ("appendix-cases", "Explanations of selected test cases"),
    ("appendix-config", "Configuration and run time"),
)

#: blocks moved from a body section to an appendix: (from section, to appendix, what). ``what`` is either
#: ``("caption", prefix)``: every table whose caption starts with prefix; ``("heading", prefix)``: the
#: sub-heading that starts with prefix and every block up to the next sub-heading; ``("after", prefix)``:
#: the paragraph starting with prefix and every block after it; or ``("after-caption", prefix)``: every block
#: after the table whose caption starts with prefix (that table stays). A move whose anchor is absent does nothing.
MOVES = (
    ("fairness", "appendix-groups", ("caption", "Per-group results")),
    ("fairness", "appendix-drivers", ("after-caption", "Gaps and the predicted effect")),
    ("fairness", "appendix-drivers", ("after-caption", "Gaps flagged by the policy and the effect")),
    ("methodology", "appendix-influence", ("heading", "Trust in the estimates")),
    ("quality", "appendix-cases", ("heading", "Why the model decided")),
    ("reproducibility", "appendix-config", ("after", "Configuration file as used")),
)


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
    #: the PDF's metadata: the author (the organisation) and the creation date (ISO 8601, UTC)
    author: str = ""
    created_iso: str = ""
    #: the failing checks in one sentence each (at most three), for the cover; all of them: the executive summary
    headlines: list[str] = field(default_factory=list)


def _nothing(section: Section, run: RunDocument, **_) -> None:
    """An appendix filled only by :data:`MOVES`."""


BUILDERS = {
    "cover": S.cover, "summary": executive_summary, "scope": S.scope, "model": S.model, "data": S.data,
    "datasheet": datasheet, "subgroups": S.subgroups, "methodology": S.methodology, "fairness": R.fairness,
    "privacy": R.privacy, "quality": R.quality, "policy": P.policy, "limitations": S.limitations,
    "history": S.history, "signoff": S.signoff, "reproducibility": S.reproducibility, "annex": S.annex,
    "appendix-groups": _nothing, "appendix-drivers": _nothing, "appendix-checks": P.checks_appendix,
    "appendix-influence": _nothing, "performance": performance_section,
    "appendix-cases": _nothing, "appendix-config": _nothing,
}


def _take(blocks: list, what: tuple[str, str]) -> list:
    """Remove from ``blocks`` (in place) and return the blocks ``what`` names (see :data:`MOVES`)."""
    kind, prefix = what
    taken, keep, i = [], [], 0
    while i < len(blocks):
        b = blocks[i]
        if kind == "caption" and isinstance(b, Table) and b.caption.startswith(prefix):
            taken.append(b)
        elif kind == "heading" and isinstance(b, Heading) and b.text.startswith(prefix):
            j = i + 1
            while j < len(blocks) and not isinstance(blocks[j], Heading):
                j += 1
            taken += blocks[i:j]
            i = j
            continue
        elif kind == "after" and isinstance(b, Paragraph) and b.text.startswith(prefix):
            taken += blocks[i:]
            break
        elif kind == "after-caption" and isinstance(b, Table) and b.caption.startswith(prefix):
            keep.append(b)
            taken += blocks[i + 1:]
            break
        else:
            keep.append(b)
        i += 1
    blocks[:] = keep
    return taken


def move_bulk(sections: list[Section]) -> None:
    """Move the bulk named by :data:`MOVES` from the body to the appendices; an appendix left empty says so."""
    by_key = {s.key: s for s in sections}
    for source, target, what in MOVES:
        if source in by_key and target in by_key:
            by_key[target].blocks += _take(by_key[source].blocks, what)
    for s in sections:
        if s.label and not s.blocks:
            s.blocks.append(Paragraph("Nothing to show for this run.", "note"))


def plan(run: RunDocument) -> list[tuple[str, str, Callable]]:
    """The body sections of the report for ``run`` in order, as ``(key, title, builder)``: the seventeen of
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
    numbers: dict = {key: number for number, (key, _, _) in enumerate(sections, start=1)}
    letters = {key: chr(ord("A") + i) for i, (key, _) in enumerate(APPENDIX_TITLES)}
    numbers.update({key: f"appendix {letter}" for key, letter in letters.items()})
    out = []
    for number, (key, title, builder) in enumerate(sections, start=1):
        section = Section(number, key, title)
        builder(section, run, figures=figures, annex=annex, numbers=numbers)
        out.append(section)
    for key, title in APPENDIX_TITLES:
        section = Section(len(out) + 1, key, title, label=letters[key])
        BUILDERS[key](section, run, figures=figures, annex=annex, numbers=numbers)
        out.append(section)
    move_bulk(out)
    label, text = STATUS_LABELS.get(run.status, (run.status.upper(), "Status as recorded by the run."))
    counts = [(s.replace("_", " "), sum(1 for c in run.checks if c.status == s))
              for s in ("pass", "warn", "fail", "insufficient_data")]
    model = run.model
    return Document(
        report_id=run.report_id, title="Fairness and privacy audit report",
        organisation=run.scope.organisation, system=run.scope.system,
        model_label=f"{model.name} version {model.version}",
        created=when(run.created_utc), status=run.status, status_label=label, status_text=text,
        check_counts=counts, sections=out, footer=f"{run.report_id} · {model.name} {model.version}",
        author=run.scope.organisation, created_iso=run.created_utc or "",
        headlines=[check_sentence(run, c) for c in flagged(run) if c.status == "fail"][:3])


#: the blocks are defined in :mod:`auditkit.report.blocks`; they are re-exported here, where readers look for them
__all__ = ["SECTION_TITLES", "APPENDIX_TITLES", "MOVES", "move_bulk",
           "STATUS_LABELS", "Document", "build_document", "plan", "Annex", "Section", "Cell",
           "Table", "Paragraph", "Heading", "Bullets", "Figure", "Code", "Signatures", "kv", "min_cell", "suppressed"]
