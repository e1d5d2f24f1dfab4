"""Builders of the report's sections 1-6 and 10-15 (the results sections 7-9 live in ``results.py``).

Each builder fills one :class:`~auditkit.report.document.Section` from the run document; all strings stay
raw (the template escapes them). Plain words accompany every number.
"""

from __future__ import annotations

from . import fmt
from .document import SIGN_CONVENTION, Bullets, Cell, Code, Heading, Paragraph, Section, Signatures, Table, kv
from .results import fairness, privacy, quality, suppressed_groups  # noqa: F401  (re-exported builders)

DECISION_WORDS = {
    "assistive": ("assistive: a favourable prediction gives the person a benefit (here: {fav}). The harmful "
                  "error is a missed benefit, a false negative, so equal true positive rates (equal "
                  "opportunity) across groups matter most, together with equal selection rates."),
    "punitive": ("punitive: a favourable prediction exposes the person to a sanction or scrutiny (here: {fav}). "
                 "The harmful error is a false accusation, a false positive, so equal false positive rates "
                 "across groups matter most."),
}

METRIC_WORDS = [
    ("Selection rate", "Share of the group the model assigns the outcome “{fav}”.",
     "A lower rate than other groups means the group receives that outcome less often."),
    ("True positive rate (TPR)", "Of the people who truly have the outcome, the share the model catches.",
     "Lower is worse: the group's true cases are missed more often."),
    ("False positive rate (FPR)", "Of the people who do not have the outcome, the share the model flags anyway.",
     "Higher is worse: more false alarms in the group."),
    ("False negative rate (FNR)", "1 − TPR: the share of true cases that are missed.", "Higher is worse."),
    ("Accuracy", "Share of correct predictions.", "Lower is worse."),
    ("Precision", "Of the people the model flags, the share that truly have the outcome.", "Lower is worse."),
    ("Difference", "Best group's value minus worst group's value, in percentage points (pp).",
     "Larger is worse; 0 means parity."),
    ("Ratio / impact ratio", "Worst group's rate divided by the reference or best group's rate.",
     "Smaller is worse; 1 means parity; below 0.80 is adverse impact under the four-fifths rule."),
    ("Membership-inference AUC", "How well an attacker can tell training records from others (0.5 = guessing).",
     "Higher is worse: above about 0.6 the model noticeably reveals who was in its training data."),
    ("TPR at 1 % FPR", "Share of training records an attacker identifies while wrongly accusing only 1 % of "
     "non-members.", "Higher is worse; a random guess gives 1 %."),
]


def cover(section: Section, run: dict, **_) -> None:
    model, scope, pol = run.get("model") or {}, run.get("scope") or {}, run.get("policy") or {}
    section.blocks.append(kv([
        ("Report id", str(run.get("report_id", fmt.DASH))),
        ("Date and time", fmt.when(run.get("created_utc"))),
        ("Triggered by", {"manual": "manual run", "schedule": "scheduled run", "ci": "release pipeline (CI)"}
         .get(str(run.get("trigger")), str(run.get("trigger", fmt.DASH)))),
        ("Organisation", str(scope.get("organisation", fmt.DASH))),
        ("System", str(scope.get("system", fmt.DASH))),
        ("Model", f"{model.get('name', fmt.DASH)} version {model.get('version', fmt.DASH)}"),
        ("Policy applied", f"{pol.get('title') or pol.get('name', fmt.DASH)} ({pol.get('source', fmt.DASH)})"),
        ("auditkit version", str(run.get("auditkit_version", fmt.DASH))),
        ("Schema", str(run.get("schema", fmt.DASH))),
    ], caption="Document control"))
    section.blocks.append(Paragraph(
        "This report is evidence of a pre-deployment audit. It identifies the model and data by cryptographic "
        "hashes, states how each figure was computed and how far it can be trusted, and carries the "
        "machine-readable findings as an attachment. It contains no personal data: training records are "
        "referred to only by random tokens (R-XXXXXXXX), and groups with too few records are suppressed."))


def scope(section: Section, run: dict, **_) -> None:
    sc, data = run.get("scope") or {}, run.get("data") or {}
    decision = str(sc.get("decision", ""))
    words = DECISION_WORDS.get(decision, "{fav}").format(fav=data.get("favourable", fmt.DASH))
    section.blocks.append(kv([
        ("Organisation", str(sc.get("organisation", fmt.DASH))),
        ("System", str(sc.get("system", fmt.DASH))),
        ("Intended use", str(sc.get("intended_use", fmt.DASH))),
        ("Population", str(sc.get("population", fmt.DASH))),
        ("Decision supported", str(sc.get("decision_description", fmt.DASH))),
        ("Kind of decision", words),
        ("Frameworks claimed", "; ".join(str(f) for f in sc.get("frameworks") or []) or "none stated"),
    ]))


def model(section: Section, run: dict, **_) -> None:
    m = run.get("model") or {}
    prev = m.get("previous_version")
    section.blocks.append(kv([
        ("Name", str(m.get("name", fmt.DASH))),
        ("Version", str(m.get("version", fmt.DASH))),
        ("SHA-256 of the weights file", fmt.short_hash(m.get("weights_sha256"))),
        ("Framework", str(m.get("framework", fmt.DASH))),
        ("Architecture", str(m.get("architecture", fmt.DASH))),
        ("Trainable parameters", fmt.count(m.get("parameters"))),
        ("Training loss and L2 penalty", f"{m.get('loss', fmt.DASH)}, l2 = {_l2_text(m.get('l2'))}"),
        ("Model builder (user code)", str(m.get("builder", fmt.DASH))),
        ("Previously audited version", str(prev) if prev else "none: first audit of this model line"),
    ]))
    if m.get("weights_sha256"):
        text = ("The builder is code supplied by the model owner; the weights were loaded without executing code "
                "(PyTorch weights_only loading). Anyone holding the weights file can check its SHA-256 against the "
                "value above.")
    elif str(m.get("builder", "")).startswith("in-memory"):
        text = ("The model was passed to auditkit as a Python object (auditkit.audit(model=...)); no weights file "
                "was read. The SHA-256 of its parameters (section Reproducibility) identifies the state audited.")
    else:
        text = ("The builder is code supplied by the model owner and returned the trained model itself; no "
                "weights file was read. The SHA-256 of its parameters (section Reproducibility) identifies the state "
                "audited.")
    section.blocks.append(Paragraph(text, "small"))
    training_fit(section, m.get("training_fit"))


def training_fit(section: Section, fit: dict | None) -> None:
    """The model on its training records as the audit featurized them: loss, accuracy, stationarity."""
    if not fit:
        return
    accuracy = fit.get("accuracy")
    stationary = fit.get("stationary", True)
    section.blocks.append(kv([
        ("Training loss (mean)", fmt.num(fit.get("loss"), 3), "Compare with the model owner's figure: a higher value "
         "means the audit does not see the records as training did."),
        ("Training accuracy", fmt.pct(accuracy, 1) if accuracy is not None else fmt.DASH, "Share of training records "
         "predicted correctly, as the audit sees them."),
        ("Gradient norm of the objective", fmt.num(fit.get("grad_norm")), "Mean loss + L2 at the audited weights: "
         "0 at a minimum, which influence estimates assume."),
        ("Relative to shuffled labels", f"{fmt.num(fit.get('relative'))} (accepted up to "
         f"{fmt.num(fit.get('threshold'))})", "The same gradient with the labels shuffled is the scale; converged "
         "training reaches 1e-6 or less."),
    ], caption="The model on its training records, as featurized for this audit"))
    if not stationary:
        section.blocks.append(Paragraph(
            "The audited weights are not a minimum of the stated objective on these records: the audit ran only "
            "because model.allow_non_stationary was set, and its influence estimates may be far from what "
            "retraining would do (see the limitations).", "note"))


def data(section: Section, run: dict, **_) -> None:
    d = run.get("data") or {}
    section.blocks.append(Paragraph(
        f"Predicted outcome: “{d.get('target', fmt.DASH)}”, classes "
        f"{', '.join(str(c) for c in d.get('classes') or []) or fmt.DASH}; favourable outcome "
        f"“{d.get('favourable', fmt.DASH)}”; {fmt.count(d.get('n_features'))} input features."
        + (f" Features made from the columns by: {d['featurizer']}." if d.get("featurizer") else "")))
    rows = [[Cell(str(s.get("name", ""))), Cell(str(s.get("role", ""))), Cell(str(s.get("source", ""))),
             Cell(fmt.count(s.get("rows")), "num"), Cell(fmt.short_hash(s.get("sha256")), "hash")]
            for s in d.get("splits") or []]
    section.blocks.append(Table(["Split", "Role in the audit", "Source file", "Rows", "SHA-256 of content"], rows,
                                caption="Data sets used", css="splits",
                                note="The hash identifies the exact content; any change to the data changes it."))
    splits = [str(s.get("name")) for s in d.get("splits") or []]
    rows = []
    for s in d.get("sensitive") or []:
        unknown = s.get("unknown") or {}
        rows.append([Cell(str(s.get("attribute", ""))), Cell(str(s.get("how_obtained", "")))]
                    + [Cell(fmt.count(unknown.get(n, 0)), "num") for n in splits])
    section.blocks.append(Table(["Sensitive attribute", "How it was obtained"]
                                + [f"Unknown in {n}" for n in splits], rows,
                                caption="Sensitive attributes and records whose category is unknown",
                                note="Records of unknown category are counted here and left out of the group "
                                     "comparisons (NYC Local Law 144 asks for these counts)."))


def subgroups(section: Section, run: dict, **_) -> None:
    from .document import min_cell, suppressed
    minimum = min_cell(run)
    section.blocks.append(Paragraph(
        f"Groups are formed from each sensitive attribute and from the intersections listed below, on the "
        f"test set. A group with fewer than {minimum} test records is too small for a reliable rate and could "
        f"single out individuals, so its figures are suppressed throughout the report."))
    rows = []
    for table in (run.get("fairness") or {}).get("groups") or []:
        cols = table.get("columns") or [table.get("attribute")]
        kind = "intersection of " + " and ".join(str(c) for c in cols) if len(cols) > 1 else "single attribute"
        for g in table.get("groups") or []:
            ok = g.get("sufficient", True)
            status = "reported" if ok else suppressed(minimum)
            if g.get("unknown"):
                status = "unknown category: not compared"
            rows.append([Cell(str(table.get("attribute", ""))), Cell(kind, "note"), Cell(str(g.get("group", ""))),
                         Cell(fmt.count(g.get("count")) if ok else fmt.DASH, "num"),
                         Cell(status, "" if ok else "muted")])
    if rows:
        section.blocks.append(Table(["Attribute", "Definition", "Group", "Test records", "In this report"], rows))
    else:
        section.blocks.append(Paragraph("The fairness audit did not run, so no subgroups were formed."))


def methodology(section: Section, run: dict, **_) -> None:
    d, inf = run.get("data") or {}, run.get("influence") or {}
    fav = str(d.get("favourable", ""))
    section.blocks.append(Heading("Metrics and why they were chosen"))
    section.blocks.append(Table(["Metric", "What it measures", "Which direction is bad"],
                                [[Cell(a), Cell(b.format(fav=fav)), Cell(c)] for a, b, c in METRIC_WORDS],
                                css="defs"))
    decision = str((run.get("scope") or {}).get("decision", ""))
    if decision in DECISION_WORDS:
        section.blocks.append(Paragraph("The decision is " + DECISION_WORDS[decision].format(fav=fav)))
    disp = _first_disparity(run)
    if disp:
        section.blocks.append(Paragraph(
            f"Confidence intervals: rates of a single group carry Wilson score intervals; differences and ratios "
            f"carry {fmt.pct(disp.get('confidence', 0.95))} intervals from a group-stratified bootstrap "
            f"({disp.get('n_boot_used', disp.get('n_boot'))} resamples, records resampled within each group, "
            f"seed {disp.get('seed')}). An interval is the range of values compatible with the data; "
            f"a wide interval means the group is small."))
    section.blocks.append(Heading("The influence estimator"))
    section.blocks.append(kv([
        ("Method", str(inf.get("method", fmt.DASH)), "How the inverse Hessian is applied (exact = direct solve)."),
        ("Damping", str(inf.get("damping", fmt.DASH)), "Added to the Hessian for stability; 0 = none."),
        ("Numeric type", str(inf.get("dtype", fmt.DASH)), "float64 keeps rounding error negligible."),
        ("L2 penalty of the objective", _l2_text(inf.get("l2")), "Part of the objective the Hessian is of."),
        ("Seed", str(inf.get("seed", fmt.DASH)), "Fixes every random choice, so the run can be repeated."),
        ("Parameters", fmt.count(inf.get("parameters")), "Size of the Hessian (parameters × parameters)."),
    ]))
    if inf.get("damping_note"):
        section.blocks.append(Paragraph(str(inf["damping_note"]), "note"))
    refits = inf.get("refits") or {}
    if refits.get("count"):
        section.blocks.append(Paragraph(
            f"Retrainings made by this audit: {refits['count']} ("
            + ", ".join(f"{k}: {v['count']}" for k, v in (refits.get("by_purpose") or {}).items())
            + f"); {refits.get('not_converged', 0)} did not reach a relative gradient norm of "
              f"{fmt.num(refits.get('tolerance'))} (largest left: {fmt.num(refits.get('largest_relative'))})."))
    section.blocks.append(Paragraph(SIGN_CONVENTION, "callout"))
    stability(section, inf.get("stability") or {})
    privacy_method(section, run)


def _first_disparity(run: dict) -> dict | None:
    for rows in ((run.get("fairness") or {}).get("disparities") or {}).values():
        for r in rows:
            if r.get("n_boot"):
                return r
    return None


def _l2_text(l2) -> str:
    """An L2 coefficient, or a per-parameter mapping of them ("weight 0.0018, bias 0")."""
    if isinstance(l2, dict):
        return ", ".join(f"{k} {float(v):.3g}" for k, v in l2.items()) or "none"
    return fmt.DASH if fmt.missing(l2) else f"{float(l2):.3g}"


def _retraining_cell(rt: dict | None) -> Cell:
    """The 'against retraining' cell: rank agreement of single removals, or a predicted vs actual gap."""
    if not rt:
        return Cell("not run", "muted")
    if rt.get("actual_gap") is not None:
        return Cell(f"gap after removing top {rt.get('k')}: predicted {fmt.num(rt.get('predicted_gap'))}, "
                    f"actual {fmt.num(rt.get('actual_gap'))}")
    return Cell(f"Spearman {fmt.num(rt.get('spearman'))}, ratio {fmt.num(rt.get('median_ratio'))}")


def stability(section: Section, st: dict) -> None:
    """How far the estimates can be trusted on this model: agreement of the top-k under other settings."""
    section.blocks.append(Heading("Trust in the estimates, measured on this model"))
    settings = [s.get("label", "") for s in st.get("settings") or []]
    findings = st.get("findings") or []
    if not findings:
        section.blocks.append(Paragraph("No stability check was run: the influence estimates have not been "
                                        "tested for sensitivity to damping or solver on this model.", "note"))
        return
    section.blocks.append(Paragraph(
        "Each key finding (the top records behind a disparity, the top privacy-risk records) was recomputed "
        "with the ridge of the Hessian (the L2 penalty plus the damping) ten times smaller and ten times larger, "
        "and with a second solver. The table shows "
        "how many of the top-k records stay in the top-k (k of k = identical ranking; fewer than about 7 in "
        "10 means the finding depends on the setting). Where the plugins retrained the model without the "
        "records, the rank correlation (Spearman; 1 = same order) and the median ratio of actual to predicted "
        "effect (1 = exact), or the gap predicted after removing the top k drivers against the gap actually "
        "measured after retraining without them, say how close the estimates are to reality."))
    rows = []
    for f in findings:
        k = int(f.get("k") or 0)
        ag = f.get("agreement") or {}
        cells = [Cell(str(f.get("finding", ""))), Cell(str(k), "num")]
        failed = f.get("failures") or {}
        for s in settings:
            a = ag.get(s)
            cells.append(Cell("failed" if s in failed else fmt.DASH if a is None else f"{round(a * k)} of {k}",
                              "num"))
        cells.append(_retraining_cell(f.get("retraining")))
        verdict = str(f.get("verdict", ""))
        cells.append(Cell(verdict, "pass" if verdict == "robust" else "warn"))
        rows.append(cells)
    desc = "; ".join(f"{s.get('label')}: {s.get('method')}, l2 {_l2_text(s.get('l2'))}, damping "
                     f"{fmt.num(s.get('damping'))}" for s in st.get("settings") or [])
    failures = {k: v for f in findings for k, v in (f.get("failures") or {}).items()}
    if failures:
        desc += ". Failed settings: " + "; ".join(f"{k}: {v}" for k, v in failures.items())
    section.blocks.append(Table(["Finding", "k"] + [f"Top-k kept, {s}" for s in settings]
                                + ["Against retraining", "Verdict"], rows, note="Settings compared: " + desc))


def privacy_method(section: Section, run: dict) -> None:
    p = run.get("privacy")
    if not p:
        return
    splits = {s.get("name"): s for s in (run.get("data") or {}).get("splits") or []}
    hold = next((s for s in splits.values() if "non-member" in str(s.get("role", ""))), None)
    section.blocks.append(Heading("Membership-inference threat model"))
    section.blocks.append(Bullets([
        "Black-box attacker (LOSS attack): sees the model's output on a record with its true label and guesses "
        "“member of the training data” when the loss is low. This is the baseline any deployed model faces.",
        "White-box attacker (self-influence attack): holds the weights and computes each record's "
        "self-influence; training records have been fitted, so their self-influence differs from others'.",
        f"Members: the {fmt.count(p.get('n_members'))} training records. Non-members: "
        f"{fmt.count(p.get('n_nonmembers'))} records never used in training"
        + (f" (split “{hold.get('name')}”, {hold.get('source')})" if hold else "") + ".",
        f"Risk score of a record: {p.get('risk_score', fmt.DASH)}; signals: "
        f"{', '.join(str(s) for s in p.get('signals') or []) or fmt.DASH}.",
        f"A training record is flagged when its risk exceeds the threshold ({fmt.num(p.get('threshold'))}) that "
        f"only {fmt.pct(p.get('budget'))} of non-members exceed, so a flag has a known false-alarm rate of about "
        f"{fmt.pct(p.get('budget'))} (measured on the calibration records: "
        f"{fmt.pct(p.get('realised_fpr_on_calibration'), 1)}).",
    ] + reference_bullet(p.get("reference"))))


def reference_bullet(ref: dict | None) -> list[str]:
    """The reference-model attacker of the threat model, as the findings' ``privacy.reference`` describes it."""
    if not ref:
        return []
    kind = "online LiRA (models trained with and without each record)" if ref.get("attack") == "online" else \
        "offline LiRA (models trained without the record)"
    return [f"Reference-model attacker: {kind}, {fmt.count(ref.get('n_models'))} reference models "
            f"({ref.get('initialisation')} start"
            + (f", chosen from a time budget of {fmt.num(ref.get('budget_s'), 0)} s" if ref.get("chosen_from_budget")
               else "") + f"); they took {fmt.num(ref.get('seconds'), 0)} s on {fmt.count(ref.get('workers'))} "
            "worker process(es). It compares the model's confidence on a record with theirs."]


def policy(section: Section, run: dict, **_) -> None:
    pol = run.get("policy") or {}
    section.blocks.append(Paragraph(
        f"Policy “{pol.get('title') or pol.get('name', fmt.DASH)}” ({pol.get('source', fmt.DASH)}, SHA-256 "
        f"{fmt.short_hash(pol.get('sha256'))})."))
    section.blocks.append(Paragraph(
        "How a result is decided: when the observed value has a confidence interval, the rule passes only if the "
        "whole interval lies within the bound and takes the rule's severity only if the whole interval lies "
        "outside it. When the interval straddles the bound, the data cannot settle the question and the rule's "
        "“if straddles” setting decides (usually a warning). Without an interval the observed value decides. "
        "A group with fewer records than the rule's minimum gives INSUFFICIENT DATA.", "callout"))
    rows = []
    for r in pol.get("rules") or []:
        sc = r.get("scope") or {}
        where = []
        if sc.get("attributes"):
            where.append("attributes: " + ", ".join(str(a) for a in sc["attributes"]))
        if sc.get("groups"):
            where.append("groups: " + ", ".join(str(g) for g in sc["groups"]))
        rows.append([Cell(str(r.get("id", "")), "mono"),
                     Cell(str(r.get("metric", "")), "mono", sub="; ".join(where) or "every attribute and group"),
                     Cell(bound_text(r.get("bound") or {})), Cell(str(r.get("severity", ""))),
                     Cell(fmt.count(r.get("min_n")), "num"),
                     Cell(f"straddles → {r.get('if_straddles', 'warn')}",
                          sub=f"too few → {r.get('when_insufficient', 'warn')}"),
                     Cell(str(r.get("requirement", "")))])
    section.blocks.append(Table(["Rule", "Metric and scope", "Bound", "Severity", "Min n", "Undecided cases",
                                 "Requirement"], rows, caption="Rules", css="small rules"))
    rows = []
    for c in run.get("checks") or []:
        where = " / ".join(str(x) for x in (c.get("attribute"), c.get("group")) if x) or "overall"
        iv = c.get("interval")
        status = str(c.get("status", ""))
        rows.append([Cell(str(c.get("rule", "")), "mono", sub=str(c.get("requirement", ""))),
                     Cell(where, sub=f"n = {fmt.count(c.get('n'))}" if c.get("n") is not None else ""),
                     Cell(fmt.num(c.get("value"), 3), "num",
                          sub=fmt.interval(iv[0], iv[1], digits=3) if iv else "no interval"),
                     Cell(str(c.get("bound", ""))),
                     Cell(status.replace("_", " ").upper(), status, sub=f"by {c.get('decided_by', fmt.DASH)}"),
                     Cell(str(c.get("explanation", "")), "note")])
    section.blocks.append(Table(["Rule", "Where", "Observed", "Bound", "Result", "What it means"], rows,
                                caption="Results, one per rule and group", css="checks"))


def bound_text(b: dict) -> str:
    kind = b.get("kind")
    if kind == "absolute":
        parts = ([f"≥ {b['min']}"] if b.get("min") is not None else []) + \
                ([f"≤ {b['max']}"] if b.get("max") is not None else [])
        return " and ".join(parts) or fmt.DASH
    if kind == "ratio_band":
        return f"between {b.get('low')} and {b.get('high')}"
    if kind == "relative_to_reference":
        return f"within {b.get('max_difference')} of the reference group"
    if kind == "relative_to_previous":
        parts = ([f"rises by ≤ {b['max_increase']}"] if b.get("max_increase") is not None else []) + \
                ([f"falls by ≤ {b['max_decrease']}"] if b.get("max_decrease") is not None else [])
        return " and ".join(parts) + " since the previous audit"
    return str(b)


def limitations(section: Section, run: dict, **_) -> None:
    from .document import min_cell
    items = [str(x) for x in run.get("limitations") or []]
    inf = run.get("influence") or {}
    if inf.get("damping_note"):
        items.append(str(inf["damping_note"]))
    for f in (inf.get("stability") or {}).get("findings") or []:
        if f.get("verdict") == "sensitive":
            items.append(f"The finding “{f.get('finding')}” is sensitive: its top records change when the ridge "
                         "of the Hessian (L2 penalty plus damping) or the solver changes, so treat the individual "
                         "records as indicative only.")
    names = suppressed_groups(run)
    if names:
        items.append(f"Groups with fewer than {min_cell(run)} test records were not reported: {', '.join(names)}.")
    for key, words in (("fairness", "Fairness"), ("privacy", "Privacy"), ("data_quality", "Data quality")):
        block = run.get(key)
        if not block:
            items.append(f"{words} was not audited in this run.")
            continue
        items.extend(str(n) for n in block.get("notes") or [])
    p = run.get("privacy") or {}
    for name, a in (p.get("attacks") or {}).items():
        for f in a.get("unresolved_fprs") or []:
            items.append(f"The {name} attack's TPR at {fmt.pct(f, 1)} FPR could not be measured: it needs at least "
                         f"{int(round(1 / f))} non-members and the run had {fmt.count(a.get('n_nonmembers'))}.")
    if run.get("fairness") and not run["fairness"].get("verified"):
        items.append("The predicted effects of removing the drivers of each disparity were not verified by "
                     "retraining (no training function was given).")
    seen, unique = set(), []
    for x in items:
        if x not in seen:
            seen.add(x)
            unique.append(x)
    section.blocks.append(Bullets(unique) if unique else Paragraph("No limitations were recorded."))


def key_figures(run: dict) -> dict[str, float]:
    """The figures tracked across audits: selection-rate impact ratio per attribute (against the most
    selected group) and membership AUC per attack. The history store should use the same labels."""
    out: dict[str, float] = {}
    for attr, rows in ((run.get("fairness") or {}).get("disparities") or {}).items():
        for r in rows:
            ir = r.get("impact_ratio_max") or {}
            if r.get("metric") == "selection_rate" and ir.get("value") is not None:
                out[f"selection-rate impact ratio ({attr})"] = float(ir["value"])
    for name, a in ((run.get("privacy") or {}).get("attacks") or {}).items():
        if a.get("auc") is not None:
            out[f"membership AUC ({name})"] = float(a["auc"])
    return out


def history(section: Section, run: dict, **_) -> None:
    past = list(run.get("history") or [])[-6:]
    current = run.get("key_figures") or key_figures(run)
    if not past:
        section.blocks.append(Paragraph("This is the first recorded audit of this model line: there is no "
                                        "earlier run to compare with."))
    labels = list(dict.fromkeys([k for h in past for k in (h.get("figures") or {})] + list(current)))
    cols = [h.get("report_id", "") for h in past] + ["this report"]
    rows = [[Cell("Date", "label")] + [Cell(fmt.when(h.get("created_utc"))) for h in past]
            + [Cell(fmt.when(run.get("created_utc")))],
            [Cell("Model version", "label")] + [Cell(str(h.get("model_version", ""))) for h in past]
            + [Cell(str((run.get("model") or {}).get("version", "")))],
            [Cell("Status", "label")] + [Cell(str(h.get("status", "")).replace("_", " ")) for h in past]
            + [Cell(str(run.get("status", "")).replace("_", " "))]]
    for label in labels:
        rows.append([Cell(label, "label")] + [Cell(fmt.num((h.get("figures") or {}).get(label)), "num")
                                              for h in past] + [Cell(fmt.num(current.get(label)), "num")])
    section.blocks.append(Table(["Key figure"] + cols, rows, css="history",
                                note="Impact ratio: smaller is worse (below 0.80 is adverse impact). "
                                     "Membership AUC: larger is worse (0.5 = an attacker does no better than "
                                     "guessing). Up to six earlier runs are shown, oldest first."))


def signoff(section: Section, run: dict, **_) -> None:
    so = run.get("sign_off") or {}
    section.blocks.append(Paragraph(
        "By signing, each person confirms they have read this report and that it reflects the audit of the "
        "model and data identified by the hashes in section 3, 4 and 14."))
    section.blocks.append(Signatures([(str(r.get("role", "")), str(r.get("name", "") or ""))
                                      for r in so.get("roles") or []]))
    if so.get("independence"):
        section.blocks.append(Paragraph("Independence: " + str(so["independence"])))


def reproducibility(section: Section, run: dict, **_) -> None:
    pv = run.get("provenance") or {}
    h = pv.get("hashes") or {}
    pairs = [("Model weights", fmt.short_hash(h.get("model"))), ("Configuration", fmt.short_hash(h.get("config"))),
             ("Policy file", fmt.short_hash(h.get("policy")))]
    pairs += [(f"Data: {k}", fmt.short_hash(v)) for k, v in (h.get("data") or {}).items()]
    section.blocks.append(kv(pairs, caption="SHA-256 hashes"))
    section.blocks.append(kv([(str(k), str(v)) for k, v in (pv.get("versions") or {}).items()]
                             + [("Seed", str(pv.get("seed", fmt.DASH)))], caption="Software versions and seed"))
    section.blocks.append(Paragraph("Command that re-runs this audit (same configuration, data and seed give the "
                                    "same findings):"))
    section.blocks.append(Code(str(pv.get("command", fmt.DASH))))
    if pv.get("config_text"):
        section.blocks.append(Paragraph("Configuration file as used:"))
        section.blocks.append(Code(str(pv["config_text"])))
    rt = run.get("runtime") or {}
    if rt.get("steps"):
        rows = [[Cell(str(s.get("name", ""))), Cell(fmt.seconds(s.get("seconds")), "num")] for s in rt["steps"]]
        rows.append([Cell("total", "label"), Cell(fmt.seconds(rt.get("seconds")), "num")])
        section.blocks.append(Table(["Step", "Time"], rows, caption="Run time", css="narrow"))


def annex(section: Section, run: dict, *, annex: dict, **_) -> None:
    name = annex.get("name", "findings.json")
    section.blocks.append(Paragraph(
        f"The complete findings are attached to this PDF as the file “{name}” (a PDF/A-3 embedded file). "
        f"A PDF reader shows it in its attachments pane; on the command line, “pdfdetach -saveall report.pdf” "
        f"extracts it. The HTML version of the report sits next to the same file."))
    pairs = [("File name", name)]
    if annex.get("sha256"):
        pairs.append(("SHA-256", fmt.short_hash(annex["sha256"])))
    if annex.get("bytes") is not None:
        pairs.append(("Size", f"{fmt.count(annex['bytes'])} bytes"))
    if annex.get("keys"):
        pairs.append(("Top-level keys", ", ".join(str(k) for k in annex["keys"])))
    section.blocks.append(kv(pairs))
    section.blocks.append(Paragraph(
        "The file holds the overall status, every policy check, the per-group metrics and disparities with their "
        "intervals, the ranked drivers with their predicted effects, the membership-inference results and the "
        "flagged tokens, the data-quality findings, the influence settings with their trust figures, and the "
        "provenance hashes. Token-to-record mapping is not part of it: it is delivered separately to the data "
        "owner."))
