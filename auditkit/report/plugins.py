"""Sections of third-party plugins' findings (``run.plugins``: plugin name → its JSON-safe findings).

auditkit does not know what such findings mean, so it shows them as the plugin wrote them, one section per
plugin under the plugin's name: its scalar findings (numbers, strings, booleans, lists of scalars) as a
label/value table, and each list of flat records (objects whose values are scalars) as a table of its own,
at most :data:`MAX_ROWS` rows with the count of those left out. Other nested values are named, not shown.
Every string stays raw: the template escapes it (a plugin's ``<script>`` is printed, never run).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import fmt
from .blocks import Cell, Paragraph, Section, Table, kv

if TYPE_CHECKING:
    from ..rundoc import RunDocument

#: the most rows of one list shown (records) or items joined (a list of scalars); the rest are counted
MAX_ROWS = 50
#: the most columns of a table of records; further keys are counted in the table's note
MAX_COLUMNS = 10


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, str | int | float | bool)


def _text(v: Any) -> str:
    """A scalar as the report prints it: numbers with up to four significant digits, booleans as yes/no,
    a missing value as a dash."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return fmt.count(v)
    if isinstance(v, float):
        return fmt.DASH if fmt.missing(v) else f"{v:.4g}"
    return fmt.DASH if v is None else str(v)


def _joined(values: list) -> str:
    """A list of scalars, the first :data:`MAX_ROWS` joined by commas, the rest counted."""
    shown = ", ".join(_text(v) for v in values[:MAX_ROWS])
    more = len(values) - MAX_ROWS
    return shown + (f" … and {more} more" if more > 0 else "") if values else "none"


def _records(key: str, rows: list[dict]) -> Table:
    """A table of flat records: one column per key (in order of first appearance), the first
    :data:`MAX_ROWS` rows."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    shown = columns[:MAX_COLUMNS]
    notes = []
    if len(rows) > MAX_ROWS:
        notes.append(f"The first {MAX_ROWS} of {fmt.count(len(rows))} records are shown.")
    if len(columns) > len(shown):
        notes.append(f"{len(columns) - len(shown)} further fields are not shown: {', '.join(columns[len(shown):])}.")
    body = [[Cell(_text(r.get(c)), "num" if isinstance(r.get(c), int | float) else "") for c in shown]
            for r in rows[:MAX_ROWS]]
    return Table(shown, body, caption=key, note=" ".join(notes), css="small")


def plugin_section(section: Section, run: RunDocument, *, name: str, findings: dict[str, Any], **_) -> None:
    """Fill ``section`` with ``findings``, those of the third-party plugin ``name`` (``run.plugins[name]``)."""
    section.blocks.append(Paragraph(
        f"Findings of the third-party audit plugin “{name}”, shown as the plugin wrote them: auditkit does not "
        "interpret them.", "note"))
    pairs, tables, nested = [], [], []
    for key, value in findings.items():
        if _scalar(value):
            pairs.append((key, _text(value)))
        elif isinstance(value, list) and all(_scalar(v) for v in value):
            pairs.append((key, _joined(value)))
        elif isinstance(value, list) and all(isinstance(v, dict) and all(_scalar(x) for x in v.values())
                                             for v in value):
            tables.append(_records(key, value))
        else:
            nested.append(key)
    if pairs:
        section.blocks.append(kv(pairs, caption="Findings"))
    section.blocks.extend(tables)
    if nested:
        section.blocks.append(Paragraph("Nested values not shown in the report: " + ", ".join(nested) + ".", "small"))
    if not (pairs or tables or nested):
        section.blocks.append(Paragraph("The plugin recorded no findings."))
