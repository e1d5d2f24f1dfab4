"""Suppression that holds (:mod:`auditkit.suppression`), tested by an attacker.

The attacker here is written independently of the module: it reads every count a reader of the public run
document sees (group tables, split sizes, unknown-category counts, exposure, attacks, data quality, the drivers'
training cells), builds every sum between them (a cell is the sum of its parts along any attribute or label it
leaves open; counts are not negative) and, for each suppressed cell, asks a linear program for the smallest and
the largest count the shown figures allow. A cell whose smallest and largest agree has been derived. The crafted
tables show that the attacker does derive what naive suppression leaves (one small cell in a table with a shown
total; an intersection summing to its marginals; an unknown-category count) and that :func:`suppress` does not.
"""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
from scipy.optimize import linprog

from auditkit.suppression import FILE, SEPARATOR, suppress

Cell = tuple[str, frozenset]


def _cond(attribute: str, group: str) -> frozenset:
    columns = attribute.split(SEPARATOR)
    values = [group] if len(columns) == 1 else group.split(SEPARATOR)
    return frozenset(zip(columns, values, strict=True))


def shown_counts(doc: dict) -> dict[Cell, int]:
    """Every count the public document shows, as cells (split, conditions)."""
    out: dict[Cell, int] = {}
    data = doc.get("data") or {}
    for s in data.get("splits", []):
        out[(s["name"], frozenset())] = s["rows"]
    for s in data.get("sensitive", []):
        for split, n in (s.get("unknown") or {}).items():
            out[(split, frozenset({(s["attribute"], "unknown")}))] = n
    f = doc.get("fairness") or {}
    for table in f.get("groups", []):
        for g in table["groups"]:
            if g.get("count") is not None:
                out[("test", _cond(table["attribute"], g["group"]))] = g["count"]
    for block in (f.get("performance") or {}).get("groups", []):
        for g in block.get("rows", []):
            if g.get("n") is not None:
                out[("test", _cond(block["attribute"], g["group"]))] = g["n"]
    for a in f.get("attributions", []):
        for c in a.get("cells", []):
            if c.get("count") is not None:
                out[("train", _cond(a["attribute"], c["group"]) | {("label", c["label"])})] = c["count"]
    p = doc.get("privacy") or {}
    for block in p.get("exposure", []):
        for g in block["groups"]:
            if g.get("count") is not None:
                out[("train", _cond(block["attribute"], g["group"]))] = g["count"]
    for attr, by_attack in (p.get("attacks_by_group") or {}).items():
        for groups in by_attack.values():
            for g, a in groups.items():
                if a is not None:
                    out[("train", _cond(attr, g))] = a["n_members"]
                    out[("holdout", _cond(attr, g))] = a["n_nonmembers"]
    for row in (doc.get("data_quality") or {}).get("by_group", []):
        if row.get("count") is not None:
            out[("train", _cond(row["attribute"], row["group"]) | {("label", row["label"])})] = row["count"]
    return out


def attack(shown: dict[Cell, int], targets: list[Cell]) -> dict[Cell, tuple[float, float]]:
    """The smallest and largest count of each target cell that the shown counts allow (linear programs over
    every cell of each split's lattice: sums of parts, shown values fixed, counts ≥ 0)."""
    dims: dict[str, dict[str, set]] = {}
    for split, cond in list(shown) + list(targets):
        for d, v in cond:
            dims.setdefault(split, {}).setdefault(d, set()).add(v)
    cells: list[Cell] = []
    for split in {s for s, _ in list(shown) + list(targets)}:
        names = sorted(dims.get(split, {}))
        for combo in itertools.product(*[sorted(dims[split][d]) + [None] for d in names]):
            cells.append((split, frozenset((d, v) for d, v in zip(names, combo, strict=True) if v is not None)))
    index = {c: i for i, c in enumerate(cells)}
    rows, rhs = [], []
    for split, cond in cells:
        for d in set(dims.get(split, {})) - {k for k, _ in cond}:
            row = np.zeros(len(cells))
            row[index[(split, cond)]] = 1
            for v in dims[split][d]:
                row[index[(split, cond | {(d, v)})]] -= 1
            rows.append(row)
            rhs.append(0.0)
    for c, n in shown.items():
        row = np.zeros(len(cells))
        row[index[c]] = 1
        rows.append(row)
        rhs.append(float(n))
    A, b = np.array(rows), np.array(rhs)
    out = {}
    for t in targets:
        goal = np.zeros(len(cells))
        goal[index[t]] = 1
        low = linprog(goal, A_eq=A, b_eq=b, bounds=(0, None), method="highs")
        high = linprog(-goal, A_eq=A, b_eq=b, bounds=(0, None), method="highs")
        assert low.status == 0 and high.status == 0, "the shown counts are inconsistent: the attacker's model is wrong"
        out[t] = (low.fun, -high.fun)
    return out


def derived(public: dict, withheld: dict, original: dict) -> dict[Cell, float]:
    """The suppressed cells (``withheld["cells"]``) the attacker pins down from ``public``, with the value found;
    checks on the way that each true value (from ``original``) lies in the attacker's range, else the attacker's
    model of the document would be wrong."""
    truth = shown_counts(original)
    targets = [(c["split"], frozenset(c["conditions"].items())) for c in withheld["cells"]]
    ranges = attack(shown_counts(public), targets)
    found = {}
    for t, (low, high) in ranges.items():
        if t in truth:
            assert low - 1e-6 <= truth[t] <= high + 1e-6, (t, truth[t], low, high)
        if high - low < 0.5:
            found[t] = round(low)
    return found


def table(attribute: str, counts: dict[str, int], *, columns=None, unknown=()) -> dict:
    return {"attribute": attribute, "columns": columns or attribute.split(SEPARATOR), "min_group_size": 30,
            "groups": [{"group": g, "count": n, "metrics": {"count": n, "selection_rate": 0.5},
                        "intervals": {"selection_rate": [0.1, 0.9]}, "sufficient": n >= 30, "unknown": g in unknown}
                       for g, n in counts.items()]}


def document(tables: list[dict], *, test_rows: int, unknown: dict | None = None) -> dict:
    sensitive = [{"attribute": a, "how_obtained": "recorded", "unknown": {"test": n}} for a, n in
                 (unknown or {}).items()]
    return {"report_id": "AK-TEST", "data": {"splits": [{"name": "test", "rows": test_rows}], "sensitive": sensitive},
            "fairness": {"groups": tables, "disparities": {}}, "checks": []}


def naive(doc: dict, min_n: int = 30) -> tuple[dict, dict]:
    """Primary suppression only: small rows lose their figures, nothing else changes."""
    public = copy.deepcopy(doc)
    cells = []
    for t in public["fairness"]["groups"]:
        for i, g in enumerate(t["groups"]):
            if g["count"] < min_n:
                cells.append({"split": "test", "conditions": dict(_cond(t["attribute"], g["group"]))})
                t["groups"][i] = {"group": g["group"], "suppressed": True}
    return public, {"entries": [], "cells": cells}


def shown_groups(public: dict) -> dict[str, list[str]]:
    return {t["attribute"]: [g["group"] for g in t["groups"] if not g.get("suppressed")]
            for t in public["fairness"]["groups"]}


def test_one_small_cell_with_a_shown_total_leaks_under_naive_suppression_and_not_under_suppress():
    doc = document([table("site", {"A": 5, "B": 40, "C": 50})], test_rows=95)
    assert derived(*naive(doc), doc) == {("test", frozenset({("site", "A")})): 5}      # 95 − 40 − 50
    public, withheld = suppress(doc)
    assert derived(public, withheld, doc) == {}
    assert shown_groups(public) == {"site": ["C"]}               # the next smallest (B) suppressed with it
    assert public["fairness"]["groups"][0]["groups"][0] == {"group": "A", "suppressed": True}
    assert [e["original"]["count"] for e in withheld["entries"]] == [5, 40]
    assert [e["why"] for e in withheld["entries"]] == ["primary", "complementary"]
    assert doc["fairness"]["groups"][0]["groups"][0]["count"] == 5          # the input is not changed


def test_an_intersection_summing_to_its_marginals_is_suppressed_whole():
    """The heart example's numbers: Female & 55+ (21) is 57 − 36 and 110 − 89; in a 2 × 2 table with both
    marginals shown any one shown cell gives all four, so all four go and the marginals stay."""
    cells = {"Female & 55+": 21, "Female & <55": 36, "Male & 55+": 89, "Male & <55": 84}
    doc = document([table("sex", {"Female": 57, "Male": 173}), table("age_band", {"55+": 110, "<55": 120}),
                    table("sex & age_band", cells)], test_rows=230)
    leaks = derived(*naive(doc), doc)
    assert leaks == {("test", frozenset({("sex", "Female"), ("age_band", "55+")})): 21}
    public, withheld = suppress(doc)
    assert derived(public, withheld, doc) == {}
    assert shown_groups(public) == {"sex": ["Female", "Male"], "age_band": ["55+", "<55"], "sex & age_band": []}
    assert sorted(c["primary"] for c in withheld["cells"]) == [False, False, False, True]


def test_the_count_of_unknown_category_is_suppressed_with_its_group():
    """An unknown category of 3 records: its row and the data section's count of unknowns both go, and so does
    the next smallest group (else total − the others gives it)."""
    doc = document([table("sex", {"Female": 50, "Male": 60, "unknown": 3}, unknown=("unknown",))],
                   test_rows=113, unknown={"sex": 3})
    naive_public, naive_withheld = naive(doc)
    assert derived(naive_public, naive_withheld, doc)                   # the data section still says 3
    public, withheld = suppress(doc)
    assert derived(public, withheld, doc) == {}
    assert public["data"]["sensitive"][0]["unknown"] == {} and public["data"]["sensitive"][0]["unknown_suppressed"] \
        == ["test"]
    assert shown_groups(public) == {"sex": ["Male"]}


def test_a_disparity_a_suppressed_group_took_part_in_loses_its_statistics_and_its_checks_their_numbers():
    doc = document([table("site", {"A": 5, "B": 40, "C": 50})], test_rows=95)
    doc["fairness"]["disparities"] = {"site": [{
        "attribute": "site", "metric": "selection_rate", "status": "ok", "reference": "C", "groups": ["B", "C"],
        "values": {"B": 0.25, "C": 0.5}, "excluded": {"A": "5 records, fewer than 30"}, "difference": 0.25,
        "ratio": 0.5, "worst_group": "B", "best_group": "C", "difference_ci": [0.1, 0.4], "ratio_ci": [0.3, 0.8],
        "to_reference": {"B": {"difference": -0.25, "ratio": 0.5}}}]}
    doc["checks"] = [
        {"rule": "r", "metric": "fairness.selection_rate.difference", "attribute": "site", "group": None,
         "value": 0.25, "interval": [0.1, 0.4], "n": 40, "status": "fail"},
        {"rule": "r", "metric": "fairness.selection_rate", "attribute": "site", "group": "B", "value": 0.25,
         "interval": [0.1, 0.4], "n": 40, "status": "pass"},
        {"rule": "r", "metric": "privacy.loss.auc", "attribute": None, "group": None, "value": 0.5, "n": 95,
         "status": "pass"}]
    doc["history"] = [{"report_id": "AK-EARLIER", "figures": {"four-fifths impact ratio (site)": 0.5,
                                                              "accuracy gap (other)": 0.1}}]
    public, _ = suppress(doc)
    assert public["history"][0]["figures"] == {"accuracy gap (other)": 0.1}   # an earlier audit's figure of it too
    d = public["fairness"]["disparities"]["site"][0]
    assert d["status"] == "insufficient_data"
    assert d["reason"] == "withheld: suppressed groups took part in this comparison"
    assert (d["difference"], d["ratio"], d["values"], d["to_reference"]) == (None, None, {"C": 0.5}, {})
    assert d["excluded"] == {"A": "suppressed", "B": "suppressed"}          # "5 records" is gone
    first, second, third = public["checks"]
    assert first["status"] == "fail" and (first["value"], first["interval"], first["n"]) == (None, None, None)
    assert first["note"] == "value withheld: it rests on suppressed groups"
    assert second["value"] is None and second["status"] == "pass"
    assert third == doc["checks"][2]                                      # a check on shown figures is kept


def test_a_group_the_privacy_audit_left_out_takes_the_other_groups_attack_with_it():
    """The heart example: the privacy audit leaves out women (28 non-members); 184 non-members − 156 men would
    give it back, so the men's attack figures go too (their training count stays in the exposure table)."""
    attack_of = {"n_members": 397, "n_nonmembers": 156, "auc": 0.49}
    doc = {"data": {"splits": [{"name": "train", "rows": 506}, {"name": "holdout", "rows": 184}], "sensitive": []},
           "privacy": {"n_members": 506, "n_nonmembers": 184,
                       "exposure": [{"attribute": "sex", "groups": [
                           {"group": "Female", "count": 109, "sufficient": True, "flag_rate": 0.0},
                           {"group": "Male", "count": 397, "sufficient": True, "flag_rate": 0.005}],
                           "gap": {"flag_rate": 0.005}}],
                       "attacks_by_group": {"sex": {"loss": {"Female": None, "Male": attack_of}}}},
           "checks": [{"rule": "r", "metric": "privacy.loss.auc", "attribute": "sex", "group": "Male", "value": 0.49,
                       "n": 156, "status": "pass"}]}
    public, withheld = suppress(doc, 30)
    assert public["privacy"]["attacks_by_group"]["sex"]["loss"] == {"Female": None, "Male": None}
    assert public["privacy"]["exposure"] == doc["privacy"]["exposure"]
    assert public["checks"][0]["n"] is None and public["checks"][0]["value"] is None
    assert derived(public, withheld, doc) == {}
    assert FILE == "suppressed_cells.json"


@pytest.mark.parametrize("sizes", [(12, 31, 33, 40), (29, 29, 29, 100), (1, 200, 300, 2)])
def test_no_suppressed_cell_of_a_three_by_two_intersection_is_derivable(sizes):
    """Random-looking intersections of a 2-value and a 2-value attribute plus a third attribute's marginal: the
    attacker derives nothing from what suppress shows."""
    a, b, c, d = sizes
    cells = {"x & p": a, "x & q": b, "y & p": c, "y & q": d}
    doc = document([table("s", {"x": a + b, "y": c + d}), table("t", {"p": a + c, "q": b + d}),
                    table("s & t", cells)], test_rows=a + b + c + d)
    public, withheld = suppress(doc)
    assert derived(public, withheld, doc) == {}
    small = {g for g, n in cells.items() if 0 < n < 30} | {g for g, n in {"x": a + b, "y": c + d, "p": a + c,
                                                                          "q": b + d}.items() if 0 < n < 30}
    hidden = {g["group"] for t in public["fairness"]["groups"] for g in t["groups"] if g.get("suppressed")}
    assert small <= hidden
