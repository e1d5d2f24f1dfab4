"""Builders of the results sections: 7 fairness, 8 privacy, 9 data quality and explanations.

Figures are referred to by the names :func:`auditkit.report.figures.render_figures` gives them:
``group_metrics_<i>`` (i-th table of ``fairness.groups``, from 1), ``drivers_<i>`` (i-th attribution),
``roc`` and ``risk_distribution``. Small cells (fewer records than the minimum group size) are
suppressed in every table: their metrics and counts are not printed.
"""

from __future__ import annotations

from . import fmt
from .blocks import Bullets, Cell, Figure, Heading, Paragraph, Section, Table, kv, min_cell, suppressed

SURROGATE_WORDS = {
    "selection_rate": ("selection-rate gap", "predicted probability of “{fav}”, {adv} minus {dis}"),
    "equal_opportunity": ("true-positive-rate gap",
                          "predicted probability of “{fav}” among people who truly have it, {adv} minus {dis}"),
    "mean_loss": ("error gap", "average loss (prediction error) of {dis} minus that of {adv}"),
}
GROUP_METRICS = ("selection_rate", "tpr", "fpr", "accuracy")
GROUP_METRIC_NAMES = {"selection_rate": "Selection rate", "tpr": "TPR", "fpr": "FPR", "accuracy": "Accuracy",
                      "fnr": "FNR", "precision": "Precision"}

#: |gap| below which shares of the gap are not shown (1 percentage point, or 0.01 of loss)
NEGLIGIBLE_GAP = 0.01


def suppressed_groups(run: dict) -> list[str]:
    """Names of the groups (test set) too small to report."""
    return [str(g.get("group")) for t in (run.get("fairness") or {}).get("groups") or []
            for g in t.get("groups") or [] if not g.get("sufficient", True) and not g.get("unknown")]


def _gap_text(kind: str, x) -> str:
    return fmt.num(x, 3) if kind == "mean_loss" else fmt.pp(x)


def _groups_text(groups: dict | None) -> str:
    return ", ".join(f"{v}" for v in (groups or {}).values())


def fairness(section: Section, run: dict, *, figures: dict, **_) -> None:
    f = run.get("fairness")
    if not f:
        section.blocks.append(Paragraph("The fairness audit was not part of this run.", "note"))
        return
    minimum, fav = min_cell(run), str(f.get("favourable") or (run.get("data") or {}).get("favourable", ""))
    section.blocks.append(Paragraph(
        f"Rates are measured on the test set. Selection rate: share given “{fav}”. TPR: share of true cases "
        f"caught (lower is worse). FPR: share of false alarms among people without the outcome (higher is worse). "
        f"Each value is followed by its {100 * fmt.WILSON_CONFIDENCE:g} % confidence interval; groups with fewer "
        f"than {minimum} records are suppressed."))
    disparities = f.get("disparities") or {}
    for i, table in enumerate(f.get("groups") or [], start=1):
        attr = str(table.get("attribute", ""))
        section.blocks.append(Heading(f"Groups by {attr}"))
        rows = []
        for g in table.get("groups") or []:
            if not g.get("sufficient", True):
                rows.append([Cell(str(g.get("group", ""))), Cell(fmt.DASH, "num"),
                             Cell(suppressed(minimum), "muted", colspan=len(GROUP_METRICS))])
                continue
            m, iv = g.get("metrics") or {}, g.get("intervals") or {}
            cells = [Cell(str(g.get("group", ""))), Cell(fmt.count(g.get("count")), "num")]
            for name in GROUP_METRICS:
                ci = iv.get(name)
                cells.append(Cell(fmt.metric(name, m.get(name)), "num",
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
        disparity_table(section, attr, disparities.get(attr) or [], minimum)
    drivers(section, run, figures=figures)


def disparity_table(section: Section, attr: str, rows_in: list[dict], minimum: int) -> None:
    rows = []
    for d in rows_in:
        name = GROUP_METRIC_NAMES.get(d.get("metric"), str(d.get("metric")))
        if d.get("status") != "ok":
            rows.append([Cell(name), Cell(str(d.get("reason") or "not computed"), "muted", colspan=4)])
            continue
        diff_ci, ratio_ci, level = d.get("difference_ci"), d.get("ratio_ci"), d.get("confidence")
        better = "higher is better" if d.get("higher_is_better", True) else "lower is better"
        rows.append([Cell(name, sub=better),
                     Cell(str(d.get("worst_group", "")), sub=f"vs {d.get('best_group', '')}"),
                     Cell(fmt.pp(d.get("difference")), "num",
                          sub=fmt.interval(*diff_ci, as_pp=True, confidence=level) if diff_ci else ""),
                     Cell(fmt.num(d.get("ratio")), "num",
                          sub=fmt.interval(*ratio_ci, confidence=level) if ratio_ci else ""),
                     Cell(_reading(d), "note")])
    if not rows:
        return
    excluded = sorted({str(g) for d in rows_in for g in (d.get("excluded") or {})})
    note = (f"Left out of the comparison: {', '.join(excluded)} ({suppressed(minimum)})." if excluded else "")
    section.blocks.append(Table(["Metric", "Worst group", "Difference", "Ratio", "Plain reading"], rows,
                                caption=f"Disparities between {attr} groups", note=note, css="disp"))
    for d in rows_in:
        ir = d.get("impact_ratio_max") or d.get("impact_ratio")
        if d.get("metric") == "selection_rate" and ir and ir.get("value") is not None:
            ci, level = ir.get("ci"), d.get("confidence")
            below = "below" if ir.get("adverse_impact") else "not below"
            section.blocks.append(Paragraph(
                f"Four-fifths impact ratio ({attr}): {ir.get('group')} is selected at {fmt.num(ir['value'])} times "
                f"the rate of {ir.get('compared_to')} {fmt.interval(*ci, confidence=level) if ci else ''}. A ratio "
                f"below {fmt.num(ir.get('threshold', 0.8))} indicates adverse impact; this one is {below} it.",
                "callout fail" if ir.get("adverse_impact") else "callout"))


def _reading(d: dict) -> str:
    worst, best, m = d.get("worst_group"), d.get("best_group"), d.get("metric")
    values = d.get("values") or {}
    name = GROUP_METRIC_NAMES.get(m, str(m))
    name = name if name.isupper() else name.lower()
    return (f"{worst} has {name} {fmt.metric(m, values.get(worst))} against {fmt.metric(m, values.get(best))} "
            f"for {best}.")


def drivers(section: Section, run: dict, *, figures: dict) -> None:
    f = run.get("fairness") or {}
    atts = f.get("attributions") or []
    if not atts:
        return
    minimum = min_cell(run)
    fav = str(f.get("favourable", ""))
    section.blocks.append(Heading("Training records that drive each disparity"))
    section.blocks.append(Paragraph(
        "For each gap the influence estimator predicts, for every training record, how much the gap would change "
        "if the record were removed and the model retrained (negative = the gap would shrink: the record drives "
        "it). The gap is measured on predicted probabilities (a smooth version of the decision gap, needed for "
        "the estimate). “After removing the top k” adds up the k largest drivers; where the model was actually "
        "retrained without them, the result is shown beside the prediction."))
    rows = []
    for a in atts:
        kind = str(a.get("surrogate", ""))
        ver = {v.get("k"): v for v in a.get("verification") or []}
        curve = a.get("removal_curve") or []
        pieces = []
        for c in curve:
            text = f"k={c.get('k')}: {_gap_text(kind, c.get('predicted_gap'))}"
            if c.get("k") in ver:
                text += f" (actual {_gap_text(kind, ver[c['k']].get('actual_gap'))})"
            pieces.append(text)
        rows.append([Cell(str(a.get("attribute", ""))), Cell(SURROGATE_WORDS.get(kind, (kind,))[0]),
                     Cell(str(a.get("disadvantaged", "")), sub=f"vs {a.get('advantaged', '')}"),
                     Cell(_gap_text(kind, a.get("gap")), "num",
                          sub=f"decisions: {_gap_text(kind, a.get('hard_gap'))}" if kind != "mean_loss" else ""),
                     Cell("; ".join(pieces) or fmt.DASH, "small")])
    section.blocks.append(Table(["Attribute", "Gap", "Worse-off group", "Gap now", "Predicted gap after removing "
                                 "the top k drivers (actual after retraining)"], rows,
                                caption="Gaps and the predicted effect of removing their drivers", css="drivers"))
    for i, a in enumerate(atts, start=1):
        kind = str(a.get("surrogate", ""))
        title, words = SURROGATE_WORDS.get(kind, (kind, kind))
        words = words.format(fav=fav, adv=a.get("advantaged"), dis=a.get("disadvantaged"))
        section.blocks.append(Heading(f"{title[0].upper()}{title[1:]} by {a.get('attribute')}: "
                                      f"{a.get('disadvantaged')} vs {a.get('advantaged')}"))
        section.blocks.append(Paragraph(f"Gap = {words}; now {_gap_text(kind, a.get('gap'))}. Positive means "
                                        f"{a.get('disadvantaged')} is worse off.", "small"))
        if f"drivers_{i}" in figures:
            section.blocks.append(Figure(figures[f"drivers_{i}"], "Left: predicted change of the gap if each "
                                         "record were removed (negative = drives the gap). Right: the same, summed "
                                         "over the training records of each group and label.",
                                         f"Drivers of the {title}", css="drivers"))
        cells = []
        # a share of a gap that is itself about zero (under 1 point or 0.01 of loss) is meaningless
        gap_is_tiny = abs(float(a.get("gap") or 0.0)) < NEGLIGIBLE_GAP
        for c in a.get("cells") or []:
            if int(c.get("count") or 0) < minimum:
                cells.append([Cell(str(c.get("group", ""))), Cell(str(c.get("label", ""))),
                              Cell(suppressed(minimum), "muted", colspan=3)])
                continue
            share = c.get("share_of_gap")
            cells.append([Cell(str(c.get("group", ""))), Cell(str(c.get("label", ""))),
                          Cell(fmt.count(c.get("count")), "num"), Cell(fmt.signed(c.get("effect")), "num"),
                          Cell(fmt.DASH if share is None or gap_is_tiny else fmt.pct(share), "num")])
        top = (a.get("drivers") or [])[:5]
        recs = [[Cell(str(r.get("token", "")), "token"), Cell(str(r.get("label", ""))),
                 Cell(_groups_text(r.get("groups"))), Cell(fmt.signed(r.get("effect")), "num")] for r in top]
        if cells:
            section.blocks.append(Table(["Training group", "Label", "Records", "Effect of removing all",
                                         "Share of the gap closed"], cells, css="small",
                                        note="Shares can be negative (the cell narrows the gap) or above 100 %; "
                                             "for large cells the first-order prediction is rough."
                                             + (" The gap is about zero, so no share is given." if gap_is_tiny
                                                else "")))
        if recs:
            section.blocks.append(Table(["Token", "Label", "Groups", "Effect on the gap"], recs, css="small",
                                        caption="The five records whose removal would shrink the gap most"))


ATTACK_WORDS = {"loss": "black box: the model's loss on the record", "self_influence": "white box: self-influence",
                "reference": "reference models trained without the record", "tracin": "white box: training checkpoints"}


def _tpr(a: dict, f: str) -> tuple[str, str]:
    v = (a.get("tpr_at_fpr") or {}).get(f)
    if v is None and float(f) in [float(x) for x in a.get("unresolved_fprs") or []]:
        return "not measurable", "too few non-members"
    return fmt.pct(v, 1), f"random: {fmt.pct(((a.get('random_baseline') or {}).get('tpr_at_fpr') or {}).get(f), 1)}"


def privacy(section: Section, run: dict, *, figures: dict, **_) -> None:
    p = run.get("privacy")
    if not p:
        section.blocks.append(Paragraph("The privacy audit was not part of this run.", "note"))
        return
    minimum = min_cell(run)
    section.blocks.append(Paragraph(
        "Could an attacker tell from the model whether a person's record was used to train it? AUC 0.5 means no "
        "better than guessing (higher is worse); TPR at a low FPR is the share of training records an attacker "
        "identifies while wrongly accusing only that share of outsiders (higher is worse; the random baseline "
        "equals the FPR)."))
    rows = []
    for name, a in (p.get("attacks") or {}).items():
        t1, t1s = _tpr(a, "0.01")
        t2, t2s = _tpr(a, "0.001")
        rb = a.get("random_baseline") or {}
        rows.append([Cell(str(name), sub=ATTACK_WORDS.get(name, "")),
                     Cell(fmt.num(a.get("auc")), "num", sub=f"random: {fmt.num(rb.get('auc', 0.5))}"),
                     Cell(t1, "num", sub=t1s), Cell(t2, "num", sub=t2s),
                     Cell(fmt.pp(a.get("advantage")), "num", sub="max TPR − FPR")])
    section.blocks.append(Table(["Attack", "AUC", "TPR at 1 % FPR", "TPR at 0.1 % FPR", "Advantage"], rows,
                                caption=f"Membership inference: {fmt.count(p.get('n_members'))} members vs "
                                        f"{fmt.count(p.get('n_nonmembers'))} non-members"))
    if "roc" in figures:
        section.blocks.append(Figure(figures["roc"], "ROC curves on logarithmic axes: the low false-positive region "
                                     "is where an attack is dangerous. The dashed line is random guessing; a curve "
                                     "above it means the attack works.", "Membership-inference ROC", css="narrow"))
    rows = []
    for attr, by_attack in (p.get("attacks_by_group") or {}).items():
        for attack, groups in by_attack.items():
            for g, a in groups.items():
                a = a or {}  # None: the group is below the plugin's minimum size
                small = min(int(a.get("n_members") or 0), int(a.get("n_nonmembers") or 0)) < minimum
                if small:
                    rows.append([Cell(str(attr)), Cell(str(g)), Cell(str(attack)),
                                 Cell(suppressed(minimum), "muted", colspan=3)])
                    continue
                t1, _ = _tpr(a, "0.01")
                rows.append([Cell(str(attr)), Cell(str(g)), Cell(str(attack)),
                             Cell(f"{fmt.count(a.get('n_members'))} / {fmt.count(a.get('n_nonmembers'))}", "num"),
                             Cell(fmt.num(a.get("auc")), "num"), Cell(t1, "num")])
    if rows:
        section.blocks.append(Table(["Attribute", "Group", "Attack", "Members / non-members", "AUC",
                                     "TPR at 1 % FPR"], rows, caption="Membership inference per group", css="small"))
    section.blocks.append(Heading("Flagged training records"))
    section.blocks.append(Paragraph(
        f"{fmt.count(p.get('n_flagged'))} of {fmt.count(p.get('n_members'))} training records are flagged as "
        f"exposed (risk above {fmt.num(p.get('threshold'))}; false-alarm rate about {fmt.pct(p.get('budget'))}, "
        f"so about {fmt.count(round(float(p.get('budget') or 0) * float(p.get('n_members') or 0)))} flags are "
        f"expected by chance alone). A flag means the model's behaviour on the record is unlike its behaviour on "
        f"unseen records, so it may reveal that the record was in the training data."))
    if "risk_distribution" in figures:
        section.blocks.append(Figure(figures["risk_distribution"], "Risk score of training records (members) and "
                                     "of unseen records (non-members), as shares of each; the line is the flag "
                                     "threshold.", "Risk distribution with the flag threshold"))
    rows = []
    for e in p.get("exposure") or []:
        for g in e.get("groups") or []:
            if not g.get("sufficient", True) or int(g.get("count") or 0) < minimum:
                rows.append([Cell(str(e.get("attribute", ""))), Cell(str(g.get("group", ""))),
                             Cell(suppressed(minimum), "muted", colspan=4)])
                continue
            flagged = round(float(g.get("flag_rate") or 0) * int(g.get("count") or 0))
            rows.append([Cell(str(e.get("attribute", ""))), Cell(str(g.get("group", ""))),
                         Cell(fmt.count(g.get("count")), "num"), Cell(fmt.num(g.get("mean_risk")), "num"),
                         Cell(fmt.num(g.get("p95_risk")), "num"),
                         Cell(f"{fmt.count(flagged)} ({fmt.pct(g.get('flag_rate'), 1)})", "num")])
    if rows:
        section.blocks.append(Table(["Attribute", "Group", "Training records", "Mean risk", "95th percentile risk",
                                     "Flagged"], rows, caption="Exposure by group (higher is worse)",
                                    note="Counts of flagged records per group; the records themselves are listed "
                                         "only by token in the separate file for the data owner."))
    trust = p.get("trust") or {}
    if trust.get("checked"):
        section.blocks.append(Paragraph(
            f"Check by retraining: for {len(trust.get('records') or [])} top-ranked records the model was retrained "
            f"without each; the rank correlation between predicted and actual self-influence is "
            f"{fmt.num(trust.get('spearman'))} (1 = same order) and the median ratio actual/predicted is "
            f"{fmt.num(trust.get('median_ratio_actual_to_predicted'))} (1 = exact); "
            f"{fmt.count(trust.get('underestimated'))} records were badly underestimated.", "small"))
    elif trust:
        section.blocks.append(Paragraph("Self-influence was not checked by retraining on this model; memorisation "
                                        "of some records may be underestimated.", "note"))


def quality(section: Section, run: dict, **_) -> None:
    q = run.get("data_quality")
    minimum = min_cell(run)
    if not q:
        section.blocks.append(Paragraph("The data-quality audit was not part of this run.", "note"))
    else:
        how = ("Each training record's loss is measured under models retrained without it (its out-of-fold "
               f"loss, {q.get('folds')} folds)." if q.get("out_of_fold") else
               "Each training record's loss is estimated as if the model had not seen it (its estimated held-out "
               "loss).")
        section.blocks.append(Paragraph(
            f"{how} A record the model would then give less than even odds for its own label is “worth "
            f"inspecting”: possibly mislabelled, unusual, or memorised. Ranking: {q.get('score', fmt.DASH)}."))
        section.blocks.append(kv([
            ("Training records", fmt.count(q.get("n_records"))),
            ("Worth inspecting", f"{fmt.count(q.get('worth_inspecting'))} "
                                 f"({fmt.pct(q.get('share_worth_inspecting'), 1)})"),
        ]))
        rows = []
        for b in q.get("by_group") or []:
            if int(b.get("count") or 0) < minimum:
                rows.append([Cell(str(b.get("attribute", ""))), Cell(str(b.get("group", ""))),
                             Cell(str(b.get("label", ""))), Cell(suppressed(minimum), "muted", colspan=2)])
                continue
            share = (b.get("worth_inspecting") or 0) / b["count"] if b.get("count") else None
            rows.append([Cell(str(b.get("attribute", ""))), Cell(str(b.get("group", ""))),
                         Cell(str(b.get("label", ""))), Cell(fmt.count(b.get("count")), "num"),
                         Cell(f"{fmt.count(b.get('worth_inspecting'))} ({fmt.pct(share)})", "num")])
        if rows:
            section.blocks.append(Table(["Attribute", "Group", "Label", "Training records", "Worth inspecting"],
                                        rows, caption="Records worth inspecting, by group and label",
                                        note="A group or label with a much larger share than the others "
                                             "suggests labelling problems concentrated there.", css="small"))
        rows = [[Cell(str(s.get("token", "")), "token"), Cell(str(s.get("label", ""))), Cell(str(s.get("reason", ""))),
                 Cell(fmt.num(s.get("loss")), "num"), Cell(fmt.pct(s.get("held_out_probability_of_label"), 1), "num")]
                for s in (q.get("suspects") or [])[:15]]
        if rows:
            section.blocks.append(Table(["Token", "Recorded label", "Reason", "Loss now",
                                         "Estimated probability of its label if unseen"], rows, css="small",
                                        caption="Highest-ranked records (first 15)",
                                        note="“misfit”: the model already disagrees with the label. “fit only "
                                             "because seen”: the model agrees only because it trained on it."))
    expl = (run.get("fairness") or {}).get("explanations") or []
    if not expl:
        return
    section.blocks.append(Heading("Why the model decided as it did, for selected test cases"))
    section.blocks.append(Paragraph(
        "For each test case, the training records with the strongest pull on its prediction. “Toward the wrong "
        "answer”: removing the record would raise the probability of the true label (negative value: the record "
        "hurts this case). “Toward the right answer”: the record helps (positive value)."))
    for e in expl:
        section.blocks.append(Paragraph(
            f"Test case {e.get('token')} ({_groups_text(e.get('groups'))}): true label “{e.get('true_label')}”, "
            f"predicted “{e.get('predicted_label')}”, probability of the true label "
            f"{fmt.pct(e.get('probability_of_true_label'))}.", "case"))
        rows = []
        for direction, key in (("toward wrong", "toward_wrong"), ("toward right", "toward_right")):
            for r in (e.get(key) or [])[:3]:
                rows.append([Cell(direction), Cell(str(r.get("token", "")), "token"), Cell(str(r.get("label", ""))),
                             Cell(_groups_text(r.get("groups"))), Cell(fmt.signed(r.get("effect")), "num")])
        if rows:
            section.blocks.append(Table(["Pull", "Training record", "Label", "Groups", "Effect on its loss"], rows,
                                        css="small"))


__all__ = ["fairness", "privacy", "quality", "suppressed_groups", "Bullets"]
