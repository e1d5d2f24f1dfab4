"""Drivers of the gaps a policy flags (issue 18, point 7): the false-positive surrogate against actual
leave-one-out retraining, and the follow-up step attributing exactly the two groups a check compares."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_fairness_plugin import context_for, heart_splits

from auditkit.audits.fairness.attribution import gap_measure, metric_gap
from auditkit.audits.fairness.plugin import FairnessAudit
from auditkit.audits.jsonsafe import json_safe
from auditkit.audits.registry import run_plugin, validate_options
from auditkit.policy import evaluate, observations, parse_policy

OPTIONS = {"min_group_size": 20, "bootstrap": 200, "attribution": {"top_k": [5, 10], "verify_k": [5]}}


@pytest.fixture(scope="module")
def audited():
    ctx = context_for(heart_splits())
    found = json_safe(run_plugin("fairness", ctx, OPTIONS).to_dict())
    return ctx, found


def test_false_positive_surrogate_matches_leave_one_out_retraining(audited):
    """e_j of the FPR surrogate (mean predicted probability of the favourable class among the truly unfavourable,
    men minus women) against the change measured by retraining without record j: the strongest drivers and
    wideners and a few random records."""
    ctx, _ = audited
    sex = ctx.test.groups["sex"].to_numpy()
    measure = gap_measure("false_positive", sex == "Male", sex == "Female", loss="cross_entropy",
                          favourable=ctx.favourable)
    X, y = ctx.tensor("test")
    now = float(measure(ctx.outputs("test"), y))
    negative = ctx.test.y != ctx.favourable
    p = ctx.proba("test")[:, ctx.favourable]
    assert now == pytest.approx(p[(sex == "Male") & negative].mean() - p[(sex == "Female") & negative].mean())
    predicted = ctx.engine.influence_on(measure, X, y)
    order = np.argsort(predicted)
    records = np.r_[order[:3], order[-3:], np.random.default_rng(0).choice(ctx.train.n, 3, replace=False)]
    actual = np.array([float(measure(ctx.outputs("test", ctx.retrain_without([j])), y)) - now for j in records])
    assert np.corrcoef(predicted[records], actual)[0, 1] > 0.97
    top = np.abs(actual) > 0.5 * np.abs(actual).max()
    np.testing.assert_allclose(predicted[records][top], actual[top], rtol=0.15)


def _checks(found: dict, metric: str, bound: dict) -> list[dict]:
    """The checks of one rule on ``metric`` for the attribute sex."""
    policy = parse_policy({"policy": "t", "title": "t", "rules": [
        {"id": "r", "metric": metric, "bound": bound, "severity": "warn", "requirement": "test",
         "scope": {"attributes": ["sex"]}}]})
    return [c.to_dict() for c in evaluate(policy, observations({"fairness": found}))]


def test_a_flagged_fpr_difference_is_attributed_for_the_groups_it_compares(audited):
    ctx, found = audited
    [check] = _checks(found, "fairness.fpr.difference", {"kind": "absolute", "max": 0.0})
    assert check["status"] == "warn" and check["attribute"] == "sex"
    [disparity] = [d for d in found["disparities"]["sex"] if d["metric"] == "fpr"]
    assert check["groups"] == [disparity["worst_group"], disparity["best_group"]]
    plugin = FairnessAudit()
    options = validate_options(FairnessAudit, OPTIONS)
    [gap] = plugin.follow_up(ctx, options, found, [check])["flagged_gaps"]
    assert (gap["disadvantaged"], gap["advantaged"]) == tuple(check["groups"])
    assert gap["surrogate"] == "false_positive" and gap["rule"] == "r" and gap["check_status"] == "warn"
    # the gap on decisions is the disparity the check read, with its interval
    assert gap["gap"] == pytest.approx(disparity["difference"], abs=1e-12)
    assert gap["gap_ci"] == pytest.approx(disparity["difference_ci"])
    # predicted after removing the top 5 = now + their summed effects; actual = the surrogate after retraining
    sex = ctx.test.groups["sex"].to_numpy()
    measure = gap_measure("false_positive", sex == gap["disadvantaged"], sex == gap["advantaged"],
                          loss="cross_entropy", favourable=ctx.favourable)
    e = ctx.engine.influence_on(measure, *ctx.tensor("test"))
    top5 = np.argsort(e, kind="stable")[:5]
    assert gap["predicted_gap_after"][5] == pytest.approx(gap["surrogate_gap"] + e[top5].sum(), rel=1e-9)
    retrained = ctx.retrain_without(top5)
    y = torch.tensor(ctx.test.y)
    assert gap["actual_gap_after"][5] == pytest.approx(float(measure(ctx.outputs("test", retrained), y)), rel=1e-6)
    assert gap["actual_gap_after"][5] < gap["surrogate_gap"]           # removing the drivers narrows it
    assert abs(gap["actual_gap_after"][5] - gap["predicted_gap_after"][5]) < 0.25 * abs(
        gap["actual_gap_after"][5] - gap["surrogate_gap"])
    assert gap["actual_metric_gap_after"][5] == pytest.approx(metric_gap(
        "fpr", ctx.proba("test", retrained), ctx.test.y, ctx.losses("test", retrained), sex == gap["disadvantaged"],
        sex == gap["advantaged"], ctx.favourable))
    assert [d["effect"] for d in gap["drivers"][:5]] == pytest.approx(list(e[top5]))


def test_an_impact_ratio_to_the_reference_is_oriented_worse_off_first(audited):
    """A per-group impact-ratio check compares the group with the reference group: the gap and its interval are
    the disparity's to_reference difference turned so that positive means the first group is worse off."""
    ctx, found = audited
    checks = _checks(found, "fairness.selection_rate.impact_ratio", {"kind": "ratio_band", "low": 0.99,
                                                                      "high": 1.01})
    [check] = [c for c in checks if c["status"] == "warn"]
    [disparity] = [d for d in found["disparities"]["sex"] if d["metric"] == "selection_rate"]
    ref, group = disparity["reference"], check["group"]
    assert check["groups"] == [group, ref]
    [gap] = FairnessAudit().follow_up(ctx, validate_options(FairnessAudit, OPTIONS), found, [check])["flagged_gaps"]
    values, lo_hi = disparity["values"], disparity["to_reference"][group]["difference_ci"]
    worse = min((group, ref), key=lambda g: values[g])                 # selection rate: higher is better
    assert gap["disadvantaged"] == worse and {gap["disadvantaged"], gap["advantaged"]} == {group, ref}
    assert gap["gap"] == pytest.approx(abs(values[group] - values[ref]), abs=1e-12)
    expected = [-lo_hi[1], -lo_hi[0]] if worse == group else lo_hi
    assert gap["gap_ci"] == pytest.approx(expected)
    assert gap["gap_ci"][0] <= gap["gap"] <= gap["gap_ci"][1]


def test_checks_that_pass_or_compare_no_two_groups_are_not_attributed(audited):
    ctx, found = audited
    passing = _checks(found, "fairness.fpr.difference", {"kind": "absolute", "max": 1.0})
    level = _checks(found, "fairness.accuracy", {"kind": "absolute", "min": 1.0})   # one group's own level
    assert {c["status"] for c in passing} == {"pass"} and {c["status"] for c in level} == {"warn"}
    assert all(c["groups"] is None for c in level)
    out = FairnessAudit().follow_up(ctx, validate_options(FairnessAudit, OPTIONS), found, passing + level)
    assert out["flagged_gaps"] == []
    assert FairnessAudit().follow_up(ctx, validate_options(FairnessAudit, OPTIONS), found, [])["flagged_gaps"] == []
