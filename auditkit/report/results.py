"""Builders of the results sections: 7 fairness, 8 privacy, 9 data quality and explanations.

Figures are referred to by the names :func:`auditkit.report.figures.render_figures` gives them:
``group_metrics_<i>`` (i-th table of ``fairness.groups``, from 1), ``drivers_<i>`` (i-th attribution, shown by
:mod:`auditkit.report.drivers` only when no rule flags a gap),
``roc`` and ``risk_distribution``. Small cells (fewer records than the minimum group size) are
suppressed in every table: their metrics and counts are not printed.
"""

from __future__ import annotations

import re

from ..audits.fairness.findings import DENOMINATOR_WORDS, Disparity
from ..audits.privacy.attacks import flag_false_alarm_rate
from ..audits.privacy.findings import Attack
from ..rundoc import RunDocument
from . import fmt
from .blocks import SUPPRESSED, Cell, Figure, Heading, Paragraph, Section, Table, kv, min_cell, suppressed, withheld
from .drivers import drivers
from .limitations import suppressed_groups
from .metric_choice import four_fifths_applies

GROUP_METRICS = ("selection_rate", "tpr", "fpr", "accuracy")
GROUP_METRIC_NAMES = {"selection_rate": "Selection rate", "tpr": "TPR", "fpr": "FPR", "accuracy": "Accuracy",
                      "fnr": "FNR", "precision": "Precision"}


def _groups_text(groups: dict[str, str]) -> str:
    """A record's groups, values only ("Female, 55+")."""
    return ", ".join(groups.values())


def fairness(section: Section, run: RunDocument, *, figures: dict, **_) -> None:
    f = run.fairness
    if f is None:
        section.blocks.append(Paragraph("The fairness audit was not part of this run.", "note"))
        return
    minimum, fav = min_cell(run), f.favourable or run.data.favourable
    section.blocks.append(Paragraph(
        f"Rates are measured on the test set. Selection rate: share given “{fav}”. TPR: share of true cases "
        f"caught (lower is worse). FPR: share of false alarms among people without the outcome (higher is worse). "
        f"Each value is followed by its {100 * fmt.WILSON_CONFIDENCE:g} % confidence interval; groups with fewer "
        f"than {minimum} records are suppressed, and so are the groups from which a suppressed one could be worked "
        f"out by subtraction."))
    for i, table in enumerate(f.groups, start=1):
        attr = table.attribute
        section.blocks.append(Heading(f"Groups by {attr}"))
        rows = []
        for g in table.groups:
            if withheld(g, minimum):
                rows.append([Cell(g.group), Cell(fmt.DASH, "num"),
                             Cell(withheld(g, minimum), "muted", colspan=len(GROUP_METRICS))])
                continue
            cells = [Cell(g.group), Cell(fmt.count(g.count), "num")]
            for name in GROUP_METRICS:
                if name in g.insufficient:
                    cells.append(withheld_cell(name, g.insufficient[name], minimum))
                    continue
                ci = g.intervals.get(name)
                cells.append(Cell(fmt.metric(name, g.metrics.get(name)), "num",
                                  sub=fmt.interval(ci[0], ci[1], as_pct=True,
                                                   confidence=fmt.WILSON_CONFIDENCE) if ci else ""))
            rows.append(cells)
        section.blocks.append(Table(["Group", "Records", "Selection rate", "TPR", "FPR", "Accuracy"], rows,
                                    caption=f"Per-group results, {attr}"))
        if f"group_metrics_{i}" in figures:
            section.blocks.append(Figure(figures[f"group_metrics_{i}"],
                                         f"Selection rate, TPR and FPR per {attr} group with "
                                         f"{100 * fmt.WILSON_CONFIDENCE:g} % intervals "
                                         f"(suppressed groups omitted).", f"Per-group metrics by {attr}"))
        disparity_table(section, attr, f.disparities.get(attr, []), minimum, four_fifths=four_fifths_applies(run),
                        small={g.group for g in table.groups if not g.sufficient})
    drivers(section, run, figures=figures)


def withheld_cell(name: str, denominator: int, minimum: int) -> Cell:
    """A rate withheld because its own denominator is below the minimum: "n < 30" over "3 positives"."""
    return Cell(f"n < {minimum}", "muted num", sub=f"{fmt.count(denominator)} {DENOMINATOR_WORDS.get(name, 'records')}")


def _ci(ci) -> list | None:
    """An interval with both ends, else None (the findings write ``[None, None]`` when there is none)."""
    return ci if ci and len(ci) == 2 and not any(fmt.missing(x) for x in ci) else None


def excluded_note(rows_in: list[Disparity], minimum: int, small: set[str]) -> str:
    """Which groups each comparison left out and why: a suppressed group (``small``) as "suppressed (n < 30)",
    never with its count; a group whose rate is withheld with its denominator ("TPR: 12 positives ...")."""
    small = set(small) | {g for d in rows_in for g, why in d.excluded.items()
                          if why == SUPPRESSED or re.match(r"\d+ records, fewer than", why)}   # never its count
    whole = sorted({g for d in rows_in for g in d.excluded if g in small or d.excluded[g].startswith("unknown")})
    parts = [f"{g} ({suppressed(minimum) if g in small else 'unknown category'})" for g in whole]
    for d in rows_in:
        name = GROUP_METRIC_NAMES.get(d.metric, d.metric)
        parts += [f"{g} from {name} ({why})" for g, why in d.excluded.items() if g not in whole]
    return f"Left out of the comparison: {'; '.join(parts)}." if parts else ""


def disparity_table(section: Section, attr: str, rows_in: list[Disparity], minimum: int, *,
                    four_fifths: bool = True, small: set[str] | None = None) -> None:
    rows = []
    for d in rows_in:
        name = GROUP_METRIC_NAMES.get(d.metric, d.metric)
        if d.status != "ok":
            rows.append([Cell(name), Cell(d.reason or "not computed", "muted", colspan=4)])
            continue
        diff_ci, ratio_ci = _ci(d.difference_ci), _ci(d.ratio_ci)
        better = "higher is better" if d.higher_is_better else "lower is better"
        rows.append([Cell(name, sub=better),
                     Cell(d.worst_group or "", sub=f"vs {d.best_group or ''}"),
                     Cell(fmt.pp(d.difference), "num",
                          sub=fmt.interval(*diff_ci, as_pp=True, confidence=d.confidence) if diff_ci else ""),
                     Cell(fmt.num(d.ratio), "num",
                          sub=fmt.interval(*ratio_ci, confidence=d.confidence) if ratio_ci else ""),
                     Cell(_reading(d), "note")])
    if not rows:
        return
    note = excluded_note(rows_in, minimum, small or set())
    section.blocks.append(Table(["Metric", "Worst group", "Difference", "Ratio", "Plain reading"], rows,
                                caption=f"Disparities between {attr} groups", note=note, css="disp"))
    for d in rows_in:
        ir = d.impact_ratio_max or d.impact_ratio
        if four_fifths and d.metric == "selection_rate" and ir is not None and ir.value is not None:
            ci = _ci(ir.ci)
            below = "below" if ir.adverse_impact else "not below"
            section.blocks.append(Paragraph(
                f"Four-fifths impact ratio ({attr}): {ir.group} is selected at {fmt.num(ir.value)} times "
                f"the rate of {ir.compared_to} {fmt.interval(*ci, confidence=d.confidence) if ci else ''}. A ratio "
                f"below {fmt.num(ir.threshold)} indicates adverse impact; this one is {below} it.",
                "callout fail" if ir.adverse_impact else "callout"))


def _reading(d: Disparity) -> str:
    worst, best, m = d.worst_group, d.best_group, d.metric
    name = GROUP_METRIC_NAMES.get(m, m)
    name = name if name.isupper() else name.lower()
    return (f"{worst} has {name} {fmt.metric(m, d.values.get(worst))} against {fmt.metric(m, d.values.get(best))} "
            f"for {best}.")


ATTACK_WORDS = {"loss": "black box: the model's loss on the record", "self_influence": "white box: self-influence",
                "reference": "reference models trained without the record", "tracin": "white box: training checkpoints"}


def _tpr(a: Attack, f: str) -> tuple[str, str]:
    """An attack's TPR at the false-positive rate ``f`` (a key of ``tpr_at_fpr``) and its random baseline."""
    v = a.tpr_at_fpr.get(f)
    if v is None and float(f) in [float(x) for x in a.unresolved_fprs if x is not None]:
        return "not measurable", "too few non-members"
    rb = a.random_baseline.tpr_at_fpr.get(f) if a.random_baseline else None
    return fmt.pct(v, 1), f"random: {fmt.pct(rb, 1)}"


def privacy(section: Section, run: RunDocument, *, figures: dict, **_) -> None:
    p = run.privacy
    if p is None:
        section.blocks.append(Paragraph("The privacy audit was not part of this run.", "note"))
        return
    minimum = min_cell(run)
    section.blocks.append(Paragraph(
        "Could an attacker tell from the model whether a person's record was used to train it? AUC 0.5 means no "
        "better than guessing (higher is worse); TPR at a low FPR is the share of training records an attacker "
        "identifies while wrongly accusing only that share of outsiders (higher is worse; the random baseline "
        "equals the FPR)."))
    rows = []
    for name, a in p.attacks.items():
        t1, t1s = _tpr(a, "0.01")
        t2, t2s = _tpr(a, "0.001")
        random_auc = a.random_baseline.auc if a.random_baseline else 0.5
        rows.append([Cell(name, sub=ATTACK_WORDS.get(name, "")),
                     Cell(fmt.num(a.auc), "num", sub=f"random: {fmt.num(random_auc)}"),
                     Cell(t1, "num", sub=t1s), Cell(t2, "num", sub=t2s),
                     Cell(fmt.pp(a.advantage), "num", sub="max TPR − FPR")])
    section.blocks.append(Table(["Attack", "AUC", "TPR at 1 % FPR", "TPR at 0.1 % FPR", "Advantage"], rows,
                                caption=f"Membership inference: {fmt.count(p.n_members)} members vs "
                                        f"{fmt.count(p.n_nonmembers)} non-members"))
    if "roc" in figures:
        section.blocks.append(Figure(figures["roc"], "ROC curves on logarithmic axes: the low false-positive region "
                                     "is where an attack is dangerous. The dashed line is random guessing; a curve "
                                     "above it means the attack works.", "Membership-inference ROC", css="narrow"))
    rows = []
    for attr, by_attack in p.attacks_by_group.items():
        for attack, groups in by_attack.items():
            for g, a in groups.items():
                # None: the group is below the plugin's minimum size
                if a is None or min(a.n_members, a.n_nonmembers) < minimum:
                    rows.append([Cell(attr), Cell(g), Cell(attack), Cell(SUPPRESSED, "muted", colspan=3)])
                    continue
                t1, _ = _tpr(a, "0.01")
                rows.append([Cell(attr), Cell(g), Cell(attack),
                             Cell(f"{fmt.count(a.n_members)} / {fmt.count(a.n_nonmembers)}", "num"),
                             Cell(fmt.num(a.auc), "num"), Cell(t1, "num")])
    if rows:
        section.blocks.append(Table(["Attribute", "Group", "Attack", "Members / non-members", "AUC",
                                     "TPR at 1 % FPR"], rows, caption="Membership inference per group", css="small"))
    flagged(section, run, figures=figures, minimum=minimum)


def false_alarm_rate(p) -> float | None:
    """The flags' false-alarm rate, ``(⌊budget·m⌋ + 1)/(m + 1)`` for ``m`` calibration non-members (an upper bound,
    averaged over calibration sets; :func:`auditkit.audits.privacy.attacks.flag_false_alarm_rate`), None without a
    budget or non-members."""
    if fmt.missing(p.budget) or fmt.missing(p.n_nonmembers) or int(p.n_nonmembers) < 1:
        return None
    return flag_false_alarm_rate(int(p.n_nonmembers), float(p.budget))


def flagged(section: Section, run: RunDocument, *, figures: dict, minimum: int) -> None:
    """The flagged training records: how many, the risk distribution, exposure by group, the trust check."""
    p = run.privacy
    rate = false_alarm_rate(p)
    section.blocks.append(Heading("Flagged training records"))
    section.blocks.append(Paragraph(
        f"{fmt.count(p.n_flagged)} of {fmt.count(p.n_members)} training records are flagged as "
        f"exposed (risk above {fmt.num(p.threshold)}; false-alarm rate at most {fmt.pct(rate, 1)}, "
        f"so up to about {fmt.count(round(float(rate or 0) * float(p.n_members or 0)))} flags "
        f"are expected by chance alone). A flag means the model's behaviour on the record is unlike its behaviour on "
        f"unseen records, so it may reveal that the record was in the training data."))
    if "risk_distribution" in figures:
        section.blocks.append(Figure(figures["risk_distribution"], "Risk score of training records (members) and "
                                     "of unseen records (non-members), as shares of each; the line is the flag "
                                     "threshold.", "Risk distribution with the flag threshold"))
    rows = []
    for e in p.exposure:
        for g in e.groups:
            if withheld(g, minimum):
                rows.append([Cell(e.attribute), Cell(g.group), Cell(withheld(g, minimum), "muted", colspan=4)])
                continue
            n_flagged = round(float(g.flag_rate or 0) * g.count)
            rows.append([Cell(e.attribute), Cell(g.group), Cell(fmt.count(g.count), "num"),
                         Cell(fmt.num(g.mean_risk), "num"), Cell(fmt.num(g.p95_risk), "num"),
                         Cell(f"{fmt.count(n_flagged)} ({fmt.pct(g.flag_rate, 1)})", "num")])
    if rows:
        section.blocks.append(Table(["Attribute", "Group", "Training records", "Mean risk", "95th percentile risk",
                                     "Flagged"], rows, caption="Exposure by group (higher is worse)",
                                    note="Counts of flagged records per group; the records themselves are listed "
                                         "only by token in the separate file for the data owner."))
    trust = p.trust
    if trust.checked:
        section.blocks.append(Paragraph(
            f"Check by retraining: for {len(trust.records)} top-ranked records the model was retrained "
            f"without each; the rank correlation between predicted and actual self-influence is "
            f"{fmt.num(trust.spearman)} (1 = same order) and the median ratio actual/predicted is "
            f"{fmt.num(trust.median_ratio_actual_to_predicted)} (1 = exact); "
            f"{fmt.count(trust.underestimated)} records were badly underestimated."
            + (f" The retraining took {trust.seconds:.0f} s on {trust.workers} worker process(es)."
               if trust.seconds is not None and trust.workers is not None else ""), "small"))
    else:
        section.blocks.append(Paragraph("Self-influence was not checked by retraining on this model; memorisation "
                                        "of some records may be underestimated.", "note"))


def quality(section: Section, run: RunDocument, **_) -> None:
    q = run.data_quality
    minimum = min_cell(run)
    if q is None:
        section.blocks.append(Paragraph("The data-quality audit was not part of this run.", "note"))
    else:
        how = ("Each training record's loss is measured under models retrained without it (its out-of-fold "
               f"loss, {q.folds} folds)." if q.out_of_fold else
               "Each training record's loss is estimated as if the model had not seen it (its estimated held-out "
               "loss).")
        section.blocks.append(Paragraph(
            f"{how} A record the model would then give less than even odds for its own label is “worth "
            f"inspecting”: possibly mislabelled, unusual, or memorised. Ranking: {q.score}."))
        section.blocks.append(kv([
            ("Training records", fmt.count(q.n_records)),
            ("Worth inspecting", f"{fmt.count(q.worth_inspecting)} ({fmt.pct(q.share_worth_inspecting, 1)})"),
        ]))
        rows = []
        for b in q.by_group:
            if withheld(b, minimum):
                rows.append([Cell(b.attribute), Cell(b.group), Cell(b.label),
                             Cell(withheld(b, minimum), "muted", colspan=2)])
                continue
            share = b.worth_inspecting / b.count if b.count else None
            rows.append([Cell(b.attribute), Cell(b.group), Cell(b.label), Cell(fmt.count(b.count), "num"),
                         Cell(f"{fmt.count(b.worth_inspecting)} ({fmt.pct(share)})", "num")])
        if rows:
            section.blocks.append(Table(["Attribute", "Group", "Label", "Training records", "Worth inspecting"],
                                        rows, caption="Records worth inspecting, by group and label",
                                        note="A group or label with a much larger share than the others "
                                             "suggests labelling problems concentrated there.", css="small"))
        rows = [[Cell(s.token, "token"), Cell(s.label), Cell(s.reason), Cell(fmt.num(s.loss), "num"),
                 Cell(fmt.pct(s.held_out_probability_of_label, 1), "num")] for s in q.suspects[:15]]
        if rows:
            section.blocks.append(Table(["Token", "Recorded label", "Reason", "Loss now",
                                         "Estimated probability of its label if unseen"], rows, css="small",
                                        caption="Highest-ranked records (first 15)",
                                        note="“misfit”: the model already disagrees with the label. “fit only "
                                             "because seen”: the model agrees only because it trained on it."))
    explanations(section, run)


def explanations(section: Section, run: RunDocument) -> None:
    """For selected test cases, the training records that pulled their prediction each way."""
    expl = run.fairness.explanations if run.fairness else []
    if not expl:
        return
    section.blocks.append(Heading("Why the model decided as it did, for selected test cases"))
    section.blocks.append(Paragraph(
        "For each test case, the training records with the strongest pull on its prediction. “Toward the wrong "
        "answer”: removing the record would raise the probability of the true label (negative value: the record "
        "hurts this case). “Toward the right answer”: the record helps (positive value)."))
    for e in expl:
        section.blocks.append(Paragraph(
            f"Test case {e.token} ({_groups_text(e.groups)}): true label “{e.true_label}”, "
            f"predicted “{e.predicted_label}”, probability of the true label "
            f"{fmt.pct(e.probability_of_true_label)}.", "case"))
        rows = []
        for direction, records in (("toward wrong", e.toward_wrong), ("toward right", e.toward_right)):
            for r in records[:3]:
                rows.append([Cell(direction), Cell(r.token, "token"), Cell(r.label), Cell(_groups_text(r.groups)),
                             Cell(fmt.signed(r.effect), "num")])
        if rows:
            section.blocks.append(Table(["Pull", "Training record", "Label", "Groups", "Effect on its loss"], rows,
                                        css="small"))


__all__ = ["fairness", "privacy", "quality", "suppressed_groups"]
