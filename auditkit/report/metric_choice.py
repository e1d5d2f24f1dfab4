"""Which fairness metrics fit the run's kind of decision, in words a clinician or a loan officer follows.

:func:`metric_choice` is the paragraph the executive summary and the methodology print;
:func:`four_fifths_applies` decides whether the four-fifths "adverse impact" callouts are shown;
:func:`interval_methods` says how the intervals of the fairness tables were made.
The kinds and their groups are in :mod:`auditkit.decisions`.
"""

from __future__ import annotations

from ..decisions import CLINICAL_KINDS, SELECTION_KINDS, selection_rule_applies
from ..rundoc import RunDocument
from . import fmt


def decision_kind(run: RunDocument) -> str:
    """The run's ``scope.decision_kind`` ("other" for a run written before the field existed)."""
    return getattr(run.scope, "decision_kind", None) or "other"


def four_fifths_applies(run: RunDocument) -> bool:
    """Whether the four-fifths rule of selection rates fits the decision: only for selection, lending and hiring
    (not for diagnosis, triage or screening, where prevalence differs between groups)."""
    return selection_rule_applies(decision_kind(run))


def _prevalence_words(run: RunDocument) -> str:
    """" (in the test data: 26 % of Female, 63 % of Male)" from the first attribute of ``fairness.performance``
    whose groups all have a prevalence and none is suppressed; "" when there is none."""
    perf = getattr(run.fairness, "performance", None) if run.fairness is not None else None
    blocks = (perf.get("groups") if isinstance(perf, dict) else getattr(perf, "groups", None)) or []
    for block in blocks:
        rows = block.get("rows") if isinstance(block, dict) else getattr(block, "rows", None)
        rows = rows or []

        def get(row, key):
            return row.get(key) if isinstance(row, dict) else getattr(row, key, None)

        if len(rows) >= 2 and not any(get(r, "suppressed") or fmt.missing(get(r, "prevalence")) for r in rows):
            parts = ", ".join(f"{fmt.pct(get(r, 'prevalence'))} of {get(r, 'group')}" for r in rows)
            return f" (in the test data: {parts})"
    return ""


def metric_choice(run: RunDocument) -> str:
    """One plain paragraph: which fairness metrics were chosen for this kind of decision, and why."""
    kind = decision_kind(run)
    fav = run.data.favourable
    if kind in CLINICAL_KINDS:
        return (f"This model supports a {kind} decision, so its fairness is judged by its errors and its "
                f"calibration in each group. A missed case (a patient who has the condition but is not flagged "
                f"“{fav}”) is the costly error, so the true-positive rate should be the same in every group (its "
                f"complement, the false-negative rate, is what the policy checks). False alarms cost unnecessary "
                f"reviews, so the false-positive rate should be the same too. A predicted risk should mean the same "
                f"in every group, so calibration is checked within each group. How common the condition is "
                f"differs between groups{_prevalence_words(run)}, so equal selection rates are not expected and "
                f"the four-fifths rule of employment law is not applied.")
    if kind in SELECTION_KINDS:
        return (f"This model supports a {kind} decision, where being selected (“{fav}”) is itself what fairness "
                f"rules look at. The selection rate of each group is compared, and the lowest divided by the "
                f"highest is read against the four-fifths rule (below 0.8 is generally regarded as evidence of "
                f"adverse impact). The true-positive rate should be the same in every group, so that people who "
                f"qualify are selected equally often, and the false-positive rate as well.")
    return ("The kind of decision is not stated as diagnosis, triage, screening, selection, lending or hiring, "
            "so fairness is judged by the error rates: the true-positive and false-positive rates should be the same "
            "in every group. Selection rates are shown as figures, but the four-fifths rule is not applied, since "
            "no selection rule is claimed for this decision.")


def interval_methods(run: RunDocument) -> str | None:
    """How the intervals of the fairness tables were made (None when the run has no disparity). A run written
    before the rates' intervals were score intervals (no ``method``) is described as it was made: bootstrap."""
    rows = [r for rs in (run.fairness.disparities.values() if run.fairness else []) for r in rs]
    if not rows:
        return None
    first = rows[0]
    boot = next((r for r in rows if r.method in (None, "bootstrap") and r.n_boot), None)
    if all(r.method is None for r in rows):
        resamples = boot.n_boot_used if boot is not None and "n_boot_used" in boot.model_fields_set else first.n_boot
        return (f"Confidence intervals: rates of a single group carry Wilson score intervals; differences and "
                f"ratios carry {fmt.pct(first.confidence)} intervals from a group-stratified bootstrap "
                f"({resamples} resamples, records resampled within each group, seed {first.seed}). An interval is "
                f"the range of values compatible with the data; a wide interval means the group is small.")
    minimum = min((t.min_group_size for t in run.fairness.groups), default=None)
    text = (f"Confidence intervals ({fmt.pct(first.confidence)}): a rate of a single group carries a Wilson score "
            f"interval; a difference between two groups' rates carries Newcombe's hybrid score interval and a ratio "
            f"a MOVER-R interval, both built from the two groups' Wilson intervals, so they stay valid at 0 % and "
            f"100 % (a bootstrap of 3 out of 3 returns 3 out of 3 every time and a width-0 interval).")
    if boot is not None:
        text += (f" Gaps in mean loss and AUC carry intervals from a group-stratified bootstrap ({boot.n_boot} "
                 f"resamples, seed {boot.seed}); none is shown where every resample gave the same value.")
    if minimum is not None:
        text += (f" A rate is reported only when its own denominator is at least {minimum}: the group's positives "
                 f"for the true-positive and false-negative rates, its negatives for the false-positive rate, its "
                 f"records for the selection rate and accuracy.")
    return text
