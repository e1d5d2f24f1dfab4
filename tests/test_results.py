"""auditkit.results: the pandas tables of a run (``run.fairness.metrics.to_frame()``, ...) against the values of
the run document they read, on two real run documents (the heart example's golden findings, and the report
tests' sample run, which has a suppressed intersection group)."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest

from auditkit.runner import AuditRun

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = {"golden": ROOT / "tests/cli/golden/heart_findings.json",
             "sample": ROOT / "tests/report/data/sample_run.json"}


#: the run's metadata that the golden findings.json leaves out (it drops what changes between runs)
METADATA = {"report_id": "AK-20261128-00000000", "created_utc": "2026-11-28T22:50:00Z", "auditkit_version": "0.1.0"}


@pytest.fixture(params=sorted(DOCUMENTS))
def run(request) -> AuditRun:
    return AuditRun({**METADATA, **json.loads(DOCUMENTS[request.param].read_text(encoding="utf-8"))}, flagged=[])


def document(run: AuditRun) -> dict:
    """The run document as run.json holds it."""
    return run.run.to_json_dict()


def same(value, expected) -> bool:
    """A frame's value against the run document's (``None`` there is NaN here)."""
    if expected is None:
        return value is None or (isinstance(value, float) and math.isnan(value))
    return value == expected


def test_group_metrics_frame(run):
    doc, frame = document(run)["fairness"], run.fairness.metrics.to_frame()
    expected = [(t["attribute"], g, m) for t in doc["groups"] for g in t["groups"] if not g.get("suppressed")
                for m in [*g.get("metrics", {}), *g.get("insufficient", {})] if m != "count"]
    assert len(frame) == len(expected) == len(run.fairness.metrics)
    assert list(frame.columns) == ["attribute", "group", "metric", "value", "ci_low", "ci_high", "n", "denominator",
                                   "withheld", "suppressed", "unknown"]
    for row, (attribute, g, metric) in zip(frame.itertuples(), expected, strict=True):
        assert (row.attribute, row.group, row.metric) == (attribute, g["group"], metric)
        assert same(row.value, g["metrics"].get(metric)) and row.n == g["count"] == g["metrics"]["count"]
        assert row.withheld == (metric in g.get("insufficient", {}))
        assert same(row.denominator, g.get("denominators", {}).get(metric))
        assert row.suppressed == (not g["sufficient"]) and row.unknown == g["unknown"]
        low, high = g["intervals"].get(metric, (None, None))
        assert same(row.ci_low, low) and same(row.ci_high, high)
        if metric in ("mean_loss", "auc"):
            assert math.isnan(row.ci_low)
        elif low is not None:
            assert row.ci_low <= row.value <= row.ci_high
    suppressed = frame[frame.suppressed]
    assert set(suppressed.group) == {g["group"] for t in doc["groups"] for g in t["groups"]
                                     if g.get("sufficient") is False}


def test_performance_frame(run):
    """One row for all records, then one per group row of fairness.performance, every value the document's;
    the golden heart run has the part (with its suppressed intersection rows), the older sample run has none."""
    perf = document(run)["fairness"].get("performance")
    frame = run.fairness.performance.to_frame()
    if perf is None:
        assert frame.empty and list(frame.columns)[:2] == ["attribute", "group"]
        return
    expected = [(None, perf["overall"])] + [(g["attribute"], r) for g in perf["groups"] for r in g["rows"]]
    assert len(frame) == len(expected) > 1
    for row, (attribute, r) in zip(frame.to_dict("records"), expected, strict=True):
        assert same(row["attribute"], attribute) and (row["group"], row["suppressed"]) == (r["group"], r["suppressed"])
        for key in ("n", "positives", "negatives", "tp", "fp", "tn", "fn"):
            assert same(row[key], r.get(key)), key
        for stat in ("prevalence", "accuracy", "auroc", "ece"):
            assert same(row[stat], r.get(stat)), stat
            low, high = r.get(f"{stat}_ci") or (None, None)
            assert same(row[f"{stat}_ci_low"], low) and same(row[f"{stat}_ci_high"], high), stat
        assert row["withheld"] == ", ".join(r.get("insufficient") or {})
    assert frame["suppressed"].any() and not frame.loc[frame["suppressed"], "n"].notna().any()


def test_flagged_gaps_frame(run):
    """One row per flagged gap and k, every value the document's (NaN for None); the golden heart run flags gaps,
    some between suppressed groups (values withheld)."""
    gaps = document(run)["fairness"].get("flagged_gaps") or []
    frame = run.fairness.flagged_gaps.to_frame()
    expected = [(g, k) for g in gaps for k in (sorted(g["predicted_gap_after"], key=int) or [None])]
    assert len(frame) == len(expected)
    for row, (g, k) in zip(frame.to_dict("records"), expected, strict=True):
        assert (row["rule"], row["attribute"], row["disadvantaged"], row["advantaged"]) == (
            g["rule"], g["attribute"], g["disadvantaged"], g["advantaged"])
        assert same(row["gap"], g["gap"]) and same(row["surrogate_gap"], g["surrogate_gap"])
        assert same(row["k"], None if k is None else int(k))
        if k is not None:
            assert same(row["predicted_gap_after"], g["predicted_gap_after"][k])
            assert same(row["actual_gap_after"], (g["actual_gap_after"] or {}).get(k))
    if run.run.fairness.flagged_gaps:
        assert frame["gap"].isna().any() and frame["gap"].notna().any()      # withheld and shown gaps


def test_disparities_frame(run):
    doc, frame = document(run)["fairness"]["disparities"], run.fairness.disparities.to_frame()
    disparities = [d for ds in doc.values() for d in ds]
    count = sum(1 + len(d["to_reference"]) + (d.get("impact_ratio") is not None)
                + (d.get("impact_ratio_max") is not None) for d in disparities)
    assert len(frame) == count
    ranges = frame[frame.comparison == "range"]
    assert len(ranges) == len(disparities)
    for row, d in zip(ranges.itertuples(), disparities, strict=True):
        assert (row.attribute, row.metric) == (d["attribute"], d["metric"])
        assert same(row.group, d["worst_group"]) and same(row.compared_to, d["best_group"])
        assert same(row.method, d.get("method"))
        if d["status"] != "ok":     # e.g. a TPR withheld in every group but the reference: no numbers
            assert math.isnan(row.difference) and d["reason"] and row.reason == d["reason"]
            continue
        assert row.difference == d["difference"] and row.ratio == d["ratio"]
        assert all(same(a, b) for a, b in zip((row.difference_ci_low, row.difference_ci_high), d["difference_ci"],
                                              strict=True))
        assert all(same(a, b) for a, b in zip((row.ratio_ci_low, row.ratio_ci_high), d["ratio_ci"], strict=True))
        values = list(d["values"].values())         # the definition of "range" on the groups' own values
        assert row.difference == pytest.approx(max(values) - min(values), abs=1e-15)
        assert row.ratio == pytest.approx(min(values) / max(values), rel=1e-15)
    for d in disparities:
        mine = frame[(frame.attribute == d["attribute"]) & (frame.metric == d["metric"])]
        for group, r in d["to_reference"].items():
            (row,) = mine[(mine.comparison == "to_reference") & (mine.group == group)].itertuples()
            assert row.compared_to == d["reference"] and row.difference == r["difference"]
            assert row.difference == pytest.approx(d["values"][group] - d["values"][d["reference"]], abs=1e-15)
            assert row.ratio == r["ratio"] and (row.ratio_ci_low, row.ratio_ci_high) == tuple(r["ratio_ci"])
        for key in ("impact_ratio", "impact_ratio_max"):
            ir = mine[mine.comparison == key]
            if d.get(key) is None:
                assert ir.empty
                continue
            (row,) = ir.itertuples()
            assert (row.group, row.compared_to, row.ratio) == (d[key]["group"], d[key]["compared_to"],
                                                               d[key]["value"])
            assert row.adverse_impact == d[key]["adverse_impact"] == (row.ratio < row.threshold)
            assert math.isnan(row.difference)


def test_drivers_frame(run):
    doc, frame = document(run)["fairness"]["attributions"], run.fairness.drivers.to_frame()
    assert len(frame) == sum(len(a["drivers"]) for a in doc) > 0
    assert len(run.fairness.wideners.to_frame()) == sum(len(a["wideners"]) for a in doc)
    assert [c for c in frame.columns if c.startswith("group_")] == ["group_sex", "group_age_band"]
    records = [(a, k, r) for a in doc for k, r in enumerate(a["drivers"], start=1)]
    for row, (a, rank, record) in zip(frame.itertuples(), records, strict=True):
        assert (row.attribute, row.surrogate, row.disadvantaged, row.rank) == (a["attribute"], a["surrogate"],
                                                                              a["disadvantaged"], rank)
        assert (row.token, row.effect, row.label) == (record["token"], record["effect"], record["label"])
        assert (row.group_sex, row.group_age_band) == (record["groups"]["sex"], record["groups"]["age_band"])
    assert (frame.effect < 0).all()                  # drivers: removing them narrows the gap


def test_privacy_risk_frame(run):
    doc, frame = document(run)["privacy"], run.privacy.risk.to_frame()
    flags, checked = doc["flags"], doc["trust"]["records"]
    assert len(frame) == max(len(flags), len(checked)) and frame["rank"].tolist() == list(range(1, len(frame) + 1))
    assert int(frame.flagged.sum()) == doc["n_flagged"] == run.privacy.n_flagged == len(flags)
    flagged = frame[frame.flagged]
    assert flagged.token.tolist() == [f["token"] for f in flags]
    assert flagged.risk.tolist() == [f["risk"] for f in flags]
    assert (flagged.risk > run.privacy.threshold).all() and run.privacy.threshold == doc["threshold"]
    assert flagged.group_sex.tolist() == [f["groups"]["sex"] for f in flags]
    by_token = frame.set_index("token")
    for r in checked:
        assert by_token.loc[r["token"], "self_influence"] == r["predicted"]
        assert by_token.loc[r["token"], "retrained_change"] == r["actual"]
    # both lists follow the ranking: the longer one's order is the frame's
    longer = [f["token"] for f in flags] if len(flags) >= len(checked) else [r["token"] for r in checked]
    assert frame.token.tolist() == longer
    assert frame[~frame.flagged].risk.isna().all()


def test_data_quality_frame(run):
    doc, frame = document(run)["data_quality"], run.data_quality.to_frame()
    assert len(frame) == len(doc["suspects"]) == len(run.data_quality) > 0
    assert run.data_quality.worth_inspecting == doc["worth_inspecting"]
    assert run.data_quality.n_records == doc["n_records"]
    for row, (rank, s) in zip(frame.itertuples(), enumerate(doc["suspects"], start=1), strict=True):
        assert (row.rank, row.token, row.score, row.loss, row.reason, row.label) == (
            rank, s["token"], s["score"], s["loss"], s["reason"], s["label"])
        assert row.held_out_probability_of_label == pytest.approx(math.exp(-row.score), rel=1e-9)
        assert row.group_age_band == s["groups"]["age_band"]


def test_sections_not_audited_are_none_and_frames_are_copies(run):
    doc = copy.deepcopy(document(run))
    doc["privacy"] = doc["data_quality"] = None
    partial = AuditRun(doc, flagged=[])
    assert partial.privacy is None and partial.data_quality is None and partial.fairness is not None
    assert partial.status == run.run.status
    frame = run.fairness.metrics.to_frame()
    frame.loc[:, "value"] = np.nan
    assert not run.fairness.metrics.to_frame().value.isna().all()
