"""Metrics that fit the decision and honest small numbers in the policy: rules not applicable to the run's kind of
decision, a withheld rate and every group left out of a comparison as an INSUFFICIENT DATA check, calibration
observations from ``fairness.performance``, the four-fifths callouts and the metric-choice paragraph."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from auditkit.audits.fairness.intervals import mover_difference
from auditkit.errors import InputError
from auditkit.policy import evaluate, load_policy, observations, overall_status, parse_policy
from auditkit.report.metric_choice import four_fifths_applies, metric_choice
from auditkit.rundoc import load_run

GOLDEN = Path(__file__).parent / "cli" / "golden" / "heart_findings.json"
SAMPLE_RUN = Path(__file__).parent / "report" / "data" / "sample_run.json"


def _policy(*rules):
    return parse_policy({"policy": "t", "title": "T", "rules": list(rules)}, source="t.yaml")


def _rule(**kw):
    return {"id": "r", "metric": "fairness.tpr.difference", "bound": {"kind": "absolute", "max": 0.1},
            "severity": "fail", "min_n": 30, "requirement": "req", **kw}


def _row(group, count, metrics, denominators, insufficient=None, intervals=None):
    return {"group": group, "count": count, "sufficient": count >= 30, "unknown": False, "metrics": metrics,
            "intervals": intervals or {}, "denominators": denominators, "insufficient": insufficient or {}}


#: two sexes; women: 40 records of which 3 positives (TPR withheld), men: 120 records, 60 positives
FAIRNESS = {
    "favourable": "yes",
    "groups": [{"attribute": "sex", "min_group_size": 30, "groups": [
        _row("Female", 40, {"count": 40, "selection_rate": 0.1, "fpr": 0.027}, {"selection_rate": 40, "tpr": 3,
             "fpr": 37}, {"tpr": 3}),
        _row("Male", 120, {"count": 120, "selection_rate": 0.5, "tpr": 0.8, "fpr": 0.2},
             {"selection_rate": 120, "tpr": 60, "fpr": 60}, intervals={"tpr": [0.68, 0.88]})]}],
    "disparities": {"sex": [
        {"attribute": "sex", "metric": "tpr", "status": "insufficient_data", "reference": "Male", "method": "newcombe",
         "reason": "tpr is reported only in the reference group 'Male' among the groups large enough to compare",
         "excluded": {"Female": "3 positives, fewer than 30"}}]},
}


def test_rule_not_applicable_to_the_decision_kind_is_listed_and_does_not_count():
    pol = _policy(_rule(id="sr", metric="fairness.selection_rate.ratio", bound={"kind": "absolute", "min": 0.8},
                        applies_to=["selection", "lending", "hiring"]),
                  _rule(id="acc", metric="fairness.accuracy.difference"))
    obs = observations({"fairness": FAIRNESS})
    checks = evaluate(pol, obs, decision_kind="diagnosis")
    sr = next(c for c in checks if c.rule == "sr")
    assert (sr.status, sr.decided_by, sr.note) == ("not_applicable", "decision kind",
                                                   "not applicable (decision kind diagnosis)")
    assert sr.explanation == ("Lowest selection rate of any group divided by the highest; not applicable (decision "
                              "kind diagnosis): the rule applies to selection, lending, hiring decisions only.")
    assert overall_status([sr]) == "pass"   # counts toward neither pass nor fail
    assert overall_status(checks) == overall_status([c for c in checks if c.rule != "sr"])
    assert next(c for c in evaluate(pol, obs, decision_kind="lending") if c.rule == "sr").status != "not_applicable"
    # a rule without applies_to applies to every kind, "other" included
    assert all(c.status != "not_applicable" for c in evaluate(pol, obs) if c.rule == "acc")


def test_applies_to_is_validated():
    with pytest.raises(InputError) as e:
        _policy(_rule(applies_to=["diagnosys"]))
    assert str(e.value) == ("policy t.yaml: rule 'r': field 'applies_to.0' is 'diagnosys'; use one of: 'diagnosis', "
                            "'triage', 'screening', 'selection', 'lending', 'hiring' or 'other'")


def test_withheld_rate_and_excluded_group_become_insufficient_data_checks():
    obs = {(o.metric, o.attribute, o.group): o for o in observations({"fairness": FAIRNESS})}
    withheld = obs["fairness.tpr", "sex", "Female"]
    assert (withheld.value, withheld.n, withheld.n_of) == (None, 3, "positives")
    assert withheld.note == "not reported: 3 positives, fewer than the minimum of 30"
    assert obs["fairness.tpr", "sex", "Male"].n == 60   # n is the rate's own denominator, not the group's size
    checks = evaluate(_policy(_rule(), _rule(id="per-group", metric="fairness.tpr",
                                             bound={"kind": "absolute", "min": 0.5})), list(obs.values()))
    rows = {(c.rule, c.group): c for c in checks}
    cell = rows["r", "Female"]
    assert (cell.status, cell.attribute, cell.n, cell.decided_by) == ("insufficient_data", "sex", 3, "min_n")
    assert cell.explanation.endswith("not decided: 3 positives, fewer than the rule's minimum of 30.")
    assert cell.note == "left out of the comparison (3 positives, fewer than 30)"
    assert rows["r", None].status == "insufficient_data"
    assert rows["per-group", "Female"].status == "insufficient_data"
    assert rows["per-group", "Male"].status == "pass"


def test_every_excluded_cell_of_the_heart_example_has_an_insufficient_data_row():
    """On the heart example (golden findings): every group a rule's comparison leaves out (too few records,
    positives or negatives) appears in that rule's checks as INSUFFICIENT DATA; none is silently dropped."""
    run = json.loads(GOLDEN.read_text())
    checks = run["checks"]
    rules = {r["id"]: r for r in run["policy"]["rules"]}
    expected = set()
    for attr, items in run["fairness"]["disparities"].items():
        for d in items:
            for g, why in d["excluded"].items():
                if why.startswith("unknown") or why == "suppressed":   # withheld after the policy ran
                    continue
                for rid, r in rules.items():
                    parts = r["metric"].split(".")
                    if (len(parts) == 3 and parts[1] == d["metric"] and parts[2] in ("difference", "ratio")
                            and "not_applicable" not in {c["status"] for c in checks if c["rule"] == rid}):
                        expected.add((rid, attr, g))
    assert expected, "the heart example leaves groups out (e.g. the older women): the test must see them"
    found = {(c["rule"], c["attribute"], c["group"]): c for c in checks}
    for key in expected:
        assert key in found, f"no check row for {key}"
        assert found[key]["status"] == "insufficient_data"
    # the women are among them for the false-negative-rate gap (12 with the disease; a triage decision); the
    # older women's intersection is suppressed as a whole, and its checks keep their verdict without a value
    assert ("eu-ai-act-high-risk/fnr-gap", "sex", "Female") in expected
    assert found[("eu-ai-act-high-risk/fnr-gap", "sex & age_band", "Female & 55+")]["status"] == "insufficient_data"


PERFORMANCE = {"threshold": 0.5, "overall": {"group": "all", "n": 230}, "groups": [
    {"attribute": "sex", "rows": [
        {"group": "Female", "n": 57, "ece": 0.04, "ece_ci": [0.02, 0.09], "suppressed": False},
        {"group": "Male", "n": 173, "ece": 0.11, "ece_ci": [0.07, 0.15], "suppressed": False},
        {"group": "unknown", "n": 4, "ece": 0.2, "ece_ci": [0.0, 0.5], "suppressed": False}]},
    {"attribute": "sex & age_band", "rows": [
        {"group": "Female & 55+", "suppressed": True},
        {"group": "Female & <55", "n": 36, "ece": 0.05, "ece_ci": [0.01, 0.12], "suppressed": False},
        {"group": "Male & 55+", "n": 89, "ece": 0.09, "ece_ci": [0.05, 0.14], "suppressed": False}]}]}


def test_calibration_observations_read_the_performance_part():
    fairness = dict(copy.deepcopy(FAIRNESS), performance=PERFORMANCE)
    fairness["groups"].append({"attribute": "sex & age_band", "min_group_size": 30, "groups": []})
    obs = {(o.metric, o.attribute, o.group): o for o in observations({"fairness": fairness})}
    male = obs["fairness.ece", "sex", "Male"]
    assert (male.value, male.interval, male.n) == (0.11, (0.07, 0.15), 173)
    assert ("fairness.ece", "sex", "unknown") not in obs
    gap = obs["fairness.ece.difference", "sex", None]
    assert gap.value == pytest.approx(0.07) and gap.n == 57 and gap.note == "Male compared with Female"
    # MOVER-D from the two groups' intervals: 0.07 − √(0.04² + 0.05²), 0.07 + √(0.04² + 0.02²)
    assert gap.interval == pytest.approx(mover_difference(0.11, (0.07, 0.15), 0.04, (0.02, 0.09)))
    assert gap.interval == pytest.approx((0.07 - (0.04 ** 2 + 0.05 ** 2) ** 0.5, 0.07 + (0.04 ** 2 + 0.02 ** 2) ** 0.5))
    suppressed = obs["fairness.ece", "sex & age_band", "Female & 55+"]
    assert suppressed.value is None and suppressed.n is None   # no count of a suppressed cell
    left = obs["fairness.ece.difference", "sex & age_band", "Female & 55+"]
    assert left.note == "left out of the comparison (suppressed: too few records to show)"
    pol = load_policy("eu-ai-act-high-risk")
    checks = [c for c in evaluate(pol, list(obs.values()), decision_kind="diagnosis")
              if c.rule in ("calibration-gap", "calibration-per-group")]
    status = {(c.rule, c.attribute, c.group): c.status for c in checks}
    assert status["calibration-gap", "sex", None] == "warn"         # 0.07 > 0.05, interval straddles
    assert status["calibration-per-group", "sex", "Female"] == "pass"   # [0.02, 0.09] within ≤ 0.10
    assert status["calibration-per-group", "sex", "Male"] == "warn"     # [0.07, 0.15] straddles 0.10
    assert status["calibration-gap", "sex & age_band", "Female & 55+"] == "insufficient_data"
    # without a performance part the calibration rules have no value: insufficient data, never a pass
    bare = evaluate(pol, observations({"fairness": FAIRNESS}), decision_kind="diagnosis")
    assert {c.status for c in bare if c.rule.startswith("calibration")} == {"insufficient_data"}


# ---- the report: four-fifths callouts and the metric-choice paragraph ----

@pytest.fixture(scope="module")
def heart_run():
    return json.loads(SAMPLE_RUN.read_text(encoding="utf-8"))


def _doc(run: dict, kind: str, performance=None):
    run = copy.deepcopy(run)
    run.setdefault("scope", {})["decision_kind"] = kind
    if performance is not None:
        run["fairness"]["performance"] = performance
    return load_run(run)


def test_four_fifths_applies_only_to_selection_decisions(heart_run):
    assert [four_fifths_applies(_doc(heart_run, k)) for k in ("diagnosis", "triage", "screening", "other")] == \
        [False] * 4
    assert [four_fifths_applies(_doc(heart_run, k)) for k in ("selection", "lending", "hiring")] == [True] * 3


def test_metric_choice_wording_for_a_diagnosis(heart_run):
    text = metric_choice(_doc(heart_run, "diagnosis", PERFORMANCE))
    assert text == (
        "This model supports a diagnosis decision, so its fairness is judged by its errors and its calibration in "
        "each group. A missed case (a patient who has the condition but is not flagged “yes”) is the costly error, "
        "so the true-positive rate should be the same in every group (its complement, the false-negative rate, is "
        "what the policy checks). False alarms cost unnecessary reviews, so the false-positive rate should be the "
        "same too. A predicted risk should mean the same in every group, so calibration is checked within each "
        "group. How common the condition is differs between groups, so equal selection rates are not expected and "
        "the four-fifths rule of employment law is not applied.")


def test_metric_choice_names_the_prevalence_of_each_group_when_known(heart_run):
    perf = copy.deepcopy(PERFORMANCE)
    perf["groups"][0]["rows"] = [dict(r, prevalence=p) for r, p in zip(perf["groups"][0]["rows"][:2], (0.26, 0.63),
                                                                        strict=True)]
    text = metric_choice(_doc(heart_run, "triage", perf))
    assert "differs between groups (in the test data: 26\u202f% of Female, 63\u202f% of Male), so equal" in text \
        or "differs between groups (in the test data: 26 % of Female, 63 % of Male), so equal" in text


def test_metric_choice_for_selection_and_other_decisions(heart_run):
    lending = metric_choice(_doc(heart_run, "lending"))
    assert lending.startswith("This model supports a lending decision, where being selected (“yes”) is itself")
    assert "four-fifths rule (below 0.8 is generally regarded as evidence of adverse impact)" in lending
    other = metric_choice(_doc(heart_run, "other"))
    assert other.endswith("the four-fifths rule is not applied, since no selection rule is claimed for this "
                          "decision.")


def test_the_disparity_note_says_why_each_group_was_left_out_without_a_suppressed_count():
    from auditkit.audits.fairness.findings import Disparity
    from auditkit.report.results import excluded_note

    d = Disparity(attribute="a", metric="tpr", status="ok",
                  excluded={"x": "21 records, fewer than 30", "y": "12 positives, fewer than 30",
                            "unknown": "unknown (missing sensitive value)"})
    note = excluded_note([d], 30, set())
    assert note == ("Left out of the comparison: unknown (unknown category); x (suppressed (n < 30)); y from TPR "
                    "(12 positives, fewer than 30).")
    assert "21" not in note
