"""The document model: what the report says, as already-formatted strings, before any HTML exists.

``build_document(run)`` turns a run document (``run.json``, schema ``auditkit.run/1``) into a
:class:`Document`: the fifteen sections of ``SECTION_TITLES`` in order, each a list of blocks (paragraphs,
tables, figures, ...). The renderers see only this object, never tensors or plugin objects, so the HTML
and the PDF say the same thing and a saved run re-renders without recomputing anything.

Rules applied here, once, for every renderer:

- every number has plain words beside it (what it measures, which direction is bad);
- cells with fewer records than the minimum group size are suppressed: their metrics are replaced
  by "suppressed (n < min)" and their counts are not printed;
- records appear only as their random tokens ("R-XXXXXXXX"); the run carries no record ids;
- strings stay raw: escaping is the job of the template engine (autoescape), never of this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SECTION_TITLES = (
    ("cover", "Cover and document control"),
    ("scope", "Scope and intended purpose"),
    ("model", "Model identity"),
    ("data", "Data provenance"),
    ("subgroups", "Subgroups"),
    ("methodology", "Methodology"),
    ("fairness", "Fairness results"),
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

SIGN_CONVENTION = (
    "Sign convention of every influence value in this report: the value estimates how much a quantity "
    "(a loss, or a gap between groups) would change if that one training record were removed and the "
    "model retrained. For a loss, a positive value means the record helps (removing it would make the "
    "loss worse); a negative value means it hurts. For a gap between groups, a negative value means "
    "removing the record would shrink the gap, so the record drives the disparity. Values are in the "
    "units of the quantity (probability or loss) and are comparable with actual retraining."
)


@dataclass
class Cell:
    """One table cell: its text and an optional CSS class (e.g. "fail", "num", "token")."""

    text: str
    css: str = ""
    colspan: int = 1
    sub: str = ""


@dataclass
class Table:
    """A table; ``rows`` hold :class:`Cell` lists. ``css`` picks a layout ("kv" for label/value pairs)."""

    columns: list[str]
    rows: list[list[Cell]]
    caption: str = ""
    note: str = ""
    css: str = ""
    kind: str = "table"


@dataclass
class Paragraph:
    text: str
    css: str = ""
    kind: str = "paragraph"


@dataclass
class Heading:
    """A sub-heading inside a section."""

    text: str
    kind: str = "heading"


@dataclass
class Bullets:
    items: list[str]
    kind: str = "bullets"


@dataclass
class Figure:
    """A figure file relative to the report's directory (``figures/name.svg``) and what it shows."""

    src: str
    caption: str
    alt: str
    css: str = ""
    kind: str = "figure"


@dataclass
class Code:
    text: str
    kind: str = "code"


@dataclass
class Signatures:
    """Sign-off lines: (role, name) pairs; an empty name leaves a blank line to be written in."""

    roles: list[tuple[str, str]]
    kind: str = "signatures"


@dataclass
class Section:
    number: int
    key: str
    title: str
    blocks: list = field(default_factory=list)
    lead: str = ""


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


def kv(pairs: list[tuple[str, str] | tuple[str, str, str]], *, caption: str = "") -> Table:
    """A two- or three-column label/value(/meaning) table."""
    three = any(len(p) == 3 for p in pairs)
    rows = []
    for p in pairs:
        row = [Cell(str(p[0]), "label"), Cell(str(p[1]))]
        if three:
            row.append(Cell(str(p[2]) if len(p) == 3 else "", "note"))
        rows.append(row)
    return Table(["Item", "Value", "What it means"] if three else ["Item", "Value"], rows, caption=caption,
                 css="kv3" if three else "kv")


def min_cell(run: dict) -> int:
    """The minimum records per reported cell: the fairness audit's minimum group size, else the
    largest ``min_n`` of the policy's rules, else 30."""
    for table in (run.get("fairness") or {}).get("groups") or []:
        if table.get("min_group_size"):
            return int(table["min_group_size"])
    ns = [int(r["min_n"]) for r in (run.get("policy") or {}).get("rules") or [] if r.get("min_n")]
    return max(ns) if ns else 30


def suppressed(minimum: int) -> str:
    return f"suppressed (n < {minimum})"


def build_document(run: dict, *, figures: dict[str, str] | None = None, annex: dict | None = None) -> Document:
    """The report's content for ``run``.

    ``figures`` maps figure names (see :func:`auditkit.report.figures.render_figures`) to paths relative
    to the report's directory; a figure that is absent is simply not shown. ``annex`` describes the
    attached findings file (``{"name", "sha256", "bytes"}``).
    """
    from . import sections as S

    figures = figures or {}
    builders = {
        "cover": S.cover, "scope": S.scope, "model": S.model, "data": S.data, "subgroups": S.subgroups,
        "methodology": S.methodology, "fairness": S.fairness, "privacy": S.privacy, "quality": S.quality,
        "policy": S.policy, "limitations": S.limitations, "history": S.history, "signoff": S.signoff,
        "reproducibility": S.reproducibility, "annex": S.annex,
    }
    out = []
    for number, (key, title) in enumerate(SECTION_TITLES, start=1):
        section = Section(number, key, title)
        builders[key](section, run, figures=figures, annex=annex or {})
        out.append(section)
    status = str(run.get("status", "incomplete"))
    label, text = STATUS_LABELS.get(status, (status.upper(), "Status as recorded by the run."))
    scope, model = run.get("scope") or {}, run.get("model") or {}
    checks = run.get("checks") or []
    counts = [(s.replace("_", " "), sum(1 for c in checks if c.get("status") == s))
              for s in ("pass", "warn", "fail", "insufficient_data")]
    from .fmt import when
    return Document(
        report_id=str(run.get("report_id", "")), title="Fairness and privacy audit report",
        organisation=str(scope.get("organisation", "")), system=str(scope.get("system", "")),
        model_label=f"{model.get('name', '')} version {model.get('version', '')}",
        created=when(run.get("created_utc")), status=status, status_label=label, status_text=text,
        check_counts=counts, sections=out,
        footer=f"{run.get('report_id', '')} · {model.get('name', '')} {model.get('version', '')}")
