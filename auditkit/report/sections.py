"""Builders of the report's sections 1-6 and 10-15 (the results sections 7-9 live in ``results.py``).

Each builder fills one :class:`~auditkit.report.blocks.Section` from the typed run document
(:class:`~auditkit.rundoc.RunDocument`); all strings stay raw (the template escapes them). Plain words
accompany every number.
"""

from __future__ import annotations

from ..rundoc import Check, RunDocument, TrainingFit
from ..rundoc.parts import RetrainingEvidence, Stability
from . import fmt
from .blocks import (
    SUPPRESSED,
    Annex,
    Bullets,
    Cell,
    Code,
    Heading,
    Paragraph,
    Section,
    Signatures,
    Table,
    kv,
    min_cell,
    withheld,
)
from .limitations import damping_note
from .limitations import limitations as limitation_items
from .metric_choice import interval_methods, metric_choice
from .results import fairness, false_alarm_rate, privacy, quality, suppressed_groups  # noqa: F401  (re-exported builders)

DECISION_WORDS = {
    "assistive": ("assistive: a favourable prediction gives the person a benefit (here: {fav}). The harmful "
                  "error is a missed benefit, a false negative, so equal true positive rates (equal "
                  "opportunity) across groups matter most."),
    "punitive": ("punitive: a favourable prediction exposes the person to a sanction or scrutiny (here: {fav}). "
                 "The harmful error is a false accusation, a false positive, so equal false positive rates "
                 "across groups matter most."),
}

SIGN_CONVENTION = (
    "Sign convention of every influence value in this report: the value estimates how much a quantity "
    "(a loss, or a gap between groups) would change if that one training record were removed and the "
    "model retrained. For a loss, a positive value means the record helps (removing it would make the "
    "loss worse); a negative value means it hurts. For a gap between groups, a negative value means "
    "removing the record would shrink the gap, so the record drives the disparity. Values are in the "
    "units of the quantity (probability or loss) and are comparable with actual retraining."
)

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


TRIGGER_WORDS = {"manual": "manual run", "schedule": "scheduled run", "ci": "release pipeline (CI)"}


def _policy_name(run: RunDocument) -> str:
    """"Title (source)" of the run's policy; dashes without one."""
    pol = run.policy
    if pol is None:
        return f"{fmt.DASH} ({fmt.DASH})"
    return f"{pol.title or pol.name} ({pol.source or fmt.DASH})"


def cover(section: Section, run: RunDocument, **_) -> None:
    model, scope = run.model, run.scope
    section.blocks.append(kv([
        ("Report id", run.report_id),
        ("Date and time", fmt.when(run.created_utc)),
        ("Triggered by", TRIGGER_WORDS.get(run.trigger, run.trigger)),
        ("Organisation", scope.organisation),
        ("System", scope.system),
        ("Model", f"{model.name} version {model.version}"),
        ("Policy applied", _policy_name(run)),
        ("auditkit version", run.auditkit_version),
        ("Schema", run.schema_),
    ], caption="Document control"))
    section.blocks.append(Paragraph(
        "This report is evidence of a pre-deployment audit. It identifies the model and data by cryptographic "
        "hashes, states how each figure was computed and how far it can be trusted, and carries the "
        "machine-readable findings as an attachment."))
    section.blocks.append(Paragraph(data_protection(run)))


def data_protection(run: RunDocument) -> str:
    """The data-protection paragraph: the report holds pseudonymised data, what the tokens are, who holds the
    key and the mapping, and what is suppressed."""
    key = run.provenance.token_key if run.provenance is not None else None
    return ("It contains pseudonymised data, not anonymous data. Records are named only by tokens (R-XXXXXXXX): "
            "keyed hashes (BLAKE2b) of each record's split and row, whose key is "
            + (f"{key.rstrip('.')}" if key else "not recorded in this run")
            + ". The data owner holds the mapping from tokens to record ids, in the private file "
            "flagged_records.csv. A token shown with a record's label and groups (such as sex and age band) is "
            "pseudonymised personal data, health data where the label is a diagnosis (GDPR Recital 26): handle this "
            "report accordingly. Groups with too few records, and the groups from which they could be worked out "
            "by subtraction, are suppressed here and in the attached findings.")


def scope(section: Section, run: RunDocument, **_) -> None:
    sc = run.scope
    words = DECISION_WORDS.get(sc.decision, "{fav}").format(fav=run.data.favourable)
    section.blocks.append(kv([
        ("Organisation", sc.organisation),
        ("System", sc.system),
        ("Intended use", sc.intended_use),
        ("Population", sc.population),
        ("Decision supported", sc.decision_description),
        ("Kind of decision", words),
        ("Frameworks claimed", "; ".join(sc.frameworks) or "none stated"),
    ]))


def model(section: Section, run: RunDocument, **_) -> None:
    m = run.model
    section.blocks.append(kv([
        ("Name", m.name),
        ("Version", m.version),
        ("SHA-256 of the weights file", fmt.short_hash(m.weights_sha256)),
        ("Framework", m.framework),
        ("Architecture", m.architecture),
        ("Trainable parameters", fmt.count(m.parameters)),
        ("Training loss and L2 penalty", f"{m.loss}, l2 = {_l2_text(m.l2)}"),
        ("Model builder (user code)", m.builder or fmt.DASH),
        ("Previously audited version", m.previous_version or "none: first audit of this model line"),
    ]))
    if m.weights_sha256:
        text = ("The builder is code supplied by the model owner; the weights were loaded without executing code "
                "(PyTorch weights_only loading). Anyone holding the weights file can check its SHA-256 against the "
                "value above.")
    elif (m.builder or "").startswith("in-memory"):
        text = ("The model was passed to auditkit as a Python object (auditkit.audit(model=...)); no weights file "
                "was read. The SHA-256 of its parameters (section Reproducibility) identifies the state audited.")
    else:
        text = ("The builder is code supplied by the model owner and returned the trained model itself; no "
                "weights file was read. The SHA-256 of its parameters (section Reproducibility) identifies the state "
                "audited.")
    section.blocks.append(Paragraph(text, "small"))
    training_fit(section, m.training_fit)


def training_fit(section: Section, fit: TrainingFit | None) -> None:
    """The model on its training records as the audit featurized them: loss, accuracy, stationarity."""
    if fit is None:
        return
    section.blocks.append(kv([
        ("Training loss (mean)", fmt.num(fit.loss, 3), "Compare with the model owner's figure: a higher value "
         "means the audit does not see the records as training did."),
        ("Training accuracy", fmt.pct(fit.accuracy, 1), "Share of training records predicted correctly, as the "
         "audit sees them."),
        ("Gradient norm of the objective", fmt.num(fit.grad_norm), "Mean loss + L2 at the audited weights: "
         "0 at a minimum, which influence estimates assume."),
        ("Relative to shuffled labels", f"{fmt.num(fit.relative)} (accepted up to "
         f"{fmt.num(fit.threshold)})", "The same gradient with the labels shuffled is the scale; converged "
         "training reaches 1e-6 or less."),
    ], caption="The model on its training records, as featurized for this audit"))
    if not fit.stationary:
        section.blocks.append(Paragraph(
            "The audited weights are not a minimum of the stated objective on these records: the audit ran only "
            "because model.allow_non_stationary was set, and its influence estimates may be far from what "
            "retraining would do (see the limitations).", "note"))


def data(section: Section, run: RunDocument, **_) -> None:
    d = run.data
    section.blocks.append(Paragraph(
        f"Predicted outcome: “{d.target}”, classes {', '.join(d.classes) or fmt.DASH}; favourable outcome "
        f"“{d.favourable}”; {fmt.count(d.n_features)} input features."
        + (f" Features made from the columns by: {d.featurizer}." if d.featurizer else "")))
    rows = [[Cell(s.name), Cell(s.role), Cell(s.source), Cell(fmt.count(s.rows), "num"),
             Cell(fmt.short_hash(s.sha256), "hash")] for s in d.splits]
    section.blocks.append(Table(["Split", "Role in the audit", "Source file", "Rows", "SHA-256 of content"], rows,
                                caption="Data sets used", css="splits",
                                note="The hash identifies the exact content; any change to the data changes it."))
    splits = [s.name for s in d.splits]
    rows = [[Cell(s.attribute), Cell(s.how_obtained)]
            + [Cell(SUPPRESSED, "muted") if n in s.unknown_suppressed else Cell(fmt.count(s.unknown.get(n, 0)), "num")
               for n in splits] for s in d.sensitive]
    section.blocks.append(Table(["Sensitive attribute", "How it was obtained"]
                                + [f"Unknown in {n}" for n in splits], rows,
                                caption="Sensitive attributes and records whose category is unknown",
                                note="Records of unknown category are counted here and left out of the group "
                                     "comparisons (NYC Local Law 144 asks for these counts)."))


def subgroups(section: Section, run: RunDocument, **_) -> None:
    minimum = min_cell(run)
    section.blocks.append(Paragraph(
        f"Groups are formed from each sensitive attribute and from the intersections listed below, on the "
        f"test set. A group with fewer than {minimum} test records is too small for a reliable rate and could "
        f"single out individuals, so its figures are suppressed throughout the report."))
    rows = []
    for table in run.fairness.groups if run.fairness else []:
        cols = table.columns or [table.attribute]
        kind = "intersection of " + " and ".join(cols) if len(cols) > 1 else "single attribute"
        for g in table.groups:
            hidden = withheld(g, minimum)
            status = hidden or "reported"
            if g.unknown:
                status = "unknown category: not compared"
            rows.append([Cell(table.attribute), Cell(kind, "note"), Cell(g.group),
                         Cell(fmt.DASH if hidden else fmt.count(g.count), "num"),
                         Cell(status, "muted" if hidden else "")])
    if rows:
        section.blocks.append(Table(["Attribute", "Definition", "Group", "Test records", "In this report"], rows))
    else:
        section.blocks.append(Paragraph("The fairness audit did not run, so no subgroups were formed."))


def methodology(section: Section, run: RunDocument, **_) -> None:
    inf, fav = run.influence, run.data.favourable
    section.blocks.append(Heading("Metrics and why they were chosen"))
    section.blocks.append(Table(["Metric", "What it measures", "Which direction is bad"],
                                [[Cell(a), Cell(b.format(fav=fav)), Cell(c)] for a, b, c in METRIC_WORDS],
                                css="defs"))
    if run.scope.decision in DECISION_WORDS:
        section.blocks.append(Paragraph("The decision is " + DECISION_WORDS[run.scope.decision].format(fav=fav)))
    choice = metric_choice(run)
    if choice:
        section.blocks.append(Paragraph(choice, "callout"))
    intervals = interval_methods(run)
    if intervals:
        section.blocks.append(Paragraph(intervals))
    section.blocks.append(Heading("The influence estimator"))
    section.blocks.append(kv([
        ("Method", inf.method, "How the inverse Hessian is applied (exact = direct solve)."),
        ("Damping", str(inf.damping), "Added to the Hessian for stability; 0 = none."),
        ("Numeric type", inf.dtype, "float64 keeps rounding error negligible."),
        ("L2 penalty of the objective", _l2_text(inf.l2), "Part of the objective the Hessian is of."),
        ("Seed", str(inf.seed), "Fixes every random choice, so the run can be repeated."),
        ("Parameters", fmt.count(inf.parameters), "Size of the Hessian (parameters × parameters)."),
    ]))
    solver_rows = []
    if inf.method_reason:
        solver_rows.append(("Solver chosen", inf.method_used or fmt.DASH, inf.method_reason + "."))
    if inf.residual is not None:
        solver_rows.append(("Solver residual", f"{float(inf.residual):.1e}",
                            f"Largest relative residual ‖b − Hx‖/‖b‖ measured after the iterative solves; stopping "
                            f"rule: {inf.stopping_rule or 'relative residual'} (tol = {inf.tol})."))
    if solver_rows:
        section.blocks.append(kv(solver_rows))
    note = damping_note(run)
    if note:
        section.blocks.append(Paragraph(note, "note"))
    refits = inf.refits
    if refits is not None and refits.count:
        section.blocks.append(Paragraph(
            f"Retrainings made by this audit: {refits.count} ("
            + ", ".join(f"{k}: {v.count}" for k, v in refits.by_purpose.items())
            + f"); {refits.not_converged} did not reach a relative gradient norm of "
              f"{fmt.num(refits.tolerance)} (largest left: {fmt.num(refits.largest_relative)})."))
    section.blocks.append(Paragraph(SIGN_CONVENTION, "callout"))
    stability(section, inf.stability, inf.method_used or inf.method)
    privacy_method(section, run)


def _l2_text(l2) -> str:
    """An L2 coefficient, or a per-parameter mapping of them ("weight 0.0018, bias 0")."""
    if isinstance(l2, dict):
        return ", ".join(f"{k} {float(v):.3g}" for k, v in l2.items()) or "none"
    return fmt.DASH if fmt.missing(l2) else f"{float(l2):.3g}"


def _retraining_cell(rt: RetrainingEvidence | None) -> Cell:
    """The 'against retraining' cell: rank agreement of single removals, or a predicted vs actual gap."""
    if rt is None or not rt.model_fields_set:
        return Cell("not run", "muted")
    if rt.actual_gap is not None:
        return Cell(f"gap after removing top {rt.k}: predicted {fmt.num(rt.predicted_gap)}, "
                    f"actual {fmt.num(rt.actual_gap)}")
    return Cell(f"Spearman {fmt.num(rt.spearman)}, ratio {fmt.num(rt.median_ratio)}")


#: the influence methods in words, for readers who do not know the solvers' names
SOLVER_WORDS = {"exact": "the Hessian formed and factorised exactly", "cg": "conjugate gradients to a stated residual",
                "pcg": "conjugate gradients preconditioned by EK-FAC, to a stated residual",
                "lissa": "LiSSA, a stochastic series", "arnoldi": "Arnoldi, a low-rank approximation of the Hessian",
                "ekfac": "EK-FAC, an approximation of the Hessian by Kronecker factors with re-fitted eigenvalues",
                "kfac": "K-FAC, an approximation of the Hessian by Kronecker factors"}


def _compared_settings(st: Stability, method_used: str) -> str:
    """What the stability check recomputed the findings with, in words (the end of a sentence and the next)."""
    factors = [s.label.split("×", 1)[1] for s in st.settings if "×" in s.label and not s.label.startswith("solver ")]
    solvers = [s.method for s in st.settings if s.label.startswith("solver ")]
    parts = []
    if factors:
        parts.append("with the ridge of the Hessian (the L2 penalty plus the damping) multiplied by "
                     + " and by ".join(factors))
    if solvers:
        parts.append("with a second solver: " + "; ".join(f"{m} ({SOLVER_WORDS.get(m, m)})" for m in solvers))
    text = ", and ".join(parts) + "." if parts else "under no other setting."
    if not solvers:
        text += (" No second solver was compared: the Hessian was formed and factorised exactly, the reference "
                 "an approximate solver is itself measured against." if method_used == "exact" else
                 " No second solver was compared (the configuration's second_solver is none).")
    return text


def stability(section: Section, st: Stability, method_used: str) -> None:
    """How far the estimates can be trusted on this model: agreement of the top-k under other settings."""
    section.blocks.append(Heading("Trust in the estimates, measured on this model"))
    settings = [s.label for s in st.settings]
    if not st.findings:
        section.blocks.append(Paragraph("No stability check was run: the influence estimates have not been "
                                        "tested for sensitivity to damping or solver on this model.", "note"))
        return
    section.blocks.append(Paragraph(
        "Each key finding (the top records behind a disparity, the top privacy-risk records) was recomputed "
        + _compared_settings(st, method_used) + " "
        "The table shows how many of the top-k records stay in the top-k (k of k = identical ranking; fewer "
        "than about 7 in 10 means the finding depends on the setting). Where the plugins retrained the model "
        "without the records, the rank correlation (Spearman; 1 = same order) and the median ratio of actual to "
        "predicted effect (1 = exact), or the gap predicted after removing the top k drivers against the gap "
        "actually measured after retraining without them, say how close the estimates are to reality."))
    rows = []
    for f in st.findings:
        k = int(f.k or 0)
        cells = [Cell(f.finding), Cell(str(k), "num")]
        for s in settings:
            a = f.agreement.get(s)
            cells.append(Cell("failed" if s in f.failures else fmt.DASH if a is None else f"{round(a * k)} of {k}",
                              "num"))
        cells.append(_retraining_cell(f.retraining))
        cells.append(Cell(f.verdict, "pass" if f.verdict == "robust" else "warn"))
        rows.append(cells)
    desc = "; ".join(f"{s.label}: {s.method}, l2 {_l2_text(s.l2)}, damping {fmt.num(s.damping)}" for s in st.settings)
    failures = {k: v for f in st.findings for k, v in f.failures.items()}
    if failures:
        desc += ". Failed settings: " + "; ".join(f"{k}: {v}" for k, v in failures.items())
    section.blocks.append(Table(["Finding", "k"] + [f"Top-k kept, {s}" for s in settings]
                                + ["Against retraining", "Verdict"], rows, note="Settings compared: " + desc))


def privacy_method(section: Section, run: RunDocument) -> None:
    p = run.privacy
    if p is None:
        return
    hold = next((s for s in run.data.splits if "non-member" in s.role), None)
    section.blocks.append(Heading("Membership-inference threat model"))
    section.blocks.append(Bullets([
        "Black-box attacker (LOSS attack): sees the model's output on a record with its true label and guesses "
        "“member of the training data” when the loss is low. This is the baseline any deployed model faces.",
        "White-box attacker (self-influence attack): holds the weights and computes each record's "
        "self-influence; training records have been fitted, so their self-influence differs from others'.",
        f"Members: the {fmt.count(p.n_members)} training records. Non-members: "
        f"{fmt.count(p.n_nonmembers)} records never used in training"
        + (f" (split “{hold.name}”, {hold.source})" if hold else "") + ".",
        f"Risk score of a record: {p.risk_score}; signals: {', '.join(p.signals) or fmt.DASH}.",
        f"A training record is flagged when its risk exceeds the threshold ({fmt.num(p.threshold)}) that "
        f"only {fmt.pct(p.budget)} of non-members exceed, so a record that is not exposed is flagged with "
        f"probability at most {fmt.pct(false_alarm_rate(p), 1)} (the budget, plus at most one record in "
        f"{fmt.count((p.n_nonmembers or 0) + 1)} for the finite calibration set; measured on the calibration "
        f"records: {fmt.pct(p.realised_fpr_on_calibration, 1)}).",
    ] + reference_bullet(p.reference)))


def reference_bullet(ref) -> list[str]:
    """The reference-model attacker of the threat model, as the findings' ``privacy.reference`` describes it."""
    if ref is None:
        return []
    kind = ("online LiRA (models trained with and without each record)" if ref.attack == "online"
            else "offline LiRA (models trained without the record)")
    return [f"Reference-model attacker: {kind}, {fmt.count(ref.n_models)} reference models ({ref.initialisation} "
            "start" + (f", chosen from a time budget of {fmt.num(ref.budget_s, 0)} s" if ref.chosen_from_budget
                       else "") + f"); they took {fmt.num(ref.seconds, 0)} s on {fmt.count(ref.workers)} "
            "worker process(es). It compares the model's confidence on a record with theirs."]


def check_confidence(run: RunDocument, check: Check) -> float | None:
    """The confidence level of a policy check's interval: the Wilson level for a single group's rate against
    a fixed bound, else (a difference, ratio or impact ratio, or a rate compared with the reference group's)
    the ``confidence`` of the attribute's bootstrap disparity; None when the run does not say."""
    parts = check.metric.split(".")
    if parts[0] != "fairness" or len(parts) < 2 or run.fairness is None:
        return None
    rule = next((r for r in (run.policy.rules if run.policy else []) if r.id == check.rule), None)
    if len(parts) == 2 and (rule is None or rule.bound.get("kind") != "relative_to_reference"):
        return fmt.WILSON_CONFIDENCE
    rows = run.fairness.disparities.get(check.attribute or "", [])
    return next((r.confidence for r in rows if r.metric == parts[1]), None)


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


def limitations(section: Section, run: RunDocument, **_) -> None:
    """The limitations composed from the run's facts and findings (:mod:`auditkit.report.limitations`)."""
    items = limitation_items(run)
    section.blocks.append(Bullets(items) if items else Paragraph("No limitations were recorded."))


def key_figures(run: RunDocument) -> dict[str, float]:
    """The figures tracked across audits: selection-rate impact ratio per attribute (against the most
    selected group) and membership AUC per attack. The history store should use the same labels."""
    out: dict[str, float] = {}
    for attr, rows in run.fairness.disparities.items() if run.fairness else []:
        for r in rows:
            ir = r.impact_ratio_max
            if r.metric == "selection_rate" and ir is not None and ir.value is not None:
                out[f"selection-rate impact ratio ({attr})"] = float(ir.value)
    for name, a in run.privacy.attacks.items() if run.privacy else []:
        if a.auc is not None:
            out[f"membership AUC ({name})"] = float(a.auc)
    return out


def history(section: Section, run: RunDocument, **_) -> None:
    """How the key figures moved since earlier audits: one column per audit (up to six earlier ones, oldest
    first, then this report), one row per key figure; a figure an earlier audit did not record shows a dash.
    Every metric with a failing or warning check is among the rows (the runner records its gap as a key
    figure; ``flagged_figures`` adds it for this report when it does not)."""
    past = run.history[-6:]
    current = dict(run.key_figures or key_figures(run))
    for label, value in flagged_figures(run).items():
        current.setdefault(label, value)
    if not past:
        section.blocks.append(Paragraph("This is the first recorded audit of this model line: there is no "
                                        "earlier run to compare with."))
    labels = list(dict.fromkeys([k for h in past for k in h.figures] + list(current)))
    cols = [fmt.when(h.created_utc).removesuffix(" UTC") for h in past] + ["this report"]
    rows = [[Cell("Report (AK-date-…)", "label")] + [Cell(_short_id(h.report_id), "mono") for h in past]
            + [Cell(_short_id(run.report_id), "mono")],
            [Cell("Model version", "label")] + [Cell(h.model_version or "") for h in past]
            + [Cell(run.model.version)],
            [Cell("Status", "label")] + [Cell(h.status.replace("_", " ")) for h in past]
            + [Cell(run.status.replace("_", " "))]]
    for label in labels:
        rows.append([Cell(label, "label")] + [Cell(_figure(label, h.figures.get(label)), "num") for h in past]
                    + [Cell(_figure(label, current.get(label)), "num")])
    section.blocks.append(Table(["Key figure (UTC date of the audit)"] + cols, rows, css="history",
                                note="Gaps of rates in percentage points (pp), larger is worse. Impact ratio: "
                                     "smaller is worse (below 0.80 is adverse impact). Membership AUC: larger is "
                                     "worse (0.5 = an attacker does no better than guessing). Up to six earlier "
                                     "runs are shown, oldest first; a dash: not recorded by that audit."))


def _short_id(report_id: str) -> str:
    """The random part of a report id ("AK-20261203-B1698264" → "B1698264"); the date is the column's."""
    return report_id.rsplit("-", 1)[-1]


def _figure(label: str, value) -> str:
    """A key figure in its unit: gaps of rates in pp, shares in %, ratios and AUCs with two decimals."""
    if "gap" in label and "error gap" not in label:
        return fmt.pp(value)
    if label.startswith("share"):
        return fmt.pct(value, 1)
    return fmt.num(value)


#: plain labels of the gaps a failing or warning check may be about (as the runner's history labels read)
GAP_LABELS = {"accuracy": "accuracy gap", "tpr": "true-positive-rate gap", "fpr": "false-positive-rate gap",
              "fnr": "false-negative-rate gap", "selection_rate": "selection-rate gap", "precision": "precision gap"}


def flagged_figures(run: RunDocument) -> dict[str, float]:
    """The observed value of every fairness gap with a failing or warning check (not a change since the previous
    audit), labelled as the history store labels its figures: "false-positive-rate gap (sex & age_band)"."""
    out: dict[str, float] = {}
    for c in run.checks:
        parts = c.metric.split(".")
        if (c.status in ("fail", "warn") and c.compared_with is None and len(parts) == 3 and parts[0] == "fairness"
                and parts[2] == "difference" and c.value is not None):
            label = GAP_LABELS.get(parts[1], f"{parts[1]} gap")
            out[f"{label} ({c.attribute})" if c.attribute else label] = float(c.value)
    return out


def signoff(section: Section, run: RunDocument, *, numbers: dict[str, int], **_) -> None:
    so = run.sign_off
    section.blocks.append(Paragraph(
        "By signing, each person confirms they have read this report and that it reflects the audit of the "
        f"model and data identified by the hashes in section {numbers['model']}, {numbers['data']} and "
        f"{numbers['reproducibility']}."))
    if so.independence:      # it speaks of "the reviewer signing below": it stands above the signature boxes
        section.blocks.append(Paragraph("Independence: " + so.independence))
    section.blocks.append(Signatures([(r.role, r.name or "") for r in so.roles]))


def reproducibility(section: Section, run: RunDocument, **_) -> None:
    pv = run.provenance
    h = pv.hashes
    pairs = [("Model weights", fmt.short_hash(h.model)), ("Configuration", fmt.short_hash(h.config)),
             ("Policy file", fmt.short_hash(h.policy))]
    pairs += [(f"Data: {k}", fmt.short_hash(v)) for k, v in h.data.items()]
    section.blocks.append(kv(pairs, caption="SHA-256 hashes"))
    section.blocks.append(kv([(k, v) for k, v in pv.versions.items()] + [("Seed", str(pv.seed))],
                             caption="Software versions and seed"))
    section.blocks.append(Paragraph("Command that re-runs this audit (same configuration, data and seed give the "
                                    "same findings):"))
    section.blocks.append(Code(pv.command))
    if pv.config_text:
        section.blocks.append(Paragraph("Configuration file as used:"))
        section.blocks.append(Code(pv.config_text))
    rt = run.runtime
    if rt is not None and rt.steps:
        rows = [[Cell(s.name), Cell(fmt.seconds(s.seconds), "num")] for s in rt.steps]
        rows.append([Cell("total", "label"), Cell(fmt.seconds(rt.seconds), "num")])
        section.blocks.append(Table(["Step", "Time"], rows, caption="Run time", css="narrow"))


def annex(section: Section, run: RunDocument, *, annex: Annex, **_) -> None:
    section.blocks.append(Paragraph(
        f"The complete findings are attached to this PDF as the file “{annex.name}” (a PDF/A-3 embedded file). "
        f"A PDF reader shows it in its attachments pane; on the command line, “pdfdetach -saveall report.pdf” "
        f"extracts it. The HTML version of the report sits next to the same file."))
    pairs = [("File name", annex.name)]
    if annex.sha256:
        pairs.append(("SHA-256", fmt.short_hash(annex.sha256)))
    if annex.bytes is not None:
        pairs.append(("Size", f"{fmt.count(annex.bytes)} bytes"))
    if annex.keys:
        pairs.append(("Top-level keys", ", ".join(str(k) for k in annex.keys)))
    section.blocks.append(kv(pairs))
    section.blocks.append(Paragraph(
        "The file holds the overall status, every policy check, the per-group metrics and disparities with their "
        "intervals, the ranked drivers with their predicted effects, the membership-inference results and the "
        "flagged tokens, the data-quality findings, the influence settings with their trust figures, and the "
        "provenance hashes. Token-to-record mapping is not part of it: it is delivered separately to the data "
        "owner."))
