"""The policy evaluation: one compact rules × scopes table in the body, every check in full in the appendix.

The compact table has one row per rule and one column per scope the checks were made in ("overall", then each
attribute or intersection); a cell shows the result (PASS / WARN / FAIL / INSUFFICIENT / N/A) with the observed
value in its unit (rates in %, gaps of rates in pp), its interval or "point estimate", and, where a rule is
checked group by group, each group's result. A rule checked only overall shows "overall", never "every
attribute and group". Each requirement a rule cites is listed once below the table, numbered.
"""

from __future__ import annotations

from ..rundoc import Check, RunDocument
from ..suppression import WITHHELD_CHECK
from . import fmt
from .blocks import Cell, Heading, Paragraph, Section, Table
from .executive import interval_text, limit_text, rule_limit, value_text

#: the short result words of the compact table; a status not listed here shows in capitals
STATUS_WORDS = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "insufficient_data": "INSUFFICIENT",
                "not_applicable": "N/A"}
#: which result of several in one cell is shown first (the worst)
SEVERITY = {"fail": 0, "warn": 1, "insufficient_data": 2, "pass": 3, "not_applicable": 4}
DECIDING = (
    "How a result is decided: when the observed value has a confidence interval, the rule passes only if the "
    "whole interval lies within the bound and takes the rule's severity only if the whole interval lies "
    "outside it. When the interval straddles the bound, the data cannot settle the question and the rule's "
    "“if straddles” setting decides (usually a warning). Without an interval the observed value (a point "
    "estimate) decides. A group with fewer records than the rule's minimum gives INSUFFICIENT DATA.")


def status_word(status: str) -> str:
    return STATUS_WORDS.get(status, status.replace("_", " ").upper())


def scope_of(check: Check) -> str:
    """The column of the compact table a check belongs to: its attribute, or "overall"."""
    return check.attribute or "overall"


def _observed(run: RunDocument, c: Check) -> str:
    if c.status == "insufficient_data":
        return "n = " + fmt.count(c.n) if c.n is not None else "no value"
    if c.note == WITHHELD_CHECK:
        return WITHHELD_CHECK
    if fmt.missing(c.value):
        return "no value"
    return f"{value_text(c.metric, c.value)} {interval_text(run, c)}"


def cell(run: RunDocument, checks: list[Check]) -> Cell:
    """One cell of the compact table: the worst result first, with the value(s) it rests on."""
    if not checks:
        return Cell(fmt.DASH, "muted")
    checks = sorted(checks, key=lambda c: SEVERITY.get(c.status, 9))
    worst = checks[0].status
    if len(checks) == 1 and checks[0].group is None:
        return Cell(status_word(worst), f"{worst} result", sub=_observed(run, checks[0]))
    sub = "; ".join(f"{c.group or 'overall'}: {status_word(c.status)} {_observed(run, c)}" for c in checks)
    return Cell(status_word(worst), f"{worst} result", sub=sub)


def compact_rows(run: RunDocument) -> tuple[list[str], list[list[Cell]], list[str]]:
    """(scope columns, rows, numbered requirements) of the compact table."""
    scopes = list(dict.fromkeys(["overall"] * any(c.attribute is None for c in run.checks)
                                + [scope_of(c) for c in run.checks]))
    rules = run.policy.rules if run.policy else []
    order = list(dict.fromkeys([r.id for r in rules] + [c.rule for c in run.checks]))
    requirements: list[str] = []
    rows = []
    for rule_id in order:
        rule = next((r for r in rules if r.id == rule_id), None)
        checks = [c for c in run.checks if c.rule == rule_id]
        requirement = rule.requirement if rule else (checks[0].requirement if checks else "")
        if requirement not in requirements:
            requirements.append(requirement)
        ref = requirements.index(requirement) + 1
        bound = rule_limit(rule.metric, rule.bound) if rule else (checks[0].bound if checks else "")
        name = rule_id.split("/", 1)[-1]
        metric = rule.metric if rule else (checks[0].metric if checks else "")
        rows.append([Cell(name, "rule", sub=f"{metric}; {bound}; [{ref}]")]
                    + [cell(run, [c for c in checks if scope_of(c) == s]) for s in scopes])
    return scopes, rows, requirements


def policy(section: Section, run: RunDocument, **_) -> None:
    pol = run.policy
    section.blocks.append(Paragraph(
        f"Policy “{(pol.title or pol.name) if pol else fmt.DASH}” ({(pol.source if pol else None) or fmt.DASH}, "
        f"SHA-256 {fmt.short_hash(pol.sha256 if pol else None)}). One row per rule, one column per scope it was "
        f"checked in; a dash means the rule does not apply there. Every check, with its explanation, is listed in "
        f"the appendix."))
    section.blocks.append(Paragraph(DECIDING, "callout small"))
    scopes, rows, requirements = compact_rows(run)
    if rows:
        section.blocks.append(Table(["Rule"] + [s if s != "overall" else "Overall" for s in scopes], rows,
                                    caption="Results, rules × scopes", css="compact"))
    if requirements:
        section.blocks.append(Heading("Requirements cited"))
        section.blocks.append(Table(["#", "Requirement"], [[Cell(f"[{i}]", "num"), Cell(r)]
                                                           for i, r in enumerate(requirements, 1)], css="refs"))


def checks_appendix(section: Section, run: RunDocument, **_) -> None:
    """Every rule and every check, with its bound, decision and explanation (the appendix)."""
    pol = run.policy
    meaning = {}                  # a check's explanation: "<what the metric is>; <direction, limit>; <why>"
    for c in run.checks:
        if c.explanation and c.rule not in meaning:
            meaning[c.rule] = c.explanation.split("; ")[0]
    rows = []
    for r in pol.rules if pol else []:
        where = []
        if r.scope.attributes is not None:
            where.append("attributes: " + ", ".join(r.scope.attributes) if r.scope.attributes else "overall only")
        if r.scope.groups:
            where.append("groups: " + ", ".join(r.scope.groups))
        scope = "; ".join(where) or "overall and every attribute"
        rows.append([Cell(r.id, "mono", sub=meaning.get(r.id, "")), Cell(r.metric, "mono", sub=scope),
                     Cell(rule_limit(r.metric, r.bound)), Cell(r.severity), Cell(fmt.count(r.min_n), "num"),
                     Cell(f"straddles → {r.if_straddles}", sub=f"too few → {r.when_insufficient}")])
    if rows:
        section.blocks.append(Table(["Rule", "Metric and scope", "Bound", "Severity", "Min n", "Undecided cases"],
                                    rows, caption="Rules", css="small rules"))
    rows = []
    for c in run.checks:
        where = " / ".join(x for x in (c.attribute, c.group) if x) or "overall"
        rows.append([Cell(c.rule.split("/", 1)[-1], "mono"),
                     Cell(where, sub=f"n = {fmt.count(c.n)}" if c.n is not None else ""),
                     Cell(value_text(c.metric, c.value), "num",
                          sub=WITHHELD_CHECK if c.note == WITHHELD_CHECK else interval_text(run, c)),
                     Cell(limit_text(run, c)),
                     Cell(status_word(c.status), f"{c.status} result", sub=f"by {c.decided_by}"),
                     Cell(_why(c), "note")])
    section.blocks.append(Table(["Rule", "Where", "Observed", "Bound", "Result", "Why"], rows,
                                caption="Every check, one per rule and scope", css="checks small"))


def _why(check: Check) -> str:
    """The decision part of a check's explanation (its last clause; what the metric is stands once, in the
    rules table above): "its confidence interval straddles the limit", "not decided: 12 positives, ..."."""
    text = check.explanation or ""
    return text.rsplit("; ", 1)[-1] if "; " in text else text
