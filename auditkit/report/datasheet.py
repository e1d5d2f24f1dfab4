"""The datasheet section: the label's definition, the population, the model's input features (kind, which are
sensitive, which may stand in for something else such as the site) with their missing values per split, and
the uses the model must not be put to.

Reads the run document's ``data.features`` (:func:`auditkit.assemble.feature_rows`), ``data.label_definition``
and ``scope.population`` / ``scope.out_of_scope``; an older run without them gets a sentence saying so.
"""

from __future__ import annotations

from ..rundoc import RunDocument
from . import fmt
from .blocks import Bullets, Cell, Heading, Paragraph, Section, Table


def datasheet(section: Section, run: RunDocument, **_) -> None:
    d, sc = run.data, run.scope
    section.blocks.append(Paragraph(
        f"Label “{d.target}”: {d.label_definition or 'its definition was not stated in the configuration'}. "
        f"Population: {sc.population or 'not stated'}."))
    splits = [s.name for s in d.splits]
    rows_of = {s.name: s.rows for s in d.splits}
    sensitive = {s.attribute for s in d.sensitive}
    if d.features:
        rows = []
        for f in d.features:
            note = "sensitive" if f.name in sensitive else "source of a sensitive attribute" if f.sensitive else ""
            rows.append([Cell(f.name, "mono"), Cell(f.kind), Cell(note), Cell(f.proxy or "", "note")]
                        + [Cell(_missing(f.missing.get(n, 0), rows_of.get(n)), "num") for n in splits])
        section.blocks.append(Table(["Feature", "Kind", "Sensitive", "May stand in for"]
                                    + [f"Missing in {n}" for n in splits], rows, css="datasheet",
                                    caption="Model input features",
                                    note="Missing: records of the split with no value in the column as read (the "
                                         "model's featurizer fills them in, e.g. with the training median and a "
                                         "missing-value indicator). A feature that stands in for a sensitive "
                                         "attribute or for the site can carry a disparity even when the attribute "
                                         "itself is not an input."))
    else:
        section.blocks.append(Paragraph("This run does not record the feature list (it was made before the "
                                        "datasheet was part of the run document).", "note"))
    section.blocks.append(Heading("Uses the model must not be put to"))
    if sc.out_of_scope:
        section.blocks.append(Bullets(list(sc.out_of_scope)))
    else:
        section.blocks.append(Paragraph("None were stated (report.out_of_scope in the configuration): the model "
                                        "owner should list them before deployment.", "note"))


def _missing(n: int, rows: int | None) -> str:
    """"611 (66 %)"; "0" when nothing is missing."""
    if not n:
        return "0"
    return f"{fmt.count(n)} ({fmt.pct(n / rows)})" if rows else fmt.count(n)
