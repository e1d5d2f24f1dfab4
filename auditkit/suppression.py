"""Suppression that holds: the small cells of a run, and the cells that would reveal them, taken out of everything
public (``run.json``, ``findings.json``, the report), and kept only in the private ``suppressed_cells.json``.

:func:`suppress` transforms the run document (the JSON-safe dict the runner assembles) into a public copy and the
withheld values.

**Cells.** Every count the run document shows is the number of records of one split (``test``, ``train``, the
non-members) that satisfy some conditions: the value of each sensitive attribute it names and, for training cells,
the record's label. A fairness group row ``sex & age_band = Female & 55+`` is the cell (test, sex=Female,
age_band=55+); an exposure row of the privacy audit is (train, sex=Female); a data-quality row (train, sex=Female,
label=yes); a cell of the drivers (train, sex=Female, age_band=55+, label=yes); the count of records without a
value (test, sex=unknown); a split's size is the cell with no conditions. Within a split the cells form a lattice,
and every cell equals the sum of its children along any attribute it leaves open (Female = Female & 55+ +
Female & <55; a split = the sum of an attribute's groups): these are all the sums an attacker can subtract.

**Primary suppression.** A cell with more than 0 and fewer than ``min_n`` records (the fairness audit's minimum
group size) is suppressed, and so is a group the privacy audit left out itself (its attack entry is None).

**Complementary suppression.** A suppressed cell is *derivable* when the shown cells and sums determine it: with
``A`` the sums' coefficients over the cells that are not shown, cell ``s`` is determined exactly when every vector
of the null space of ``A`` is 0 at ``s`` (the cells shown are moved to the right-hand side); every part of a cell
shown as 0 counts as shown (counts are not negative). While some suppressed
cell is derivable, the next cell is suppressed: among the shown cells that share a sum with a derivable one, the
most specific (most conditions: intersections before marginals), then the smallest. Split sizes are never
suppressed. This covers the known attacks: one small cell in a table with a shown total (the split's size minus
the other groups), intersections summing to a marginal (Female & <55 + Female & 55+ = Female), chains of them
across tables, and the count of records of unknown category.

**What a suppressed cell loses.** Every entry that shows it: the group row keeps its name and ``suppressed: true``
(no count, no rate, no interval); a per-group attack of the privacy audit becomes None; a disparity in which a
suppressed group took part loses its statistics (status ``insufficient_data``; the comparisons between shown
groups stay); a policy check on a suppressed group, or on a withheld disparity, keeps its verdict but loses its
value, interval and n. Rates count as well as counts: a rate with its interval gives away its denominator.

**Protected, and not.** Protected: the counts of the suppressed cells against every sum above, and each rate-type
count of a row (positives, selections, true positives, ...): each forms a layer with the same sums and the same
cells suppressed, and adding any vector of the null space to both a row's count and one of its parts keeps every
identity of the row, so no layer pins a value the count layer does not. Not protected: bounds (a suppressed cell
is known to be below ``min_n`` only from the primary rule, and 0 ≤ cell ≤ its shown parent); the verdict of a
check (pass / warn / fail says on which side of the bound the value lies); the tokens of individual records with
their groups in the lists of drivers, suspects and explanations (one record each, never a count); the
surrogate gap (mean predicted probabilities) of a driver analysis between two suppressed groups.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

SCHEMA = "auditkit.suppressed/1"
#: the private file that keeps the withheld values (mode 0600, beside flagged_records.csv)
FILE = "suppressed_cells.json"
#: the separator of an intersection's group labels ("Female & 55+"), as in :mod:`auditkit.audits.fairness.metrics`
SEPARATOR = " & "
LABEL = "label"
WITHHELD_DISPARITY = "withheld: suppressed groups took part in this comparison"
WITHHELD_CHECK = "value withheld: it rests on suppressed groups"
#: a count in a check's explanation ("21 records", "12 positives"), replaced when the check is withheld
COUNT_IN_WORDS = re.compile(r"\b\d[\d,]*\s+(records in the smaller class|predicted positives|records|positives|"
                            r"negatives)\b")
#: largest number of lattice cells per split handled exactly (beyond it only primary suppression is applied)
MAX_CELLS = 20_000

Point = tuple[str, frozenset]          # (split, frozenset of (dimension, value))


@dataclass
class Source:
    """An entry of the run document (``path``) that shows the counts of ``points``; None: the count is not
    known here (a group the privacy audit already left out)."""

    kind: str
    path: tuple
    points: dict[Point, int | None]


@dataclass
class Plan:
    """What the document shows: the entries showing cells, the split sizes (never suppressed) and the cells
    suppressed from the start."""

    sources: list[Source] = field(default_factory=list)
    fixed: dict[Point, int] = field(default_factory=dict)
    given: set[Point] = field(default_factory=set)


def _conditions(attribute: str, group: str, columns: list[str] | None = None) -> frozenset | None:
    """The cell conditions of ``group`` of ``attribute`` (an intersection's label split at " & "); None when the
    label does not split into one value per column."""
    columns = list(columns) if columns else attribute.split(SEPARATOR)
    values = [group] if len(columns) == 1 else str(group).split(SEPARATOR)
    return frozenset(zip(columns, values, strict=True)) if len(values) == len(columns) else None


def _split_of(run: dict, total, preferred: str) -> str | None:
    """The name of the split whose size is ``total`` (``preferred`` first); None when none has that size."""
    rows = {s["name"]: s["rows"] for s in (run.get("data") or {}).get("splits", [])}
    if rows.get(preferred) == total:
        return preferred
    return next((name for name, n in rows.items() if n == total), None)


def collect(run: dict) -> Plan:
    """Every entry of the run document that shows a count of records of some cell."""
    plan = Plan()
    data = run.get("data") or {}
    for s in data.get("splits", []):
        plan.fixed[(s["name"], frozenset())] = int(s["rows"])
    for k, s in enumerate(data.get("sensitive", [])):
        for split, n in (s.get("unknown") or {}).items():
            plan.sources.append(Source("unknown", ("data", "sensitive", k, "unknown", split),
                                       {(split, frozenset({(s["attribute"], "unknown")})): int(n)}))
    columns: dict[str, list[str]] = {}
    f = run.get("fairness")
    if f:
        for t, table in enumerate(f.get("groups", [])):
            columns[table["attribute"]] = table.get("columns") or [table["attribute"]]
            for i, row in enumerate(table["groups"]):
                cond = _conditions(table["attribute"], row["group"], columns[table["attribute"]])
                if cond is not None and row.get("count") is not None:
                    plan.sources.append(Source("fairness_row", ("fairness", "groups", t, "groups", i),
                                               {("test", cond): int(row["count"])}))
        performance = f.get("performance") or {}
        for a, block in enumerate(performance.get("groups", [])):
            for i, row in enumerate(block.get("rows", [])):
                cond = _conditions(block["attribute"], row["group"], columns.get(block["attribute"]))
                if cond is not None and row.get("n") is not None:
                    plan.sources.append(Source("performance_row", ("fairness", "performance", "groups", a, "rows", i),
                                               {("test", cond): int(row["n"])}))
        for a, att in enumerate(f.get("attributions", [])):
            for i, cell in enumerate(att.get("cells", [])):
                cond = _conditions(att["attribute"], cell["group"], columns.get(att["attribute"]))
                if cond is not None and cell.get("count") is not None:
                    plan.sources.append(Source("attribution_cell", ("fairness", "attributions", a, "cells", i),
                                               {("train", cond | {(LABEL, str(cell["label"]))}): int(cell["count"])}))
    p = run.get("privacy")
    if p:
        members = _split_of(run, p.get("n_members"), "train") or "members"
        others = _split_of(run, p.get("n_nonmembers"), "holdout") or "nonmembers"
        for split, n in ((members, p.get("n_members")), (others, p.get("n_nonmembers"))):
            if n is not None:
                plan.fixed.setdefault((split, frozenset()), int(n))
        exposure_counts = {}
        for e, block in enumerate(p.get("exposure", [])):
            for i, row in enumerate(block.get("groups", [])):
                cond = _conditions(block["attribute"], row["group"], columns.get(block["attribute"]))
                if cond is not None and row.get("count") is not None:
                    exposure_counts[cond] = int(row["count"])
                    plan.sources.append(Source("exposure_row", ("privacy", "exposure", e, "groups", i),
                                               {(members, cond): int(row["count"])}))
        for attr, by_attack in (p.get("attacks_by_group") or {}).items():
            for attack, groups in by_attack.items():
                for g, entry in groups.items():
                    cond = _conditions(attr, g, columns.get(attr))
                    if cond is None:
                        continue
                    if entry is None:           # left out by the privacy audit: small among the non-members,
                        plan.given.add((others, cond))      # or among the members too
                        if exposure_counts.get(cond, 0) < 1 or cond not in exposure_counts:
                            plan.given.add((members, cond))
                        continue
                    plan.sources.append(Source("attack", ("privacy", "attacks_by_group", attr, attack, g),
                                               {(members, cond): entry.get("n_members"),
                                                (others, cond): entry.get("n_nonmembers")}))
    q = run.get("data_quality")
    if q:
        split = _split_of(run, q.get("n_records"), "train") or "quality"
        if q.get("n_records") is not None:
            plan.fixed.setdefault((split, frozenset()), int(q["n_records"]))
        for i, row in enumerate(q.get("by_group", [])):
            cond = _conditions(row["attribute"], row["group"], columns.get(row["attribute"]))
            if cond is not None and row.get("count") is not None:
                plan.sources.append(Source("quality_row", ("data_quality", "by_group", i),
                                           {(split, cond | {(LABEL, str(row["label"]))}): int(row["count"])}))
    return plan


# ---- the attacker's sums, and what they determine ----

def lattice(points: Iterable[Point]) -> tuple[list[Point], np.ndarray]:
    """The cells of every split spanned by ``points`` (each dimension's values seen, or open) and the matrix of
    the sums between them: one row per cell and open dimension, ``cell − Σ children = 0``."""
    by_split: dict[str, dict[str, set]] = {}
    for split, cond in points:
        dims = by_split.setdefault(split, {})
        for d, v in cond:
            dims.setdefault(d, set()).add(v)
    cells: list[Point] = []
    rows: list[tuple[Point, list[Point]]] = []
    for split, dims in sorted(by_split.items()):
        names = sorted(dims)
        domains = [sorted(dims[d]) + [None] for d in names]
        if int(np.prod([len(x) for x in domains])) > MAX_CELLS:
            continue
        for combo in itertools.product(*domains):
            cond = frozenset((d, v) for d, v in zip(names, combo, strict=True) if v is not None)
            cells.append((split, cond))
            for d, v in zip(names, combo, strict=True):
                if v is None:
                    rows.append(((split, cond), [(split, cond | {(d, w)}) for w in sorted(dims[d])]))
    index = {c: i for i, c in enumerate(cells)}
    A = np.zeros((len(rows), len(cells)))
    for r, (parent, children) in enumerate(rows):
        A[r, index[parent]] = 1.0
        for c in children:
            A[r, index[c]] -= 1.0
    return cells, A


def derivable(cells: list[Point], A: np.ndarray, known: set[Point], targets: Iterable[Point]) -> set[Point]:
    """The ``targets`` (cells not shown) that the sums ``A`` determine from the ``known`` cells: those at which
    every vector of the null space of ``A`` restricted to the unknown cells is 0."""
    unknown = [i for i, c in enumerate(cells) if c not in known]
    pos = {cells[i]: k for k, i in enumerate(unknown)}
    targets = [t for t in targets if t in pos]
    if not targets:
        return set()
    from scipy.linalg import null_space

    sub = A[:, unknown]
    sub = sub[np.any(sub != 0, axis=1)]
    if sub.shape[0] == 0:
        return set()
    kernel = null_space(sub)
    return {t for t in targets if kernel.shape[1] == 0 or np.all(np.abs(kernel[pos[t]]) < 1e-8)}


def choose(plan: Plan, min_n: int) -> tuple[set[Point], set[Point]]:
    """The suppressed cells: ``(primary, all)``; ``all`` leaves no suppressed cell derivable by the sums."""
    counts: dict[Point, int] = {}
    for s in plan.sources:
        for pt, n in s.points.items():
            if n is not None:
                counts.setdefault(pt, n)
    primary = {pt for pt, n in counts.items() if 0 < n < min_n and pt not in plan.fixed} | set(plan.given)
    hidden = set(primary)
    cells, A = lattice(set(counts) | set(plan.fixed) | hidden)
    while True:
        shown = {pt for s in plan.sources if not any(p in hidden for p in s.points) for pt in s.points}
        known = (shown | set(plan.fixed)) - hidden
        zeros = [pt for pt in known if counts.get(pt, plan.fixed.get(pt)) == 0]
        known |= {c for c in cells if any(c[0] == z[0] and z[1] <= c[1] for z in zeros)}   # parts of 0 are 0
        leaks = derivable(cells, A, known, hidden)
        if not leaks:
            return primary, hidden
        index = {c: i for i, c in enumerate(cells)}
        related = set()
        for pt in leaks:
            for r in np.nonzero(A[:, index[pt]])[0]:
                related |= {cells[i] for i in np.nonzero(A[r])[0]}
        candidates = sorted((pt for pt in shown - set(plan.fixed) - hidden if pt in related and counts.get(pt)),
                            key=lambda pt: (-len(pt[1]), counts.get(pt, 0), pt[0], sorted(pt[1])))
        if not candidates:
            return primary, hidden
        hidden.add(candidates[0])


# ---- the public document ----

def _get(doc, path: tuple):
    for key in path:
        doc = doc[key]
    return doc


def suppress(run: dict, min_n: int | None = None) -> tuple[dict, dict]:
    """The public run document and the withheld values: ``(public, withheld)``. ``min_n``: the fewest records a
    shown cell may have (default: the fairness audit's minimum group size, else 30). ``withheld`` (the content
    of the private ``suppressed_cells.json``) lists, for every entry changed, its path and original value; its
    ``cells`` is empty when nothing was suppressed. ``run`` is not changed."""
    if min_n is None:
        tables = (run.get("fairness") or {}).get("groups") or []
        min_n = int(tables[0]["min_group_size"]) if tables else 30
    public = copy.deepcopy(run)
    plan = collect(run)
    primary, hidden = choose(plan, min_n)
    withheld = {"schema": SCHEMA, "report_id": run.get("report_id"), "min_n": min_n, "entries": [],
                "cells": [{"split": s, "conditions": dict(sorted(c)), "primary": (s, c) in primary}
                          for s, c in sorted(hidden, key=lambda pt: (pt[0], sorted(pt[1])))]}

    def keep(path: tuple, why: str) -> None:
        withheld["entries"].append({"path": "/".join(str(k) for k in path), "why": why,
                                    "original": copy.deepcopy(_get(run, path))})

    hidden_tests: set[tuple[str, str]] = set()          # (attribute, group) of the fairness rows hidden
    hidden_privacy: set[tuple[str, str]] = set()
    for s in plan.sources:
        pts = [pt for pt in s.points if pt in hidden]
        if not pts:
            continue
        why = "primary" if any(pt in primary for pt in pts) else "complementary"
        keep(s.path, why)
        parent, last = _get(public, s.path[:-1]), s.path[-1]
        if s.kind == "unknown":
            del parent[last]
            listed = _get(public, s.path[:-2]).setdefault("unknown_suppressed", [])
            listed.append(last)
        elif s.kind == "attack":
            parent[last] = None
            hidden_privacy.add((s.path[2], s.path[4]))
        elif s.kind == "quality_row":
            row = parent[last]
            parent[last] = {"attribute": row["attribute"], "group": row["group"], "label": row["label"],
                            "suppressed": True}
        elif s.kind == "attribution_cell":
            row = parent[last]
            parent[last] = {"group": row["group"], "label": row["label"], "suppressed": True}
        else:
            parent[last] = {"group": parent[last]["group"], "suppressed": True}
            if s.kind == "fairness_row":
                hidden_tests.add((_get(public, s.path[:2])[s.path[2]]["attribute"], parent[last]["group"]))
            elif s.kind == "exposure_row":
                hidden_privacy.add((_get(public, s.path[:2])[s.path[2]]["attribute"], parent[last]["group"]))
    for (split, cond) in plan.given:
        if split != "test":
            for d, v in cond:
                if len(cond) == 1:
                    hidden_privacy.add((d, v))
    tainted = _disparities(public, hidden_tests, keep)
    _exposure_gaps(public, keep)
    _gaps(public, hidden_tests, keep)
    _checks(public, hidden_tests, hidden_privacy, tainted, keep)
    _history(public, {a for a, _ in tainted}, hidden_tests | hidden_privacy, keep)
    return public, withheld


def _history(public: dict, attributes: set[str], groups: set[tuple[str, str]], keep) -> None:
    """Earlier audits' key figures of a scope withheld now (``label (attribute)`` of a withheld disparity,
    ``label (attribute/group)`` of a suppressed group) are left out of the history shown."""
    scopes = {f"({a})" for a in attributes} | {f"({a}/{g})" for a, g in groups}
    for k, row in enumerate(public.get("history") or []):
        figures = row.get("figures") or {}
        gone = [name for name in figures if any(name.endswith(s) for s in scopes)]
        if gone:
            keep(("history", k, "figures"), "scopes withheld")
            row["figures"] = {name: v for name, v in figures.items() if name not in gone}


def _disparities(public: dict, hidden: set[tuple[str, str]], keep) -> set[tuple[str, str]]:
    """Suppressed groups out of the disparities: their values and comparisons removed, ``excluded`` saying
    "suppressed"; a disparity they took part in loses its statistics. Returns the (attribute, metric) withheld."""
    tainted = set()
    for attr, items in ((public.get("fairness") or {}).get("disparities") or {}).items():
        gone = {g for a, g in hidden if a == attr}
        if not gone:
            continue
        for k, d in enumerate(items):
            path = ("fairness", "disparities", attr, k)
            keep(path, "groups suppressed")
            impact = [x.get("group") for x in (d.get("impact_ratio"), d.get("impact_ratio_max")) if x] + \
                     [x.get("compared_to") for x in (d.get("impact_ratio"), d.get("impact_ratio_max")) if x]
            took_part = gone & set(d.get("groups", []) + [d.get("reference"), d.get("worst_group"),
                                                          d.get("best_group")] + impact)
            for g in gone:
                (d.get("values") or {}).pop(g, None)
                (d.get("to_reference") or {}).pop(g, None)
                d.setdefault("excluded", {})[g] = "suppressed"
            d["groups"] = [g for g in d.get("groups", []) if g not in gone]
            if d.get("reference") in gone:
                d["to_reference"] = {}
            if d.get("reason") and any(g in d["reason"] for g in gone):
                d["reason"] = WITHHELD_DISPARITY
            if took_part:
                tainted.add((attr, d["metric"]))
                d.update(status="insufficient_data", reason=WITHHELD_DISPARITY, difference=None, ratio=None,
                         difference_ci=[None, None], ratio_ci=[None, None], worst_group=None, best_group=None,
                         impact_ratio=None, impact_ratio_max=None)
    return tainted


def _exposure_gaps(public: dict, keep) -> None:
    """An exposure gap across groups one of which is suppressed is withheld."""
    for e, block in enumerate((public.get("privacy") or {}).get("exposure") or []):
        if any(row.get("suppressed") for row in block.get("groups", [])):
            keep(("privacy", "exposure", e, "gap"), "groups suppressed")
            block["gap"] = {}


def _gaps(public: dict, hidden: set[tuple[str, str]], keep) -> None:
    """Gaps between groups one of which is suppressed: the decision gap of a driver analysis and the flagged
    gaps' values are withheld."""
    f = public.get("fairness") or {}
    for a, att in enumerate(f.get("attributions") or []):
        if {(att["attribute"], att.get("disadvantaged")), (att["attribute"], att.get("advantaged"))} & hidden:
            if att.get("hard_gap") is not None:
                keep(("fairness", "attributions", a, "hard_gap"), "groups suppressed")
                att["hard_gap"] = None
    for k, gap in enumerate(f.get("flagged_gaps") or []):
        if {(gap.get("attribute"), gap.get("disadvantaged")), (gap.get("attribute"), gap.get("advantaged"))} & hidden:
            keep(("fairness", "flagged_gaps", k), "groups suppressed")
            gap.update({k2: None for k2 in ("gap", "gap_ci", "actual_gap_after") if k2 in gap})
            if "predicted_gap_after" in gap:
                gap["predicted_gap_after"] = {}


def _checks(public: dict, tests: set, privacy: set, tainted: set, keep) -> None:
    """A check on a suppressed group, or on a withheld disparity, keeps its verdict and loses its numbers."""
    for k, c in enumerate(public.get("checks") or []):
        attr, group, metric = c.get("attribute"), c.get("group"), c.get("metric", "")
        parts = metric.split(".")
        if parts[0] == "fairness":        # a suppressed group, or a disparity (or comparison) that was withheld
            hit = ((attr, group) in tests or (attr, parts[1] if len(parts) > 1 else "") in tainted
                   or any((attr, g) in tests for g in c.get("groups") or []))   # a comparison of suppressed groups
        elif parts[0] == "privacy":
            gaps = {b["attribute"] for b in (public.get("privacy") or {}).get("exposure") or [] if not b.get("gap")}
            hit = (attr, group) in privacy if group is not None else ("exposure_gap" in metric and attr in gaps)
        else:
            hit = False
        if hit:
            keep(("checks", k), "groups suppressed")
            c.update(value=None, interval=None, n=None, compared_with=None, note=WITHHELD_CHECK)
            if c.get("explanation"):      # "not decided: 21 records, fewer than ..." names the suppressed count
                c["explanation"] = COUNT_IN_WORDS.sub(r"a suppressed number of \1", c["explanation"])
