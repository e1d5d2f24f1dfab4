"""The drivers of the gaps a policy flagged: for every fairness check that warns or fails and compares two
groups, the training records that drive the gap between exactly those two groups.

A check names its metric (``fairness.M.difference``, ``fairness.M.ratio``, ``fairness.M.impact_ratio``,
``fairness.selection_rate.impact_ratio_max``, or ``fairness.M`` checked relative to the reference group) and
the two groups it compares (``check["groups"]``, :mod:`auditkit.policy.observations`). The group metric ``M``
chooses the differentiable surrogate (:data:`~auditkit.audits.fairness.attribution.METRIC_SURROGATE`: TPR and
FNR → ``equal_opportunity``, FPR → ``false_positive``, selection rate → ``selection_rate``, accuracy and mean
loss → ``mean_loss``). Of the two groups, the disadvantaged one is the one worse off on ``M`` on the model's
decisions (:func:`~auditkit.audits.fairness.attribution.metric_gap`); ``gap`` is that metric gap (positive) with
its interval from the fairness findings (the disparity's ``difference_ci`` for its worst and best group, the
``to_reference`` interval for a group and the reference group, oriented the same way).

All the gaps' influence measurements are answered in one pass over the training gradients
(:meth:`AuditContext.prefetch <auditkit.audits.base.AuditContext.prefetch>`); a gap flagged by several checks
is attributed (and retrained) once. Where the surrogate points the other way (the disadvantaged group on
decisions is not worse off on predicted probabilities, e.g. a TPR of 100 % resting on three patients whose
predicted probabilities are low), no drivers are named and ``note`` says why. Checks of one group's own level
against a fixed bound compare no two groups and have no gap to attribute: they get no entry.
"""

from __future__ import annotations

import re

import numpy as np

from ..base import AuditContext, InfluenceRequests
from .attribution import METRIC_SURROGATE, attribute_pair, metric_gap, pair_request
from .metrics import record_groups

#: the metric ids of checks that compare two groups of a fairness metric: group ``m`` is the group metric
COMPARISON = re.compile(r"fairness\.(?P<m>[a-z_]+?)(?:\.(?:difference|ratio|impact_ratio|impact_ratio_max))?\Z")
#: the statuses of a check whose gap is attributed
FLAGGED = ("warn", "fail")


def group_metric(check: dict) -> str | None:
    """The group metric a fairness check compares two groups on (``tpr`` for ``fairness.tpr.difference``), or
    None when the check is not a fairness check comparing two groups."""
    m = COMPARISON.match(str(check.get("metric", "")))
    groups = check.get("groups")
    if m is None or check.get("status") not in FLAGGED or not groups or len(groups) != 2 or groups[0] == groups[1]:
        return None
    return m.group("m")


def _gap_interval(findings: dict, attribute: str, metric: str, dis: str, adv: str) -> list | None:
    """The interval of the gap between ``dis`` and ``adv`` on ``metric`` (positive = ``dis`` worse off) from the
    fairness findings' disparity of ``metric``: its ``difference_ci`` for its worst and best group, else the
    ``to_reference`` interval of a group and the reference group, turned; None when the findings hold none."""
    disparity = next((d for d in findings.get("disparities", {}).get(attribute, []) if d.get("metric") == metric),
                     None)
    if disparity is None or disparity.get("status") != "ok":
        return None
    ci = disparity.get("difference_ci")
    if {dis, adv} == {disparity.get("worst_group"), disparity.get("best_group")} and ci and None not in ci:
        return [float(ci[0]), float(ci[1])]
    ref = disparity.get("reference")
    other = adv if dis == ref else dis if adv == ref else None
    to_ref = (disparity.get("to_reference") or {}).get(other) if other is not None else None
    ci = (to_ref or {}).get("difference_ci")
    if not ci or None in ci:
        return None
    # ci is of value(other) − value(ref): the gap is that when (other is worse) differs from (higher is better)
    flip = (dis == other) == bool(disparity.get("higher_is_better", True))
    return [-float(ci[1]), -float(ci[0])] if flip else [float(ci[0]), float(ci[1])]


def _comparison(context: AuditContext, findings: dict, check: dict) -> dict:
    """The gap one flagged check compares: its groups ordered worse-off first, the metric gap and its interval,
    the surrogate (None with a ``note`` where there is none)."""
    metric = group_metric(check)
    attribute = check["attribute"]
    first, second = check["groups"]
    out = {"rule": check["rule"], "check_status": check["status"], "metric": check["metric"], "attribute": attribute,
           "disadvantaged": first, "advantaged": second, "surrogate": METRIC_SURROGATE.get(metric), "gap": None,
           "gap_ci": None, "note": None, "group_metric": metric}
    table = next((t for t in findings.get("groups", []) if t.get("attribute") == attribute), None)
    if table is None:
        out["note"] = f"The fairness findings have no groups of {attribute}: no drivers are named."
        return out
    out["columns"] = table.get("columns") or [attribute]
    if out["surrogate"] is None:
        out["note"] = f"The {metric} has no differentiable surrogate: its drivers are not estimated."
        return out
    test = context.test
    labels = record_groups(test.groups, out["columns"])
    proba, losses = context.proba("test"), context.losses("test")
    gap = metric_gap(metric, proba, test.y, losses, labels == first, labels == second, context.favourable)
    if np.isfinite(gap) and gap < 0:
        out["disadvantaged"], out["advantaged"], gap = second, first, -gap
    out["gap"] = gap if np.isfinite(gap) else None
    out["gap_ci"] = _gap_interval(findings, attribute, metric, out["disadvantaged"], out["advantaged"])
    return out


def _gap_key(comparison: dict) -> tuple:
    return (comparison["attribute"], comparison["surrogate"], comparison["disadvantaged"],
            comparison["advantaged"], comparison["group_metric"])


def flagged_gaps(context: AuditContext, findings: dict, checks: list[dict], *, n_drivers: int, top_k: list[int],
                 verify_k: list[int]) -> list[dict]:
    """One entry (a :class:`~auditkit.audits.fairness.findings.FlaggedGap` as a dict) per flagged fairness check
    that compares two groups, in the order of ``checks``: the gap, its drivers (at most ``n_drivers``), the
    surrogate gap predicted after removing the top k for each k of ``top_k``, and measured after retraining
    without the top k for each k of ``verify_k`` when the context has a training function."""
    comparisons = [_comparison(context, findings, c) for c in checks if group_metric(c) is not None]
    X, y = context.tensor("test")
    requests = InfluenceRequests()
    for c in comparisons:
        if c["note"] is None:
            request = pair_request(context, c["attribute"], c["columns"], c["surrogate"], c["disadvantaged"],
                                   c["advantaged"])
            if request is not None:
                requests.measures[request[0]] = (request[1], X, y)
    context.prefetch(requests)                 # every gap's measurement in one pass
    attributed: dict[tuple, object] = {}
    out = []
    for c in comparisons:
        entry = {k: c[k] for k in ("rule", "check_status", "metric", "attribute", "disadvantaged", "advantaged",
                                   "surrogate", "gap", "gap_ci")}
        entry |= {"surrogate_gap": None, "drivers": [], "predicted_gap_after": {}, "actual_gap_after": None,
                  "actual_metric_gap_after": None, "note": c["note"]}
        if c["note"] is None:
            key = _gap_key(c)
            if key not in attributed:
                attributed[key] = attribute_pair(context, c["attribute"], c["columns"], c["surrogate"],
                                                 c["disadvantaged"], c["advantaged"], n_drivers=n_drivers,
                                                 top_k=top_k, verify_k=verify_k, metric=c["group_metric"])
            entry.update(_effects(attributed[key], c))
        out.append(entry)
    return out


def _effects(att, comparison: dict) -> dict:
    """The surrogate gap, drivers and gaps after removal of one attribution (None: the surrogate is undefined)."""
    if att is None:
        return {"note": f"The {comparison['surrogate'].replace('_', ' ')} surrogate is undefined for these groups "
                        "(a group has no record it averages over): no drivers are named."}
    if not att.gap > 0:
        # the decisions put D worse off, the probabilities do not: removing records that narrow the surrogate
        # would not narrow this gap, so no drivers are named
        points = f"{100 * att.gap:.1f}".replace("-", "−")
        return {"surrogate_gap": att.gap,
                "note": f"On predicted probabilities {comparison['disadvantaged']} is not worse off than "
                        f"{comparison['advantaged']} (gap {points} pp): records that drive that gap would not "
                        "explain this one, so none are named."}
    verified = att.verification
    return {"surrogate_gap": att.gap,
            "drivers": [{"token": r.token, "effect": r.effect, "label": r.label, "groups": r.groups}
                        for r in att.drivers],
            "predicted_gap_after": {c["k"]: c["predicted_gap"] for c in att.removal_curve}
            | {v["k"]: v["predicted_gap"] for v in verified},
            "actual_gap_after": {v["k"]: v["actual_gap"] for v in verified} if verified else None,
            "actual_metric_gap_after": {v["k"]: v.get("actual_metric_gap") for v in verified} if verified else None}
