"""The building blocks of the report's document model: sections, paragraphs, tables and their cells,
and the two rules every builder shares (the minimum records per reported cell and its "suppressed" text).

This module imports no section builder, so every builder can import it (the import graph of the report
package has no circle; ``tests/test_no_import_cycles.py`` keeps it so). All strings stay raw: escaping is
the template engine's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..rundoc import RunDocument


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

    @property
    def numeric(self) -> list[bool]:
        """For each column, whether its cells are right-aligned numbers (class "num" in every row where the
        column's cell stands alone): its header is then right-aligned too."""
        out = []
        for j in range(len(self.columns)):
            cells = [row[j] for row in self.rows if len(row) == len(self.columns)]
            out.append(bool(cells) and all("num" in c.css.split() for c in cells))
        return out


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
    """A numbered section of the body, or an appendix (``label`` "A", "B", ... shown instead of the number)."""

    number: int
    key: str
    title: str
    blocks: list = field(default_factory=list)
    lead: str = ""
    label: str = ""

    @property
    def heading(self) -> str:
        """"7. Fairness results", or "Appendix A. Full per-group results"."""
        return f"Appendix {self.label}. {self.title}" if self.label else f"{self.number}. {self.title}"


@dataclass
class Annex:
    """The findings file attached to the PDF: its name, SHA-256, size in bytes and top-level keys."""

    name: str = "findings.json"
    sha256: str = ""
    bytes: int | None = None
    keys: list[str] = field(default_factory=list)


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


def min_cell(run: RunDocument) -> int:
    """The minimum records per reported cell: the fairness audit's minimum group size, else the
    largest ``min_n`` of the policy's rules, else 30."""
    for table in run.fairness.groups if run.fairness else []:
        if table.min_group_size:
            return int(table.min_group_size)
    ns = [int(r.min_n) for r in (run.policy.rules if run.policy else []) if r.min_n]
    return max(ns) if ns else 30


def suppressed(minimum: int) -> str:
    """What a small cell shows instead of its figures: "suppressed (n < 30)" (a run document written before
    :mod:`auditkit.suppression`, whose small rows still carry their figures)."""
    return f"suppressed (n < {minimum})"


#: what a row suppressed by :mod:`auditkit.suppression` shows: small, or one that would reveal a small one
SUPPRESSED = "suppressed"


def withheld(row, minimum: int) -> str | None:
    """The text shown instead of a group row's figures: "suppressed" for a row :mod:`auditkit.suppression` took
    out, "suppressed (n < 30)" for a small row of an older run document, None for a row that is shown."""
    if getattr(row, "suppressed", False):
        return SUPPRESSED
    count = getattr(row, "count", None)
    if getattr(row, "sufficient", True) is False or (count is not None and count < minimum):
        return suppressed(minimum)
    return None
