"""Checking a policy against observations: one check per (rule × matching observation), and the run's status.

For each rule, the quantity checked and its acceptable range ``[L, U]`` (inclusive, to 1e-9) are::

    absolute               value                          [min, max]  (a missing side is unbounded)
    ratio_band             value                          [low, high]
    relative_to_reference  value − reference_value        [−max_difference, max_difference]
                           interval: the bootstrap interval of the difference (``to_reference``) if any
    relative_to_previous   value − previous value         [−max_decrease, max_increase]
                           interval: the current interval shifted by the previous (point) value

Decision, with an interval ``[lo, hi]``: inside ``[L, U]`` → pass; disjoint from it → the rule's severity;
straddling a limit → the rule's ``if_straddles`` (``fail`` meaning the severity). Without an interval the
point value decides. ``insufficient_data`` when the observation has fewer than ``min_n`` records, no value,
or (``relative_to_previous``) no previous value; a rule matching no observation at all gives one
``insufficient_data`` check, so a rule never passes by matching nothing. The reference group is not
checked against itself.

A rule with ``applies_to`` whose kinds do not include the run's decision kind (``report.decision_kind``) gives
one ``not_applicable`` check ("not applicable (decision kind diagnosis)"), which counts toward neither pass nor
fail. A per-group observation without a value because the rate's own denominator is below the minimum, or a group
left out of a comparison for that reason, gives an ``insufficient_data`` check of its own: no excluded cell is
silently dropped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from ..rundoc import Check
from .observations import Observation, canonical_metric, metric_info, observations
from .rules import AbsoluteBound, Policy, RatioBand, RelativeToPrevious, RelativeToReference, Rule

STATUSES = ("pass", "warn", "fail", "insufficient_data", "not_applicable")
RUN_STATUSES = ("pass", "pass_with_warnings", "fail", "incomplete")


def fmt(x: float) -> str:
    """0.8 → '0.80', 0.05 → '0.05', 0.001 → '0.001', 1.5 → '1.50'."""
    return f"{x:.2f}" if abs(x - round(x, 2)) < 1e-12 else f"{x:.3g}"


_SHORT = {"accuracy": "accuracy", "selection_rate": "selection rate", "tpr": "true-positive rate",
          "fpr": "false-positive rate", "fnr": "false-negative rate", "precision": "precision",
          "mean_loss": "mean loss", "auc": "AUC"}
_LONG = {"accuracy": "share of records classified correctly",
         "selection_rate": "share of records given the favourable outcome",
         "tpr": "share of truly favourable records given the favourable outcome",
         "fpr": "share of truly unfavourable records given the favourable outcome",
         "fnr": "share of truly favourable records denied it", "precision": "share of favourable predictions that "
         "are correct", "mean_loss": "cross-entropy of the model", "auc": "how well scores rank positives first"}
_ATTACK = {"loss": "loss-threshold", "self_influence": "self-influence", "reference": "reference-model",
           "tracin": "TracIn"}
_RISK = {"mean_risk": "mean privacy-risk score", "p95_risk": "95th percentile of the privacy-risk score",
         "flag_rate": "share of training records flagged"}


def meaning(metric: str) -> str:
    """What a metric id measures, in plain words (no final full stop)."""
    info = metric_info(metric)
    if info is None:
        return metric
    g = info[0].groupdict()
    m, a, s = g.get("m"), _ATTACK.get(g.get("a") or "", ""), g.get("s")
    if metric == "fairness.ece":
        return "The group's expected calibration error (mean gap between predicted risk and observed rate)"
    if metric == "fairness.ece.difference":
        return "Gap in expected calibration error between the worst and the best calibrated group"
    if metric.endswith(".impact_ratio_max"):
        return "Lowest selection rate of any group divided by the highest (the four-fifths impact ratio)"
    if metric.endswith(".impact_ratio"):
        return f"The group's {_SHORT[m]} divided by that of the reference group"
    if metric.endswith(".difference"):
        return f"Gap in {_SHORT[m]} between the groups with the highest and the lowest value"
    if metric.endswith(".ratio"):
        return f"Lowest {_SHORT[m]} of any group divided by the highest"
    if m:
        return f"The group's {_SHORT[m]} ({_LONG[m]})"
    if g.get("fpr"):
        return (f"Share of training records the {a} membership attack identifies while wrongly accusing "
                f"{float(g['fpr']) * 100:g}% of held-out records")
    if metric.endswith(".auc"):
        return f"How well the {a} membership attack tells training from held-out records (AUC, 0.5 = chance)"
    if metric.endswith(".advantage"):
        return f"Membership advantage of the {a} attack (largest true- minus false-positive rate, 0 = none)"
    if ".exposure_gap." in metric:
        return f"Gap in the {_RISK[s]} between the most and the least exposed group"
    if ".exposure." in metric:
        return f"The group's {_RISK[s]}"
    return {"privacy.flagged_share": "Share of training records flagged as exposed to membership inference",
            "data_quality.share_worth_inspecting": "Share of training records worth inspecting as likely "
            "mislabelled or anomalous",
            "influence.stability.agreement": "Smallest overlap of the top records behind a key finding when the "
            "damping changes tenfold or a second solver is used (1 = identical)",
            "influence.retraining.spearman": "Smallest rank correlation between estimated and actual retraining "
            "effects (1 = perfect)"}[metric]


def _limits(rule: Rule) -> tuple[float, float]:
    b = rule.bound
    if isinstance(b, AbsoluteBound):
        return (-math.inf if b.min is None else b.min), (math.inf if b.max is None else b.max)
    if isinstance(b, RatioBand):
        return b.low, b.high
    if isinstance(b, RelativeToReference):
        return -b.max_difference, b.max_difference
    return (-math.inf if b.max_decrease is None else -b.max_decrease), (
        math.inf if b.max_increase is None else b.max_increase)


def bound_text(rule: Rule, reference: str | None = None) -> str:
    """The bound in words: '≥ 0.80', '≤ 0.10', 'between 0.80 and 1.25', '|difference from Male| ≤ 0.10', ..."""
    b, (lo, hi) = rule.bound, _limits(rule)
    if isinstance(b, RelativeToReference):
        return f"|difference from {reference or 'the reference group'}| ≤ {fmt(b.max_difference)}"
    if isinstance(b, RelativeToPrevious):
        if b.max_decrease is None:
            return f"increase ≤ {fmt(hi)} since the previous audit"
        if b.max_increase is None:
            return f"decrease ≤ {fmt(-lo)} since the previous audit"
        return f"change between −{fmt(-lo)} and +{fmt(hi)} since the previous audit"
    if lo == -math.inf:
        return f"≤ {fmt(hi)}"
    if hi == math.inf:
        return f"≥ {fmt(lo)}"
    return f"between {fmt(lo)} and {fmt(hi)}"


def _direction(rule: Rule, lo: float, hi: float) -> str:
    b = rule.bound
    if isinstance(b, RelativeToReference):
        return f"a larger gap either way is worse, the rule allows at most {fmt(hi)}"
    if isinstance(b, RelativeToPrevious):
        parts = ([f"an increase above {fmt(hi)}"] if hi < math.inf else []) + (
            [f"a decrease below {fmt(-lo)}"] if lo > -math.inf else [])
        return f"{' or '.join(parts)} breaches the rule"
    if lo == -math.inf:
        return f"higher is worse, the rule allows at most {fmt(hi)}"
    if hi == math.inf:
        return f"lower is worse, the rule requires at least {fmt(lo)}"
    return f"values outside {fmt(lo)} to {fmt(hi)} breach the rule"


def _decide(rule: Rule, value: float, interval, lo: float, hi: float) -> tuple[str, str]:
    """(status, decided_by) for a quantity with an acceptable range [lo, hi]."""
    tol_lo, tol_hi = lo - 1e-9 * max(1.0, abs(lo)), hi + 1e-9 * max(1.0, abs(hi))
    if interval is None:
        return ("pass" if tol_lo <= value <= tol_hi else rule.severity), "point"
    a, b = interval
    if tol_lo <= a and b <= tol_hi:
        return "pass", "interval"
    if b < tol_lo or a > tol_hi:
        return rule.severity, "interval"
    return {"warn": "warn", "pass": "pass", "fail": rule.severity}[rule.if_straddles], "straddle rule"


def _in_scope(rule: Rule, o: Observation) -> bool:
    s = rule.scope
    if o.attribute is None:
        return s.overall if s.overall is not None else not s.attributes
    if s.attributes is not None and o.attribute not in s.attributes:
        return False
    return o.group is None or s.groups is None or o.group in s.groups


def _previous_map(previous) -> dict | None:
    if previous is None:
        return None
    if isinstance(previous, dict):
        previous = observations(previous)
    return {o.key: o for o in (p if isinstance(p, Observation) else Observation.from_dict(p) for p in previous)}


def _check(rule: Rule, o: Observation, prev: dict | None) -> Check:
    lo, hi = _limits(rule)
    value, interval, compared, reason, decided = o.value, o.interval, None, None, "no value"
    groups = list(o.groups) if o.groups else None
    if isinstance(rule.bound, RelativeToReference) and o.value is not None:
        compared = {"label": f"reference group {o.reference}", "value": o.reference_value}
        groups = [o.group, o.reference] if o.group and o.reference else groups
        if o.reference_value is None:
            reason = f"the reference group {o.reference} has no value"
        else:
            value, interval = o.value - o.reference_value, o.difference_interval
    elif isinstance(rule.bound, RelativeToPrevious) and o.value is not None:
        p = None if prev is None else prev.get(o.key)
        if p is None or p.value is None:
            reason = ("there is no previous audit to compare with" if prev is None
                      else "the previous audit has no value for it")
        else:
            compared = {"label": "previous audit", "value": p.value}
            value = o.value - p.value
            interval = None if o.interval is None else (o.interval[0] - p.value, o.interval[1] - p.value)
    if rule.min_n is not None and o.n is not None and o.n < rule.min_n:
        reason, decided = f"{o.n} {o.n_of or 'records'}, fewer than the rule's minimum of {rule.min_n}", "min_n"
    elif o.value is None:
        reason = o.note or "the metric has no value here"
    if reason is None:
        status, decided = _decide(rule, value, interval, lo, hi)
    else:
        status = "insufficient_data"
    text = meaning(o.metric)
    if compared and compared["value"] is not None:
        text += f", compared with the {compared['label']} ({fmt(compared['value'])})"
    text += f"; {_direction(rule, lo, hi)}"
    if decided == "straddle rule":
        text += "; its confidence interval straddles the limit"
    text += f"; not decided: {reason}." if reason else "."
    return Check(rule=rule.id, metric=o.metric, attribute=o.attribute, group=o.group, value=value,
                 interval=list(interval) if interval is not None else None,
                 bound=bound_text(rule, o.reference), severity=rule.severity, status=status, decided_by=decided,
                 requirement=rule.requirement, explanation=text, n=o.n, when_insufficient=rule.when_insufficient,
                 compared_with=compared, note=o.note, groups=groups)


def _unmatched(rule: Rule, obs: list[Observation]) -> Check:
    present = sorted({o.attribute for o in obs if o.attribute is not None
                      and canonical_metric(o.metric) == canonical_metric(rule.metric)})
    where = ""
    if rule.scope.attributes:
        where = f" for {', '.join(rule.scope.attributes)}" + (
            f" (it has {', '.join(present)})" if present else "")
    lo, hi = _limits(rule)
    return Check(rule=rule.id, metric=rule.metric, attribute=None, group=None, value=None, interval=None,
                 bound=bound_text(rule), severity=rule.severity, status="insufficient_data", decided_by="no value",
                 requirement=rule.requirement,
                 explanation=f"{meaning(rule.metric)}; {_direction(rule, lo, hi)}; not decided: this run has no "
                             f"value of {rule.metric}{where}.",
                 n=None, when_insufficient=rule.when_insufficient, compared_with=None, note=None)


def applies(rule: Rule, decision_kind: str | None) -> bool:
    """Whether ``rule`` is checked for a decision of this kind (a rule without ``applies_to`` always is)."""
    return rule.applies_to is None or (decision_kind or "other") in rule.applies_to


def _not_applicable(rule: Rule, decision_kind: str | None) -> Check:
    kind = decision_kind or "other"
    return Check(rule=rule.id, metric=rule.metric, attribute=None, group=None, value=None, interval=None,
                 bound=bound_text(rule), severity=rule.severity, status="not_applicable", decided_by="decision kind",
                 requirement=rule.requirement,
                 explanation=f"{meaning(rule.metric)}; not applicable (decision kind {kind}): the rule applies to "
                             f"{', '.join(rule.applies_to or [])} decisions only.",
                 n=None, when_insufficient=rule.when_insufficient, compared_with=None,
                 note=f"not applicable (decision kind {kind})")


def evaluate(policy: Policy, observations: Iterable[Observation], previous=None, *,
             decision_kind: str | None = "other") -> list[Check]:
    """One check per (rule × observation in the rule's scope), rules in file order.

    ``observations``: :class:`Observation` objects or their ``to_dict()`` (as a history store keeps them).

    ``previous``: the previous audit, as its run document (or findings dict), or its observations (objects
    or their ``to_dict()``); ``None`` when there is none. Only ``relative_to_previous`` rules read it.

    ``decision_kind``: the run's ``report.decision_kind``; a rule whose ``applies_to`` leaves it out gives one
    ``not_applicable`` check.
    """
    obs = [o if isinstance(o, Observation) else Observation.from_dict(o) for o in observations]
    prev = _previous_map(previous)
    checks: list[Check] = []
    for rule in policy.rules:
        if not applies(rule, decision_kind):
            checks.append(_not_applicable(rule, decision_kind))
            continue
        target = canonical_metric(rule.metric)
        matched = [o for o in obs if canonical_metric(o.metric) == target and _in_scope(rule, o)]
        if isinstance(rule.bound, RelativeToReference):
            matched = [o for o in matched if o.group != o.reference]
        checks += [_check(rule, o, prev) for o in matched] or [_unmatched(rule, obs)]
    return checks


def overall_status(checks: Iterable[Check | Mapping]) -> str:
    """fail if any check fails; else incomplete if a check lacks data and its rule says when_insufficient=fail;
    else pass_with_warnings if any check warns or lacks data; else pass (also for no checks at all). A
    ``not_applicable`` check counts toward none of these.
    ``checks``: :class:`~auditkit.rundoc.Check` objects (or their dicts, as a run document holds them)."""
    checks = [c if isinstance(c, Check) else Check.model_validate(c) for c in checks]
    if any(c.status == "fail" for c in checks):
        return "fail"
    if any(c.status == "insufficient_data" and c.when_insufficient == "fail" for c in checks):
        return "incomplete"
    if any(c.status in ("warn", "insufficient_data") for c in checks):
        return "pass_with_warnings"
    return "pass"
