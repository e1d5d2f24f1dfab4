"""The executive summary (page 2 of the report): the verdict, one plain sentence per failing or warning policy
check (who is affected, by how much, with its interval, against which limit), the checks that could not be
decided, and the recommended next actions derived from the kinds of failure.

Everything is composed from the typed run document (the checks, the policy's rules and the fairness
disparities the checks were made from); nothing is recomputed. Rates and their gaps are in % and percentage
points (pp), as everywhere in the report.
"""

from __future__ import annotations

from ..rundoc import Check, RunDocument
from ..suppression import WITHHELD_CHECK
from . import fmt
from .blocks import Bullets, Heading, Paragraph, Section
from .metric_choice import metric_choice
from .sections import check_confidence

#: how a group's rate reads in a sentence: (short title, "{who} ... {value}" wording)
RATE_WORDS = {
    "fpr": ("False alarms", "people in {who} whose true outcome is not “{fav}” were predicted “{fav}” {v} of the time"),
    "tpr": ("Missed cases", "people in {who} whose true outcome is “{fav}” were recognised {v} of the time"),
    "fnr": ("Missed cases", "people in {who} whose true outcome is “{fav}” were missed {v} of the time"),
    "accuracy": ("Accuracy", "predictions for {who} were correct {v} of the time"),
    "selection_rate": ("Selection rate", "people in {who} were predicted “{fav}” {v} of the time"),
    "precision": ("Precision", "of the people in {who} predicted “{fav}”, {v} truly were"),
}
RATE_NAMES = {"fpr": "false-positive rate", "tpr": "true-positive rate", "fnr": "false-negative rate",
              "accuracy": "accuracy", "selection_rate": "selection rate", "precision": "precision"}
STATUS_ORDER = {"fail": 0, "warn": 1}
STATUS_LABELS = {
    "pass": ("PASS", "Every rule of the policy was met."),
    "pass_with_warnings": ("PASS WITH WARNINGS",
                           "No rule failed, but at least one result is close to its bound or rests on too few "
                           "records to decide; the warnings are listed in the executive summary."),
    "fail": ("FAIL", "At least one rule of the policy was not met; the executive summary says which and what to do."),
    "incomplete": ("INCOMPLETE", "At least one rule could not be decided because there were too few records, "
                                 "and the policy treats that as blocking."),
}
#: calibration checks in words (the expected calibration error, ECE, is in percentage points)
CALIBRATION_WORDS = {
    "fairness.ece": "Calibration error (how far predicted risks are from the observed rates)",
    "fairness.ece.difference": "Gap in calibration error between groups",
}
PRIVACY_WORDS = {"auc": "membership-inference AUC", "flagged_share": "share of training records flagged",
                 "exposure_gap": "gap in the share of flagged records between groups"}


def _rule(run: RunDocument, check: Check):
    return next((r for r in (run.policy.rules if run.policy else []) if r.id == check.rule), None)


def _disparity(run: RunDocument, check: Check):
    """The fairness disparity a ``fairness.<metric>.<difference|ratio>`` check was made from, else None."""
    parts = check.metric.split(".")
    if parts[0] != "fairness" or len(parts) != 3 or run.fairness is None:
        return None
    return next((d for d in run.fairness.disparities.get(check.attribute or "", []) if d.metric == parts[1]), None)


def is_rate_gap(metric: str) -> bool:
    """A difference of two rates (shown in percentage points), e.g. ``fairness.fpr.difference``; a calibration
    error (a gap between predicted and observed rates) and its difference between groups too."""
    parts = metric.split(".")
    return (len(parts) == 3 and parts[1] in fmt.RATES and parts[2] == "difference" or metric.endswith(".flag_rate")
            or metric in CALIBRATION_WORDS)


def _is_rate(metric: str) -> bool:
    """A rate or share (shown in %): a group rate, the flagged share, a TPR at a fixed FPR
    (``privacy.loss.tpr_at_0.01``: the FPR's dot is part of the name)."""
    return "tpr_at_" in metric or metric.split(".")[-1] in fmt.RATES | {"flagged_share"}


def value_text(metric: str, value) -> str:
    """An observed value of a policy check in its unit: gaps of rates in pp, rates in %, ratios and AUCs plain."""
    if is_rate_gap(metric):
        return fmt.pp(value)
    if _is_rate(metric):
        return fmt.pct(value, 1)
    return fmt.num(value)


def interval_text(run: RunDocument, check: Check) -> str:
    """"(95 % CI 8 to 52 pp)" in the value's unit, or "(point estimate)" when the check has no interval."""
    iv = check.interval
    if not iv or len(iv) != 2 or fmt.missing(iv[0]) or fmt.missing(iv[1]):
        return "(point estimate)"
    level = check_confidence(run, check)
    if is_rate_gap(check.metric):
        return fmt.interval(iv[0], iv[1], confidence=level, as_pp=True)
    if _is_rate(check.metric):
        return fmt.interval(iv[0], iv[1], confidence=level, as_pct=True)
    return fmt.interval(iv[0], iv[1], confidence=level)


def limit_text(run: RunDocument, check: Check) -> str:
    """The limit of the check's rule in the value's unit: "at most 10 pp", "at least 0.80", ..."""
    rule = _rule(run, check)
    return rule_limit(check.metric, rule.bound) if rule is not None else check.bound


def rule_limit(metric: str, b: dict) -> str:
    """A rule's bound on ``metric`` in words and in the metric's unit (gaps of rates in pp, rates in %)."""
    def unit(x):
        return fmt.pp(x) if is_rate_gap(metric) else value_text(metric, x)

    kind = b.get("kind")
    if kind == "absolute":
        parts = ([f"at least {unit(b['min'])}"] if b.get("min") is not None else []) + \
                ([f"at most {unit(b['max'])}"] if b.get("max") is not None else [])
        return " and ".join(parts) or fmt.DASH
    if kind == "relative_to_previous":
        parts = ([f"a rise of at most {unit(b['max_increase'])}"] if b.get("max_increase") is not None else []) + \
                ([f"a fall of at most {unit(b['max_decrease'])}"] if b.get("max_decrease") is not None else [])
        return " and ".join(parts) + " since the previous audit"
    if kind == "relative_to_reference":
        return f"a difference of at most {unit(b.get('max_difference'))} from the reference group"
    if kind == "ratio_band":
        return f"a ratio between {b.get('low')} and {b.get('high')}"
    return str(b)


def verdict_clause(run: RunDocument, check: Check) -> str:
    """How the check was decided, as the predicate of a sentence: the limit exceeded, or straddled."""
    limit = limit_text(run, check)
    level = "a failure" if check.status == "fail" else "a warning"
    if check.decided_by == "straddle rule":
        return (f"straddles the policy's limit ({limit}) with its interval, so the data cannot settle the question "
                f"({level})")
    how = "with its whole interval" if check.interval else "as a point estimate"
    return f"lies outside the policy's limit ({limit}) {how} ({level})"


def check_sentence(run: RunDocument, check: Check) -> str:
    """One plain sentence for a failing or warning check: who is affected, by how much, its interval, the limit."""
    fav = run.data.favourable
    where = _where(check)
    if check.note == WITHHELD_CHECK:
        return (f"{_metric_words(check.metric)} ({where}): the value rests on groups too small to publish, so it is "
                f"withheld (in the data owner's private file); the check gives {_status_word(check)}.")
    d = _disparity(run, check)
    observed = f"{value_text(check.metric, check.value)} {interval_text(run, check)}"
    if d is not None and d.metric in RATE_WORDS:
        title, words = RATE_WORDS[d.metric]
        worst, best = d.worst_group or fmt.DASH, d.best_group or fmt.DASH
        text = (f"{title} by {check.attribute}: " + words.format(who=worst, fav=fav, v=fmt.metric(d.metric,
                d.values.get(worst))) + f" against {fmt.metric(d.metric, d.values.get(best))} for {best}")
        what = "gap" if check.metric.endswith("difference") else "ratio"
        if check.compared_with is not None:
            return (f"{text}; the {what} changed by {observed} since the previous audit "
                    f"({value_text(check.metric, check.compared_with.value)} then); the change "
                    f"{verdict_clause(run, check)}.")
        return f"{text}; the {what}, {observed}, {verdict_clause(run, check)}."
    return f"{_metric_words(check.metric)} ({where}): {observed} {verdict_clause(run, check)}."


def _status_word(check: Check) -> str:
    return "a failure" if check.status == "fail" else "a warning"


def _metric_words(metric: str) -> str:
    """A check's metric in words: "Calibration error ...", "Gap in false-positive rate between groups", ..."""
    if metric in CALIBRATION_WORDS:
        return CALIBRATION_WORDS[metric]
    parts = metric.split(".")
    if parts[0] == "fairness" and len(parts) == 3 and parts[1] in RATE_NAMES:
        what = {"difference": "Gap in", "ratio": "Ratio of", "impact_ratio": "Ratio to the reference group of"}
        return f"{what.get(parts[2], parts[2])} {RATE_NAMES[parts[1]]}"
    if parts[0] == "privacy" and "tpr_at_" in metric:
        fpr = metric.split("tpr_at_", 1)[1]
        return f"Share of training records the {parts[1].replace('_', '-')} attack finds at {fmt.pct(float(fpr))} " \
               "false positives"
    if parts[0] == "privacy" and len(parts) >= 3:
        what = PRIVACY_WORDS.get(parts[-1], parts[-1].replace("_", " "))
        return f"{what[0].upper()}{what[1:]} of the {parts[1].replace('_', '-')} attack"
    if parts[0] == "privacy" and len(parts) == 2:
        what = PRIVACY_WORDS.get(parts[1], parts[1].replace("_", " "))
        return f"{what[0].upper()}{what[1:]}"
    return metric


def rule_sentences(run: RunDocument, bad: list[Check]) -> list[str]:
    """One item per failing or warning rule: the sentence of its first check (a failing one first, a check with
    a value before one withheld by suppression), then the other scopes the rule flags with their values, and how
    many comparisons of groups too small to publish it flags as well."""
    by_rule: dict[str, list[Check]] = {}
    for c in bad:
        by_rule.setdefault(c.rule, []).append(c)
    out = []
    for checks in by_rule.values():
        shown = [c for c in checks if c.note != WITHHELD_CHECK]
        hidden = [c for c in checks if c.note == WITHHELD_CHECK]
        lead = (shown or hidden)[0]
        text = f"{lead.status.upper()}: {check_sentence(run, lead)}"
        others = [f"{_where(c)} ({value_text(c.metric, c.value)}, {c.status})" for c in shown[1:]]
        if others:
            text += f" The rule flags {len(others)} more: " + "; ".join(others) + "."
        withheld = len(hidden) - (0 if shown else 1)
        if withheld:
            text += (f" It also flags {withheld} comparison(s) of groups too small to publish (values withheld: "
                     + "; ".join(_where(c) for c in hidden[(0 if shown else 1):]) + ").")
        out.append(text)
    return out


def _where(check: Check) -> str:
    return " / ".join(x for x in (check.attribute, check.group) if x) or "overall"


def flagged(run: RunDocument) -> list[Check]:
    """The failing checks, then the warning ones, in the order of the policy."""
    return sorted((c for c in run.checks if c.status in STATUS_ORDER), key=lambda c: STATUS_ORDER[c.status])


def undecided_text(run: RunDocument) -> str:
    """One sentence listing the checks that could not be decided (too few records, or no value), by rule."""
    by_rule: dict[str, list[str]] = {}
    for c in run.checks:
        if c.status == "insufficient_data":
            by_rule.setdefault(c.rule, []).append(" / ".join(x for x in (c.attribute, c.group) if x) or "overall")
    if not by_rule:
        return ""
    items = "; ".join(f"{rule} ({', '.join(where)})" for rule, where in by_rule.items())
    return (f"{sum(len(v) for v in by_rule.values())} checks could not be decided, because a group had too few "
            f"records or the metric had no value: {items}.")


def next_actions(run: RunDocument, numbers: dict[str, int]) -> list[str]:
    """Recommended next actions, derived from the kinds of failure and warning, then the owner's own."""
    out: list[str] = []
    bad = flagged(run)
    fairness = [c for c in bad if c.metric.startswith("fairness.") and c.compared_with is None]
    straddle = [c for c in bad if c.decided_by == "straddle rule"]
    insufficient = [c for c in run.checks if c.status == "insufficient_data"]
    fair_no = numbers.get("fairness")
    if fairness:
        attrs = ", ".join(dict.fromkeys(c.attribute or "overall" for c in fairness))
        out.append(f"Review the training records and training groups that drive the flagged gaps ({attrs}; "
                   f"listed in section {fair_no}) with the data owner, and check their labels before any "
                   f"retraining.")
    if any(c.metric.split(".")[1:2] and c.metric.split(".")[1] in ("fpr", "tpr", "fnr", "accuracy")
           for c in fairness):
        out.append("Check the decision threshold and the calibration of the predicted probabilities in each "
                   "group; recalibrate, or collect training data for the groups with the higher error rates, "
                   "then re-audit. Do not deploy with a failing error-rate rule without the clinical or business "
                   "owner's documented acceptance.")
    if straddle:
        out.append(f"Collect more test records for the groups compared in the {len(straddle)} checks whose "
                   "interval straddles the limit: with more records the interval narrows and the question can be "
                   "settled.")
    if insufficient:
        out.append("Collect more data for the cells that could not be decided (listed above), or state in the "
                   "risk assessment why they need not be.")
    if any(c.compared_with is not None for c in bad):
        out.append("Explain the change since the previous audit (new data, new model version) in the release "
                   "notes.")
    if any(c.metric.startswith("privacy.") for c in bad):
        out.append("Reduce memorisation of training records (stronger regularisation, fewer training epochs, or "
                   "differentially private training) and re-audit the privacy rules.")
    out += list(run.scope.recommendations)
    if not bad and not insufficient:
        out.append("No action is required by the policy; re-audit after any change to the model or its data.")
    else:
        out.append("Re-run the audit after any change; sign off only when no rule fails.")
    return out


def executive_summary(section: Section, run: RunDocument, *, numbers: dict[str, int], **_) -> None:
    """The verdict, each failing and warning check in one sentence, the undecided checks, the next actions and
    which fairness metrics were chosen and why."""
    label, text = STATUS_LABELS.get(run.status, (run.status.upper(), "Status as recorded by the run."))
    counts = {s: sum(1 for c in run.checks if c.status == s) for s in ("pass", "warn", "fail", "insufficient_data")}
    section.blocks.append(Paragraph(
        f"Verdict: {label}. {text} Of {len(run.checks)} policy checks, {counts['fail']} failed, {counts['warn']} "
        f"gave a warning, {counts['insufficient_data']} could not be decided and {counts['pass']} passed "
        f"(every check: section {numbers.get('policy')} and the appendix).",
        "callout fail" if run.status == "fail" else "callout"))
    bad = flagged(run)
    if bad:
        section.blocks.append(Heading("What failed and what needs attention"))
        section.blocks.append(Bullets(rule_sentences(run, bad)))
    undecided = undecided_text(run)
    if undecided:
        section.blocks.append(Paragraph(undecided, "small"))
    section.blocks.append(Heading("Recommended next actions"))
    section.blocks.append(Bullets(next_actions(run, numbers)))
    choice = metric_choice(run)
    if choice:
        section.blocks.append(Heading("Which fairness metrics were chosen, and why"))
        section.blocks.append(Paragraph(choice))
    section.blocks.append(Paragraph(
        "Units: rates are shown in %, differences of rates in percentage points (pp); ratios and AUCs as plain "
        "numbers. Each interval is labelled with the confidence level it was computed at.", "note"))
