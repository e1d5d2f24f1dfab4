"""Policies: loading and validation, observations from findings, every bound kind and decision, run status.

The findings below are trimmed from a real run of the plugins on UCI heart disease (sex, age band and their
intersection; loss and self-influence attacks).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest

from auditkit.errors import InputError
from auditkit.policy import (
    Check,
    Observation,
    builtin_policies,
    check_metrics_available,
    evaluate,
    load_policy,
    observations,
    overall_status,
    parse_policy,
    policy_sha256,
    required_plugins,
)


def _group(name, count, sr, acc, tpr, intervals=None):
    row = {"group": name, "count": count, "sufficient": count >= 30, "unknown": False,
           "metrics": {"count": count, "selection_rate": sr, "accuracy": acc, "tpr": tpr}}
    if intervals:
        row["intervals"] = intervals
    return row


def _attack(name, n_m, n_n, auc, tpr01, adv):
    return {"name": name, "n_members": n_m, "n_nonmembers": n_n, "auc": auc,
            "tpr_at_fpr": {"0.01": tpr01, "0.001": None}, "advantage": adv}


#: the privacy section's fields the observations do not read, required by the run document's model
PRIVACY_REST = {"signals": ["self_influence"], "risk_score": "self-influence", "threshold": 1.0,
                "trust": {"checked": False}}

FINDINGS = {
    "fairness": {
        "favourable": "yes",
        "groups": [
            {"attribute": "sex", "min_group_size": 30, "groups": [
                _group("Female", 57, 0.21052631578947367, 0.9298245614035088, 0.8333333333333334,
                       {"selection_rate": [0.10468854894279463, 0.31636408263615273]}),
                _group("Male", 173, 0.6242774566473989, 0.8439306358381503, 0.8648648648648649),
                {"group": "unknown", "count": 4, "sufficient": False, "unknown": True, "metrics": {"accuracy": 1.0}}]},
            {"attribute": "sex & age_band", "min_group_size": 30, "groups": [
                _group("Female & 55+", 21, 0.38095238095238093, 0.8571428571428571, 0.7777777777777778),
                _group("Female & <55", 36, 0.1111111111111111, 0.9722222222222222, 1.0),
                _group("Male & 55+", 89, 0.8314606741573034, 0.8, 0.9)]},
        ],
        "disparities": {
            "sex": [
                {"attribute": "sex", "metric": "selection_rate", "status": "ok", "reason": None, "reference": "Male",
                 "groups": ["Female", "Male"], "values": {"Female": 0.21052631578947367, "Male": 0.6242774566473989},
                 "excluded": {"unknown": "unknown (missing sensitive value)"},
                 "difference": 0.4137511408579252, "difference_ci": [0.27420646993205555, 0.5417401886218436],
                 "ratio": 0.33723196881091616, "ratio_ci": [0.1830742384160284, 0.5203226500594922],
                 "to_reference": {"Female": {"difference": -0.4137511408579252,
                                             "difference_ci": [-0.5417401886218436, -0.27420646993205555],
                                             "ratio": 0.33723196881091616,
                                             "ratio_ci": [0.1830742384160284, 0.5203226500594922]}},
                 "impact_ratio_max": {"basis": "most_selected", "value": 0.33723196881091616,
                                      "ci": [0.1830742384160284, 0.5203226500594922], "group": "Female",
                                      "compared_to": "Male"}},
                {"attribute": "sex", "metric": "accuracy", "status": "ok", "reason": None, "reference": "Male",
                 "groups": ["Female", "Male"], "values": {"Female": 0.9298245614035088, "Male": 0.8439306358381503},
                 "excluded": {}, "difference": 0.08589392556535846,
                 "difference_ci": [0.004558361220971511, 0.14988337896765036],
                 "ratio": 0.9076235140146145, "ratio_ci": [0.8420038535645473, 0.9949029241754506],
                 "to_reference": {"Female": {"difference": 0.08589392556535846,
                                             "difference_ci": [0.02, 0.15],
                                             "ratio": 1.1017770597738287, "ratio_ci": [1.02, 1.19]}},
                 "impact_ratio_max": None},
                {"attribute": "sex", "metric": "tpr", "status": "ok", "reason": None, "reference": "Male",
                 "groups": ["Female", "Male"], "values": {"Female": 0.8333333333333334, "Male": 0.8648648648648649},
                 "excluded": {}, "difference": 0.03153153153153154,
                 "difference_ci": [0.005107836089144485, 0.2870300489168415], "ratio": 0.9635416666666666,
                 "ratio_ci": [0.676411620294599, 0.9941379096017106],
                 "to_reference": {"Female": {"difference": -0.03153153153153154,
                                             "difference_ci": [-0.28703004891684136, 0.1519910714285715],
                                             "ratio": 0.9635416666666666,
                                             "ratio_ci": [0.676411620294599, 1.1792355889724313]}}}],
            "sex & age_band": [
                {"attribute": "sex & age_band", "metric": "selection_rate", "status": "ok", "reason": None,
                 "reference": "Male & 55+", "groups": ["Female & <55", "Male & 55+"],
                 "values": {"Female & <55": 0.1111111111111111, "Male & 55+": 0.8314606741573034},
                 "excluded": {"Female & 55+": "21 records, fewer than 30"},
                 "difference": 0.7203495630461922, "difference_ci": [0.6, 0.83],
                 "ratio": 0.13363363363363362, "ratio_ci": [0.033811785310072985, 0.2751431530214426],
                 "to_reference": {"Female & <55": {"ratio": 0.13363363363363362,
                                                   "ratio_ci": [0.033811785310072985, 0.2751431530214426]}},
                 "impact_ratio_max": {"basis": "most_selected", "value": 0.13363363363363362,
                                      "ci": [0.033811785310072985, 0.2751431530214426],
                                      "group": "Female & <55", "compared_to": "Male & 55+"}},
                {"attribute": "sex & age_band", "metric": "tpr", "status": "insufficient_data",
                 "reason": "only one group with at least 30 records", "reference": None, "groups": [],
                 "values": {}, "excluded": {}, "difference": None, "ratio": None, "difference_ci": [None, None],
                 "ratio_ci": [None, None], "to_reference": {}, "impact_ratio_max": None}],
        },
    },
    "privacy": {
        **PRIVACY_REST,
        "n_members": 690, "n_nonmembers": 230, "n_flagged": 9, "budget": 0.01,
        "attacks": {"loss": _attack("loss", 690, 230, 0.4799243856332703, 0.015942028985507246, 0.0145),
                    "self_influence": _attack("self_influence", 690, 230, 0.47233144297416507,
                                              0.014492753623188406, 0.0087)},
        "attacks_by_group": {"sex": {"loss": {
            "Female": _attack("loss [Female]", 137, 57, 0.4229734921244717, None, 0.037),
            "Male": _attack("loss [Male]", 553, 173, 0.49599138696965583, 0.007233273056057866, 0.0602)}}},
        "exposure": [{"attribute": "sex", "groups": [
            {"group": "Female", "count": 137, "sufficient": True, "mean_risk": 0.0907, "p95_risk": 0.62,
             "flag_rate": 0.0},
            {"group": "Male", "count": 553, "sufficient": True, "mean_risk": 0.1211, "p95_risk": 0.6886,
             "flag_rate": 0.0162748643761302}],
            "gap": {"mean_risk": 0.030438831487799786, "p95_risk": 0.06861369550132568,
                    "flag_rate": 0.0162748643761302}}],
        "trust": {"checked": True, "spearman": 0.9999999999999999},
    },
    "data_quality": {"score": "loss", "n_records": 690, "worth_inspecting": 125,
                     "share_worth_inspecting": 0.18115942028985507},
    "influence": {"method": "exact", "damping": 0.0, "dtype": "float64", "l2": 0.01, "seed": 0, "parameters": 80,
                  "stability": {"findings": [
        {"finding": "drivers of the sex selection-rate gap", "kind": "fairness_drivers", "k": 10, "verdict": "robust",
         "agreement": {"damping ×0.1": 1.0, "damping ×10": 0.9},
         "retraining": {"spearman": 0.98, "median_ratio": 1.02}},
        {"finding": "top privacy-risk records", "kind": "privacy_top", "k": 10, "verdict": "sensitive",
         "agreement": {"damping ×0.1": 1.0, "damping ×10": 0.6},
         "retraining": None}]}},
}


def policy(*rules, name="test"):
    return parse_policy({"policy": name, "title": "Test policy", "rules": list(rules)}, source="test.yaml")


def rule(**kw):
    base = {"id": "r", "metric": "fairness.selection_rate.impact_ratio_max", "bound": {"kind": "absolute", "min": 0.8},
            "severity": "fail", "requirement": "a requirement"}
    return {**base, **kw}


def obs(value, interval=None, n=100, metric="fairness.accuracy.difference", attribute="a", group=None, **kw):
    return Observation(metric, attribute, group, value, interval, n, **kw)


def one(rule_dict, observation, previous=None):
    [check] = evaluate(policy(rule_dict), [observation], previous=previous)
    return check


@pytest.fixture(scope="module")
def found():
    return {(o.metric, o.attribute, o.group): o for o in observations(FINDINGS)}


# ---- observations from findings ----

def test_per_group_fairness_observation_carries_interval_n_and_reference(found):
    o = found["fairness.selection_rate", "sex", "Female"]
    assert o.value == pytest.approx(0.21052631578947367)
    assert o.interval == pytest.approx((0.10468854894279463, 0.31636408263615273))
    assert (o.n, o.reference) == (57, "Male")
    assert o.reference_value == pytest.approx(0.6242774566473989)
    assert found["fairness.selection_rate", "sex", "Male"].interval is None
    assert found["fairness.tpr", "sex", "Female"].difference_interval == pytest.approx((-0.28703004891684136,
                                                                                      0.1519910714285715))
    assert ("fairness.accuracy", "sex", "unknown") not in found


def test_disparity_observations(found):
    d = found["fairness.selection_rate.difference", "sex", None]
    assert (d.value, d.interval, d.n) == (pytest.approx(0.4137511408579252),
                                          pytest.approx((0.27420646993205555, 0.5417401886218436)), 57)
    irm = found["fairness.selection_rate.impact_ratio_max", "sex & age_band", None]
    assert (irm.value, irm.n) == (pytest.approx(0.13363363363363362), 36)
    assert irm.note == "Female & <55 compared with the most selected group Male & 55+"
    left_out = found["fairness.selection_rate.impact_ratio", "sex & age_band", "Female & 55+"]
    # a suppressed group is named without its count
    assert (left_out.value, left_out.n, left_out.note) == (None, None, "left out of the comparison (suppressed: "
                                                                      "too few records)")
    bad = found["fairness.tpr.difference", "sex & age_band", None]
    assert (bad.value, bad.n, bad.note) == (None, None, "only one group with at least 30 records")


def test_privacy_quality_and_influence_observations(found):
    assert found["privacy.loss.auc", None, None].value == pytest.approx(0.4799243856332703)
    assert found["privacy.loss.auc", "sex", "Female"].n == 57
    assert found["privacy.loss.tpr_at_0.01", None, None].value == pytest.approx(0.015942028985507246)
    unresolved = found["privacy.loss.tpr_at_0.001", None, None]
    assert unresolved.value is None
    assert unresolved.note == "a false-positive rate of 0.001 cannot be resolved with 230 non-members"
    assert found["privacy.flagged_share", None, None].value == pytest.approx(9 / 690)
    assert found["privacy.exposure_gap.flag_rate", "sex", None].n == 137
    assert found["privacy.exposure.mean_risk", "sex", "Male"].value == pytest.approx(0.1211)
    assert found["data_quality.share_worth_inspecting", None, None].value == pytest.approx(0.18115942028985507)
    agreement = found["influence.stability.agreement", None, None]
    assert (agreement.value, agreement.note) == (0.6, "top privacy-risk records, damping ×10")
    assert found["influence.retraining.spearman", None, None].value == 0.98


def test_observation_round_trips_through_a_dict():
    o = obs(0.5, (0.4, 0.6), note="x")
    assert Observation.from_dict(o.to_dict()) == o
    r = rule(metric="fairness.accuracy.difference", bound={"kind": "relative_to_previous", "max_increase": 0.05})
    [c] = evaluate(policy(r), [obs(0.2).to_dict()], previous=[obs(0.1).to_dict()])
    assert (c.status, c.value) == ("fail", pytest.approx(0.1))


# ---- bounds and decisions ----

def test_absolute_min_decided_by_interval_point_and_straddle():
    r = rule(metric="fairness.accuracy.difference", bound={"kind": "absolute", "min": 0.8})
    assert [getattr(one(r, obs(0.9, (0.82, 0.95))), k) for k in ("status", "decided_by")] == ["pass", "interval"]
    assert [getattr(one(r, obs(0.7, (0.6, 0.79))), k) for k in ("status", "decided_by")] == ["fail", "interval"]
    assert [getattr(one(r, obs(0.85, (0.7, 0.9))), k) for k in ("status", "decided_by")] == ["warn", "straddle rule"]
    assert [getattr(one(r, obs(0.79)), k) for k in ("status", "decided_by")] == ["fail", "point"]
    assert one(r, obs(0.8)).status == "pass"                       # inclusive
    assert one(r, obs(0.85, (0.7, 0.9))).bound == "≥ 0.80"


def test_absolute_max_is_inclusive_despite_rounding():
    r = rule(metric="fairness.accuracy.difference", bound={"kind": "absolute", "max": 0.1})
    assert 0.4 - 0.3 > 0.1
    assert one(r, obs(0.4 - 0.3)).status == "pass"
    assert one(r, obs(0.1001)).status == "fail"
    c = one(r, obs(0.12, (0.03, 0.21), n=57))
    assert (c.status, c.bound, c.n) == ("warn", "≤ 0.10", 57)
    assert c.explanation == ("Gap in accuracy between the groups with the highest and the lowest value; higher is "
                                "worse, the rule allows at most 0.10; its confidence interval straddles the limit.")


def test_ratio_band_both_sides():
    r = rule(metric="fairness.selection_rate.impact_ratio", bound={"kind": "ratio_band", "low": 0.8, "high": 1.25})
    def ratio(value, interval=None):
        return obs(value, interval, metric="fairness.selection_rate.impact_ratio", group="g")
    assert one(r, ratio(1.0, (0.9, 1.1))).status == "pass"
    assert one(r, ratio(2.35, (1.83, 3.16))).status == "fail"
    assert one(r, ratio(0.5, (0.3, 0.7))).status == "fail"
    assert one(r, ratio(1.2, (1.1, 1.3))).status == "warn"
    assert one(r, ratio(1.25)).status == "pass"
    assert one(r, ratio(1.0)).bound == "between 0.80 and 1.25"


@pytest.mark.parametrize("if_straddles, severity, expected", [
    ("warn", "fail", "warn"), ("pass", "fail", "pass"), ("fail", "fail", "fail"),
    ("fail", "warn", "warn"), ("pass", "warn", "pass"), ("warn", "warn", "warn")])
def test_straddle_decision(if_straddles, severity, expected):
    r = rule(metric="fairness.accuracy.difference", bound={"kind": "absolute", "max": 0.1},
             if_straddles=if_straddles, severity=severity)
    c = one(r, obs(0.09, (0.05, 0.15)))
    assert (c.status, c.decided_by, c.severity) == (expected, "straddle rule", severity)
    assert one(r, obs(0.2, (0.15, 0.25))).status == severity   # wholly outside: the severity, not if_straddles


def test_relative_to_reference_uses_the_difference_and_its_interval(found):
    r = rule(metric="fairness.tpr", bound={"kind": "relative_to_reference", "max_difference": 0.1})
    checks = evaluate(policy(r), [found["fairness.tpr", "sex", g] for g in ("Female", "Male")])
    [c] = checks                                                   # the reference group is not checked
    assert (c.group, c.status, c.decided_by) == ("Female", "warn", "straddle rule")
    assert c.value == pytest.approx(0.8333333333333334 - 0.8648648648648649)
    assert c.interval == pytest.approx([-0.28703004891684136, 0.1519910714285715])
    assert c.bound == "|difference from Male| ≤ 0.10"
    assert c.compared_with.model_dump() == {"label": "reference group Male",
                                           "value": pytest.approx(0.8648648648648649)}
    far = obs(0.5, metric="fairness.tpr", group="B", reference="A", reference_value=0.8)
    near = obs(0.75, metric="fairness.tpr", group="C", reference="A", reference_value=0.8)
    assert [c.status for c in evaluate(policy(r), [far, near])] == ["fail", "pass"]
    orphan = obs(0.5, metric="fairness.tpr", group="B", reference="A", reference_value=None)
    assert one(r, orphan).status == "insufficient_data"


def test_relative_to_previous_compares_the_same_observation():
    r = rule(metric="fairness.accuracy.difference", bound={"kind": "relative_to_previous", "max_increase": 0.05},
             severity="fail")
    before = [obs(0.05, attribute="sex"), obs(0.10, attribute="age")]
    now = [obs(0.12, attribute="sex"), obs(0.11, attribute="age"), obs(0.3, attribute="new")]
    checks = evaluate(policy(r), now, previous=before)
    assert [(c.attribute, c.status) for c in checks] == [("sex", "fail"), ("age", "pass"),
                                                               ("new", "insufficient_data")]
    assert checks[0].value == pytest.approx(0.07)
    assert checks[0].compared_with.model_dump() == {"label": "previous audit", "value": 0.05}
    assert checks[0].bound == "increase ≤ 0.05 since the previous audit"
    assert checks[2].explanation.endswith("not decided: the previous audit has no value for it.")
    first = evaluate(policy(r), now, previous=None)[0]
    assert first.status == "insufficient_data"
    assert first.explanation.endswith("not decided: there is no previous audit to compare with.")


def test_relative_to_previous_with_an_interval_and_a_previous_run_document():
    r = rule(metric="privacy.loss.auc", scope={"attributes": []},
             bound={"kind": "relative_to_previous", "max_increase": 0.02, "max_decrease": 0.5})
    previous_run = {"privacy": {**PRIVACY_REST, "n_members": 690, "n_nonmembers": 230, "budget": 0.01,
                                "attacks": {"loss": _attack("loss", 690, 230, 0.45, 0.01, 0.0)}}}
    c = one(r, obs(0.48, (0.46, 0.5), metric="privacy.loss.auc", attribute=None), previous=previous_run)
    assert (c.status, c.decided_by) == ("warn", "straddle rule")
    assert c.interval == pytest.approx([0.01, 0.05])
    assert c.bound == "change between −0.50 and +0.02 since the previous audit"
    down = rule(metric="privacy.loss.auc", bound={"kind": "relative_to_previous", "max_decrease": 0.02})
    assert one(down, obs(0.40, metric="privacy.loss.auc", attribute=None), previous=previous_run).status == "fail"


def test_min_n_and_missing_values_are_insufficient():
    r = rule(metric="fairness.accuracy.difference", bound={"kind": "absolute", "max": 0.1}, min_n=30)
    c = one(r, obs(0.5, (0.4, 0.6), n=21))
    assert (c.status, c.decided_by, c.value) == ("insufficient_data", "min_n", 0.5)
    assert c.explanation.endswith("not decided: 21 records, fewer than the rule's minimum of 30.")
    assert one(r, obs(0.5, n=30)).status == "fail"
    c = one(r, obs(None, n=None, note="only one group with at least 30 records"))
    assert (c.status, c.decided_by) == ("insufficient_data", "no value")
    assert c.explanation.endswith("not decided: only one group with at least 30 records.")


def test_scope_attributes_groups_and_overall(found):
    all_obs = list(found.values())
    by_scope = lambda scope: [(c.attribute, c.group) for c in evaluate(  # noqa: E731
        policy(rule(metric="privacy.loss.auc", bound={"kind": "absolute", "max": 0.6}, scope=scope)), all_obs)]
    assert by_scope(None) == [(None, None), ("sex", "Female"), ("sex", "Male")]
    assert by_scope({"attributes": []}) == [(None, None)]
    assert by_scope({"attributes": ["sex"], "groups": ["Male"]}) == [("sex", "Male")]
    assert by_scope({"attributes": ["sex"], "overall": True}) == [(None, None), ("sex", "Female"), ("sex", "Male")]


def test_a_rule_matching_nothing_is_insufficient_not_passed(found):
    r = rule(metric="fairness.selection_rate.impact_ratio_max", scope={"attributes": ["Sex"]})
    [c] = evaluate(policy(r), list(found.values()))
    assert (c.status, c.attribute, c.value) == ("insufficient_data", None, None)
    assert c.explanation.endswith("not decided: this run has no value of fairness.selection_rate.impact_ratio_max "
                                     "for Sex (it has sex, sex & age_band).")


def test_tpr_at_fpr_ids_match_whatever_the_float_spelling(found):
    r = rule(metric="privacy.loss.tpr_at_1e-2", bound={"kind": "absolute", "max": 0.05}, scope={"attributes": []})
    [c] = evaluate(policy(r), list(found.values()))
    assert (c.status, c.value) == ("pass", pytest.approx(0.015942028985507246))


def test_overall_status():
    def c(status, when="warn"):
        return Check(rule="r", metric="fairness.accuracy.difference", bound="≤ 0.10", severity="fail", status=status,
                     decided_by="point", requirement="req", explanation="text", when_insufficient=when)
    assert overall_status([c("pass"), c("pass")]) == "pass"
    assert overall_status([c("pass"), c("warn")]) == "pass_with_warnings"
    assert overall_status([c("pass"), c("insufficient_data")]) == "pass_with_warnings"
    assert overall_status([c("warn"), c("insufficient_data", "fail")]) == "incomplete"
    assert overall_status([c("fail"), c("insufficient_data", "fail")]) == "fail"
    assert overall_status([]) == "pass"


# ---- built-in policies on the findings ----

def test_builtins_are_listed_loaded_and_hashed():
    assert builtin_policies() == ["clinical-privacy", "eu-ai-act-high-risk", "nyc-ll144-impact-ratio"]
    folder = Path(__file__).resolve().parents[1] / "auditkit" / "policies"
    for name in builtin_policies():
        p = load_policy(name)
        assert p == load_policy(f"builtin:{name}")
        assert (p.name, p.source) == (name, f"builtin:{name}")
        digest = hashlib.sha256((folder / f"{name}.yaml").read_bytes()).hexdigest()
        assert p.sha256 == policy_sha256(p) == policy_sha256(f"builtin:{name}") == digest
        assert p.references and all(r.requirement for r in p.rules)
        assert p.to_dict()["rules"][0]["id"] == p.rules[0].id


def test_nyc_policy_fails_the_heart_disease_impact_ratio(found):
    checks = evaluate(load_policy("nyc-ll144-impact-ratio"), list(found.values()))
    got = [(c.rule, c.attribute, c.group, c.status, c.decided_by) for c in checks]
    assert got == [
        ("impact-ratio-per-category", "sex", None, "fail", "interval"),
        ("impact-ratio-per-category", "sex & age_band", None, "fail", "interval"),
        ("impact-ratio-vs-reference", "sex", "Female", "warn", "interval"),
        ("impact-ratio-vs-reference", "sex & age_band", "Female & <55", "warn", "interval"),
        ("impact-ratio-vs-reference", "sex & age_band", "Female & 55+", "insufficient_data", "no value")]
    assert overall_status(checks) == "fail"
    assert checks[0].requirement.startswith("6 RCNY § 5-301")


@pytest.mark.parametrize("kind", ["diagnosis", "triage", "screening"])
def test_nyc_policy_is_not_applicable_to_a_diagnostic_decision(found, kind):
    """Selection-rate ratios do not fit a diagnostic decision (prevalence differs between groups): each of the
    policy's rules gives one not-applicable check there, and the run's status does not fail on them."""
    checks = evaluate(load_policy("nyc-ll144-impact-ratio"), list(found.values()), decision_kind=kind)
    assert [(c.rule, c.status) for c in checks] == [("impact-ratio-per-category", "not_applicable"),
                                                   ("impact-ratio-vs-reference", "not_applicable")]
    assert overall_status(checks) != "fail"
    lending = evaluate(load_policy("nyc-ll144-impact-ratio"), list(found.values()), decision_kind="lending")
    assert overall_status(lending) == "fail" and "not_applicable" not in {c.status for c in lending}


def test_clinical_privacy_passes_a_regularised_model(found):
    checks = evaluate(load_policy("clinical-privacy"), list(found.values()))
    assert {c.status for c in checks} == {"pass"}
    assert len(checks) == 3 + 3 + 1 + 1 + 1 + 1 + 1 + 1   # loss attack per sex group too; self-influence overall
    assert overall_status(checks) == "pass"
    assert required_plugins(load_policy("clinical-privacy")) == {"privacy"}


def test_eu_policy_on_the_findings(found):
    """A lending decision: selection-rate ratio and TPR gap apply; FNR gap and calibration do not. The group
    left out of the selection-rate comparison (Female & <55, too few records) gets its own insufficient-data row."""
    checks = evaluate(load_policy("eu-ai-act-high-risk"), list(found.values()), decision_kind="lending")
    by_rule = {}
    for c in checks:
        by_rule.setdefault(c.rule, []).append((c.attribute, c.status))
    assert by_rule == {"accuracy-gap": [("sex", "warn")],
                       "tpr-gap": [("sex", "warn"), ("sex & age_band", "insufficient_data")],
                       "fnr-gap": [(None, "not_applicable")],
                       "fpr-gap": [(None, "insufficient_data")],
                       "selection-rate-ratio": [("sex", "warn"), ("sex & age_band", "warn"),
                                                ("sex & age_band", "insufficient_data")],
                       "calibration-gap": [(None, "not_applicable")],
                       "calibration-per-group": [(None, "not_applicable")],
                       "accuracy-gap-drift": [("sex", "insufficient_data")]}
    assert overall_status(checks) == "pass_with_warnings"
    triage = {c.rule: c.status for c in evaluate(load_policy("eu-ai-act-high-risk"), list(found.values()),
                                                 decision_kind="triage")}
    assert (triage["tpr-gap"], triage["selection-rate-ratio"]) == ("not_applicable", "not_applicable")
    assert triage["fnr-gap"] == triage["calibration-gap"] == "insufficient_data"   # no FNR, no performance part


# ---- validation errors, word for word ----

def error_of(doc) -> str:
    with pytest.raises(InputError) as e:
        parse_policy(doc, source="p.yaml")
    return str(e.value)


def test_unknown_metric_is_refused_with_a_suggestion():
    assert error_of({"policy": "x", "title": "t", "rules": [rule(id="ir", metric="fairness.selection_rte.ratio")]}) == (
        "policy p.yaml: rule 'ir': field 'metric': 'fairness.selection_rte.ratio' is not a known metric id; did you "
        "mean 'fairness.selection_rate.ratio'? see the metric catalogue in auditkit/policies/README.md")
    assert error_of({"policy": "x", "title": "t", "rules": [rule(id="ir", metric="privacy.loss.tpr_at_2")]}) == (
        "policy p.yaml: rule 'ir': field 'metric': false-positive rate 2 must lie strictly between 0 and 1")


def test_extra_keys_are_refused():
    assert error_of({"policy": "x", "title": "t", "rules": [rule(id="ir", sevrity="warn")]}) == (
        "policy p.yaml: rule 'ir': unknown field 'sevrity'; allowed: id, metric, scope, bound, severity, min_n, "
        "if_straddles, when_insufficient, requirement, description, applies_to")
    assert error_of({"policy": "x", "title": "t", "rules": [rule(id="ir", bound={"kind": "absolute", "mn": 0.8})]}) == (
        "policy p.yaml: rule 'ir': unknown field 'bound.mn'; allowed: kind, min, max")
    assert error_of({"policy": "x", "title": "t", "rule": []}) == (
        "policy p.yaml: unknown field 'rule'; allowed: policy, title, description, references, flag_budget, rules "
        "(and 1 more)")
    assert error_of({"policy": "x", "title": "t", "rules": [rule(scope={"attribute": ["sex"]})]}) == (
        "policy p.yaml: rule 'r': unknown field 'scope.attribute'; allowed: attributes, groups, overall")


def test_other_schema_errors_name_rule_and_field():
    doc = {"policy": "x", "title": "t"}
    assert error_of({**doc, "rules": [rule(severity="error")]}) == (
        "policy p.yaml: rule 'r': field 'severity' is 'error'; use one of: 'fail' or 'warn'")
    assert error_of({**doc, "rules": [rule(bound={"kind": "between", "low": 1})]}) == (
        "policy p.yaml: rule 'r': field 'bound.kind' is 'between'; use one of: absolute, ratio_band, "
        "relative_to_reference, relative_to_previous")
    no_req = rule()
    del no_req["requirement"]
    assert error_of({**doc, "rules": [rule(id="a"), no_req]}) == "policy p.yaml: rule 'r': missing field " \
                                                                 "'requirement'; add it"
    assert error_of({**doc, "rules": [{"metric": "x"}]}).startswith("policy p.yaml: rule #1: missing field 'id'")
    assert error_of({**doc, "rules": [rule(min_n="many")]}) == (
        "policy p.yaml: rule 'r': field 'min_n' is 'many': input should be a valid integer, unable to parse string "
        "as an integer")
    assert error_of({**doc, "rules": []}) == (
        "policy p.yaml: field 'rules' is []: list should have at least 1 item after validation, not 0")
    assert error_of([1]) == "policy p.yaml: the file must be a YAML mapping with keys policy, title, rules; got list"


def test_rules_that_cannot_apply_are_refused():
    doc = {"policy": "x", "title": "t"}
    assert error_of({**doc, "rules": [rule(id="a"), rule(id="a")]}) == (
        "policy p.yaml: rule 'a': id used twice; give each rule its own id")
    assert error_of({**doc, "rules": [rule(scope={"groups": ["Female"]})]}) == (
        "policy p.yaml: rule 'r': field 'scope.groups': metric fairness.selection_rate.impact_ratio_max has one value "
        "per attribute, not per group; remove scope.groups")
    assert error_of({**doc, "rules": [rule(bound={"kind": "relative_to_reference", "max_difference": 0.1})]}) == (
        "policy p.yaml: rule 'r': field 'bound.kind': relative_to_reference needs a per-group fairness metric such as "
        "fairness.tpr; fairness.selection_rate.impact_ratio_max has no reference group")
    assert error_of({**doc, "rules": [rule(bound={"kind": "absolute"})]}) == (
        "policy p.yaml: rule 'r': field 'bound': an absolute bound needs min, max or both")
    assert error_of({**doc, "rules": [rule(bound={"kind": "ratio_band", "low": 1.25, "high": 0.8})]}) == (
        "policy p.yaml: rule 'r': field 'bound': low 1.25 is above high 0.8; swap them")
    assert error_of({**doc, "rules": [rule(bound={"kind": "relative_to_previous"})]}) == (
        "policy p.yaml: rule 'r': field 'bound': a relative_to_previous bound needs max_increase, max_decrease or both")


def test_missing_plugin_is_refused_before_running():
    p = policy(rule(id="ir"), rule(id="auc", metric="privacy.loss.auc", bound={"kind": "absolute", "max": 0.6}))
    assert required_plugins(p) == {"fairness", "privacy"}
    check_metrics_available(p, {"fairness", "privacy", "data_quality"})
    with pytest.raises(InputError) as e:
        check_metrics_available(p, ["fairness"])
    assert str(e.value) == ("policy test.yaml: rule 'auc': metric privacy.loss.auc needs privacy, which this audit "
                            "does not run; enable the privacy plugin in the configuration or remove the rule")


# ---- files ----

def test_load_from_a_file(tmp_path):
    text = ("policy: mine\ntitle: Mine\nrules:\n  - id: ir\n    metric: fairness.selection_rate.impact_ratio_max\n"
            "    bound: {kind: absolute, min: 0.8}\n    severity: fail\n    requirement: internal\n")
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    p = load_policy(path)
    assert (p.name, p.source, p.sha256) == ("mine", str(path), hashlib.sha256(text.encode()).hexdigest())
    assert policy_sha256(str(path)) == p.sha256


def test_python_tags_are_refused_and_never_run(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.yaml"
    path.write_text(f"policy: !!python/object/apply:os.system ['touch {marker}']\ntitle: t\nrules: []\n")
    with pytest.raises(InputError) as e:
        load_policy(path)
    assert str(e.value) == (
        f"policy {path}: not valid YAML at line 1, column 9: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object/apply:os.system'; only plain YAML is accepted (no !!python tags), fix "
        "the syntax")
    assert not marker.exists()


def test_yaml_syntax_and_duplicate_keys(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("policy: a\ntitle: t\npolicy: b\nrules: []\n")
    with pytest.raises(InputError) as e:
        load_policy(path)
    assert str(e.value) == (f"policy {path}: not valid YAML at line 3, column 1: key 'policy' given twice; only "
                            "plain YAML is accepted (no !!python tags), fix the syntax")
    path.write_text("policy: [a\n")
    with pytest.raises(InputError, match=r"not valid YAML at line 2, column 1: "):
        load_policy(path)


def test_unknown_policy_names():
    with pytest.raises(InputError) as e:
        load_policy("no-such-policy")
    assert str(e.value) == ("policy no-such-policy: no such file and no built-in policy of that name; give a YAML "
                            "file or one of: clinical-privacy, eu-ai-act-high-risk, nyc-ll144-impact-ratio")
    with pytest.raises(InputError, match=r"^policy builtin:nope: no built-in policy of that name; "):
        load_policy("builtin:nope")


def test_nan_bounds_are_refused():
    assert "field 'bound.max' is nan" in error_of(
        {"policy": "x", "title": "t", "rules": [rule(bound={"kind": "absolute", "max": math.nan})]})


def test_clinical_privacy_sets_the_flag_budget_and_other_policies_leave_it():
    assert load_policy("clinical-privacy").flag_budget == 0.01
    assert load_policy("eu-ai-act-high-risk").flag_budget is None
    assert load_policy("clinical-privacy").to_dict()["flag_budget"] == 0.01
