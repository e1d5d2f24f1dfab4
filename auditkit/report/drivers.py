"""The drivers part of the fairness section: which training records drive the gaps the policy flagged.

For every gap a fairness check flagged (``fairness.flagged_gaps``: the rule, the two groups it compares, the gap
with its interval) the report shows the top drivers and the effect of removing them as the gap before and after,
in the gap's own units (percentage points for rates, loss units for the mean loss): "now X → after removing the
top k: Y (predicted), Z (actual, retrained)", on predicted probabilities (the smooth surrogate the estimate is
made for) and, where the model was retrained, on the decisions the rule checked. It never prints a share of a
gap, which could exceed 100 % or be negative and says nothing to a reader.

When no rule flags a gap, the section says so and shows, as context, the largest gaps the audit picked itself
(``fairness.attributions``): a reviewer still sees which records the model leans on most for each attribute,
clearly labelled as not flagged.
"""

from __future__ import annotations

from ..audits.fairness.findings import Attribution, FlaggedGap
from ..rundoc import RunDocument
from . import fmt
from .blocks import Cell, Figure, Heading, Paragraph, Section, Table, min_cell, withheld

SURROGATE_WORDS = {
    "selection_rate": ("selection-rate gap", "predicted probability of “{fav}”, {adv} minus {dis}"),
    "equal_opportunity": ("true-positive-rate gap",
                          "predicted probability of “{fav}” among people who truly have it, {adv} minus {dis}"),
    "false_positive": ("false-positive-rate gap",
                       "predicted probability of “{fav}” among people who truly do not have it, {dis} minus {adv}"),
    "mean_loss": ("error gap", "average loss (prediction error) of {dis} minus that of {adv}"),
}
#: the checked metric of a flagged gap in words (the group metric of ``fairness.M...``)
METRIC_WORDS = {"tpr": "true-positive-rate gap", "fnr": "false-negative-rate gap", "fpr": "false-positive-rate gap",
                "selection_rate": "selection-rate gap", "accuracy": "accuracy gap", "mean_loss": "mean-loss gap",
                "precision": "precision gap", "auc": "AUC gap"}
#: how many drivers each flagged gap lists
SHOWN_DRIVERS = 5


def _gap_text(kind: str | None, x) -> str:
    """A gap in its own units: loss units for the mean loss, else percentage points."""
    return fmt.num(x, 3) if kind == "mean_loss" else fmt.pp(x)


def _effect_text(kind: str | None, x) -> str:
    """One record's effect on a gap, signed, in the gap's units ("−0.42 pp", "−0.0031")."""
    if fmt.missing(x):
        return fmt.DASH
    text = f"{float(x):+.4f}" if kind == "mean_loss" else f"{100 * float(x):+.2f}\u202fpp"
    return text.replace("-", "−")


def _groups_text(groups: dict[str, str]) -> str:
    """A record's groups, values only ("Female, 55+")."""
    return ", ".join(groups.values())


def _group_metric(metric: str) -> str:
    """``fairness.fpr.difference`` → ``fpr``."""
    return metric.split(".")[1] if metric.count(".") >= 1 else metric


def _k_map(values: dict | None) -> dict[int, float]:
    return {int(k): v for k, v in (values or {}).items() if not fmt.missing(v)}


def removal_text(g: FlaggedGap) -> str:
    """"gap now X → after removing the top k: Y (predicted), Z (actual, retrained)" on predicted probabilities, then the
    checked metric on decisions after retraining, for the largest k that was retrained (else the largest k)."""
    kind = g.surrogate
    predicted, actual = _k_map(g.predicted_gap_after), _k_map(g.actual_gap_after)
    on_decisions = _k_map(g.actual_metric_gap_after)
    if not predicted:
        return fmt.DASH
    k = max(actual) if actual else max(predicted)
    text = (f"On predicted probabilities: gap now {_gap_text(kind, g.surrogate_gap)} → after removing the top {k}: "
            f"{_gap_text(kind, predicted[k])} (predicted)")
    if k in actual:
        text += f", {_gap_text(kind, actual[k])} (actual, retrained)"
        if k in on_decisions:
            text += f". On decisions: gap now {fmt.pp(g.gap)} → {fmt.pp(on_decisions[k])} (actual, retrained)"
    else:
        text += "; not retrained (no training function was given)"
    return text + "."


def _same_gap(g: FlaggedGap) -> tuple:
    """The same groups and the same group metric (a difference, a ratio and an impact ratio of one rate are one
    gap)."""
    return (g.attribute, _group_metric(g.metric), g.disadvantaged, g.advantaged)


def _grouped(gaps: list[FlaggedGap]) -> list[tuple[FlaggedGap, list[FlaggedGap]]]:
    """The distinct gaps (attribute, metric, groups), each with every flagged check that names it, in order."""
    out: dict[tuple, tuple[FlaggedGap, list[FlaggedGap]]] = {}
    for g in gaps:
        out.setdefault(_same_gap(g), (g, []))[1].append(g)
    return list(out.values())


def _rules_text(checks: list[FlaggedGap]) -> str:
    return ", ".join(f"{c.rule.rsplit('/', 1)[-1]} ({c.check_status.upper()})" for c in checks)


def flagged_drivers(section: Section, run: RunDocument) -> None:
    """Per flagged rule: the two groups, the gap with its interval, the gap before and after removing the top
    drivers, and the top drivers (token, label, groups, effect)."""
    f = run.fairness
    section.blocks.append(Heading("Training records behind the flagged gaps"))
    section.blocks.append(Paragraph(
        "For every fairness rule that warns or fails, the gap it flags between the two groups it compares is "
        "explained by the training records that drive it. The influence estimator predicts, for every training "
        "record, how much the gap would change if the record were removed and the model retrained (negative = the "
        "gap would shrink: the record drives it). The estimate is made for the gap on predicted probabilities (a "
        "smooth version of the rule's gap on decisions); removing the top k drivers is predicted by adding up "
        "their effects and, where a training function was given, measured by actually retraining without them, "
        "on probabilities and on the decisions the rule checks. Gaps are in percentage points (pp), the mean "
        "loss in its own units; positive means the first group is worse off."))
    rows, details = [], []
    for g, checks in _grouped(f.flagged_gaps):
        ci = g.gap_ci if g.gap_ci and not any(fmt.missing(x) for x in g.gap_ci) else None
        gap = fmt.pp(g.gap) + (" " + fmt.interval(*ci, as_pp=True, confidence=_confidence(run, g)) if ci else "")
        effect = g.note if g.note else removal_text(g)
        if fmt.missing(g.gap):
            gap, effect = "withheld", ("It compares groups suppressed for size: the gap and the effect of removing "
                                       "its drivers are withheld (the data owner's private file keeps them).")
        what = METRIC_WORDS.get(_group_metric(g.metric), g.metric)
        rows.append([Cell(_rules_text(checks)), Cell(f"{what[0].upper()}{what[1:]}", sub=g.attribute),
                     Cell(g.disadvantaged, sub=f"vs {g.advantaged}"), Cell(gap, "num"),
                     Cell(effect, "small")])
        if g.drivers:
            details.append(g)
    section.blocks.append(Table(["Rule", "Gap", "Worse-off group", "Gap on decisions now",
                                 "Effect of removing the top drivers"], rows,
                                caption="Gaps flagged by the policy and the effect of removing their drivers",
                                css="drivers"))
    fav = f.favourable or run.data.favourable
    for g in details:
        title, words = SURROGATE_WORDS.get(g.surrogate, (g.surrogate, g.surrogate))
        recs = [[Cell(r.token, "token"), Cell(r.label), Cell(_groups_text(r.groups)),
                 Cell(_effect_text(g.surrogate, r.effect), "num")] for r in g.drivers[:SHOWN_DRIVERS]]
        section.blocks.append(Table(
            ["Token", "Label", "Groups", "Effect on the gap"], recs, css="small",
            caption=f"Top drivers of the {METRIC_WORDS.get(_group_metric(g.metric), g.metric)} by {g.attribute}: "
                    f"{g.disadvantaged} vs {g.advantaged}",
            note=f"Smooth {title}: {words.format(fav=fav, adv=g.advantaged, dis=g.disadvantaged)}."))


def _confidence(run: RunDocument, g: FlaggedGap) -> float | None:
    """The confidence level of the disparity the flagged gap's interval comes from."""
    metric = _group_metric(g.metric)
    found = [d.confidence for d in run.fairness.disparities.get(g.attribute, []) if d.metric == metric]
    return found[0] if found else None


def _curve_text(a: Attribution) -> str:
    """"k=5: 30 pp (actual 31 pp); k=10: ..." — the predicted gap after removing the top k, and the gap
    measured after retraining where it was."""
    kind = a.surrogate
    actual = {v.k: v.actual_gap for v in a.verification}
    pieces = []
    for c in a.removal_curve:
        text = f"k={c.k}: {_gap_text(kind, c.predicted_gap)}"
        if c.k in actual:
            text += f" (actual {_gap_text(kind, actual[c.k])})"
        pieces.append(text)
    return "; ".join(pieces) or fmt.DASH


def _flagged_fairness_checks(run: RunDocument) -> bool:
    return any(c.metric.startswith("fairness.") and c.status in ("warn", "fail") for c in run.checks or [])


def drivers(section: Section, run: RunDocument, *, figures: dict) -> None:
    """The drivers of the flagged gaps; when there are none, why, and the gaps the audit picked itself as context
    (with their figures ``drivers_<i>``)."""
    f = run.fairness
    if f is None:
        return
    if f.flagged_gaps:
        flagged_drivers(section, run)
        return
    if not f.attributions:
        return
    minimum = min_cell(run)
    section.blocks.append(Heading("Training records that drive the largest gaps"))
    if run.policy is None:
        why = "No policy was checked, so no gap was flagged."
    elif _flagged_fairness_checks(run):
        why = ("This run document holds no drivers of the gaps the policy flagged (it was made by an auditkit "
               "that did not attribute them).")
    else:
        why = "No fairness rule of the policy warns or fails, so no flagged gap needs explaining."
    section.blocks.append(Paragraph(
        f"{why} For context, the audit attributed the largest gap of each kind between the worst-off group and "
        "the reference group itself. For each gap the influence estimator predicts, for every training record, how "
        "much the gap would change if the record were removed and the model retrained (negative = the gap would "
        "shrink: the record drives it). The gap is measured on predicted probabilities (a smooth version of the "
        "decision gap, needed for the estimate). “After removing the top k” adds up the k largest drivers; where "
        "the model was actually retrained without them, the result is shown beside the prediction."))
    rows = []
    for a in f.attributions:
        kind = a.surrogate
        rows.append([Cell(a.attribute), Cell(SURROGATE_WORDS.get(kind, (kind,))[0]),
                     Cell(a.disadvantaged, sub=f"vs {a.advantaged}"),
                     Cell(_gap_text(kind, a.gap), "num",
                          sub=f"decisions: {_gap_text(kind, a.hard_gap)}" if kind != "mean_loss" else ""),
                     Cell(_curve_text(a), "small")])
    section.blocks.append(Table(["Attribute", "Gap", "Worse-off group", "Gap now", "Predicted gap after removing "
                                 "the top k drivers (actual after retraining)"], rows,
                                caption="Gaps and the predicted effect of removing their drivers", css="drivers"))
    for i, a in enumerate(f.attributions, start=1):
        attribution(section, a, i, fav=f.favourable, minimum=minimum, figures=figures)


def attribution(section: Section, a: Attribution, i: int, *, fav: str, minimum: int, figures: dict) -> None:
    """One gap: what it measures, its drivers' figure, the training cells and the top five records."""
    kind = a.surrogate
    title, words = SURROGATE_WORDS.get(kind, (kind, kind))
    words = words.format(fav=fav, adv=a.advantaged, dis=a.disadvantaged)
    section.blocks.append(Heading(f"{title[0].upper()}{title[1:]} by {a.attribute}: "
                                  f"{a.disadvantaged} vs {a.advantaged}"))
    section.blocks.append(Paragraph(f"Gap = {words}; now {_gap_text(kind, a.gap)}. Positive means "
                                    f"{a.disadvantaged} is worse off.", "small"))
    if f"drivers_{i}" in figures:
        section.blocks.append(Figure(figures[f"drivers_{i}"], "Left: predicted change of the gap if each "
                                     "record were removed (negative = drives the gap). Right: the same, summed "
                                     "over the training records of each group and label.",
                                     f"Drivers of the {title}", css="drivers"))
    cells = []
    for c in a.cells:
        if withheld(c, minimum):
            cells.append([Cell(c.group), Cell(c.label), Cell(withheld(c, minimum), "muted", colspan=3)])
            continue
        after = None if fmt.missing(a.gap) or fmt.missing(c.effect) else float(a.gap) + float(c.effect)
        cells.append([Cell(c.group), Cell(c.label), Cell(fmt.count(c.count), "num"),
                      Cell(_effect_text(kind, c.effect), "num"), Cell(_gap_text(kind, after), "num")])
    recs = [[Cell(r.token, "token"), Cell(r.label), Cell(_groups_text(r.groups)),
             Cell(_effect_text(kind, r.effect), "num")] for r in a.drivers[:5]]
    if cells:
        section.blocks.append(Table(["Training group", "Label", "Records", "Effect of removing all",
                                     "Gap after removing all (predicted)"], cells, css="small",
                                    note=f"Gap now {_gap_text(kind, a.gap)}. Cells push both ways; for large cells "
                                         "the first-order prediction is rough."))
    if recs:
        section.blocks.append(Table(["Token", "Label", "Groups", "Effect on the gap"], recs, css="small",
                                    caption="The five records whose removal would shrink the gap most"))
