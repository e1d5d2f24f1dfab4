"""The document model: sections in SECTION_TITLES' order, plain words, small-cell suppression, formatting."""

from __future__ import annotations

import copy
import re

import pytest

from auditkit.report import build_document, findings_subset, fmt
from auditkit.report.document import SECTION_TITLES, Table
from auditkit.report.sections import bound_text, key_figures
from auditkit.rundoc import load_run
from auditkit.suppression import suppress

REPORT_MD_TITLES = [
    "Cover and document control", "Executive summary", "Scope and intended purpose", "Model identity",
    "Data provenance", "Datasheet", "Subgroups", "Methodology", "Fairness results",
    "Performance and calibration", "Privacy results",
    "Data quality and explanations", "Policy evaluation", "Limitations", "History", "Sign-off", "Reproducibility",
    "Machine-readable annex",
]
#: the appendices after the body (issue 18: bulk moved out of the body), lettered A, B, ...
APPENDIX_TITLES = ["Per-group results in full", "Drivers of each gap in detail", "Every policy rule and check",
                   "Influence diagnostics", "Explanations of selected test cases", "Configuration and run time"]
REPORT_HEADINGS = ([f"{i}. {t}" for i, t in enumerate(REPORT_MD_TITLES, 1)]
                   + [f"Appendix {chr(65 + i)}. {t}" for i, t in enumerate(APPENDIX_TITLES)])


def section(doc, key: str):
    """The section of ``doc`` with ``key`` (body or appendix)."""
    return next(s for s in doc.sections if s.key == key)


def texts(section) -> str:
    """All strings of a section's blocks, flattened."""
    out = []
    for b in section.blocks:
        if isinstance(b, Table):
            out += [b.caption, b.note] + list(b.columns)
            out += [c.text + " " + c.sub for row in b.rows for c in row]
        else:
            out += [str(v) for v in vars(b).values()]
    return "\n".join(out)


def test_sections_in_order_then_the_appendices(sample_run):
    doc = build_document(sample_run)
    assert [s.heading for s in doc.sections] == REPORT_HEADINGS
    assert [s.number for s in doc.sections] == list(range(1, len(REPORT_HEADINGS) + 1))
    assert [t for _, t in SECTION_TITLES] == REPORT_MD_TITLES
    assert all(s.blocks for s in doc.sections), [s.title for s in doc.sections if not s.blocks]


def test_status_banner_and_check_counts(sample_run):
    doc = build_document(sample_run)
    assert (doc.status, doc.status_label) == ("fail", "FAIL")
    assert dict(doc.check_counts) == {"pass": 0, "warn": 1, "fail": 1, "insufficient data": 0}
    run = dict(sample_run, status="pass_with_warnings")
    assert build_document(run).status_label == "PASS WITH WARNINGS"


def test_small_cells_are_suppressed_and_their_counts_not_printed(sample_run):
    doc = build_document(sample_run)
    fairness = section(doc, "fairness")
    table = next(b for b in section(doc, "appendix-groups").blocks
                 if isinstance(b, Table) and b.caption == "Per-group results, sex & age_band")
    row = next(r for r in table.rows if r[0].text == "Female & 55+")
    assert [c.text for c in row] == ["Female & 55+", "—", "suppressed (n < 30)"]
    assert row[2].colspan == 4
    sub = texts(section(doc, "subgroups"))
    assert "suppressed (n < 30)" in sub
    # the excluded group of the intersection disparity is named, its record count (21) is not
    disp = next(b for b in fairness.blocks if isinstance(b, Table) and b.caption.endswith("sex & age_band groups"))
    assert "Female & 55+" in disp.note and "21" not in disp.note
    # training cells below the minimum (drivers of the intersection gaps) are suppressed as well
    all_fair = "\n".join(texts(section(doc, k)) for k in ("fairness", "appendix-groups", "appendix-drivers"))
    assert all_fair.count("suppressed (n < 30)") >= 3


def test_plain_words_and_sign_convention(sample_run):
    doc = build_document(sample_run)
    method = texts(section(doc, "methodology"))
    assert "positive value means the record helps" in method
    assert "removed and the model retrained" in method
    assert "Higher is worse" in method and "Lower is worse" in method
    fairness = texts(section(doc, "fairness"))
    # the sample run is a triage decision written before decision_kind ("other"): no four-fifths callout
    assert "Female is selected at" not in fairness and "adverse impact" not in fairness
    lending = copy.deepcopy(sample_run)
    lending["scope"]["decision_kind"] = "lending"
    fairness = texts(section(build_document(lending), "fairness"))
    assert "Female is selected at 0.34 times the rate of Male" in fairness
    assert "indicates adverse impact; this one is below it" in fairness
    privacy = texts(section(doc, "privacy"))
    assert "AUC 0.5 means no better than guessing (higher is worse)" in privacy
    assert "not measurable" in privacy  # TPR at 0.1 % FPR with 230 non-members


def test_stability_verdicts_and_limitations(sample_run):
    doc = build_document(sample_run)
    method = section(doc, "appendix-influence")      # the stability table: influence diagnostics (appendix)
    table = next(b for b in method.blocks if isinstance(b, Table) and b.columns[-1] == "Verdict")
    assert [r[-1].text for r in table.rows] == ["robust", "sensitive"]
    assert [r[-1].css for r in table.rows] == ["pass", "warn"]
    assert table.rows[1][3].text == "6 of 10"  # damping ×10 kept 6 of the top 10
    lim = texts(section(doc, "limitations"))
    assert "“top privacy-risk records” is sensitive" in lim
    assert "Groups with fewer than 30 test records were not reported: Female & 55+." in lim
    assert "needs at least 1000 non-members and the run had 230" in lim


def test_only_tokens_identify_records(sample_run):
    """Every record-like string in the document is a token R-XXXXXXXX."""
    doc = build_document(sample_run)
    allt = "\n".join(texts(s) for s in doc.sections)
    tokens = set(re.findall(r"\bR-[A-Z0-9]{8}\b", allt))
    assert len(tokens) > 50
    assert "R-UITVYXVX" in tokens


def test_missing_plugins_are_said_not_hidden(sample_run):
    run = copy.deepcopy(sample_run)
    run["privacy"] = None
    run["fairness"] = None
    doc = build_document(run)
    assert "The privacy audit was not part of this run." in texts(section(doc, "privacy"))
    assert "The fairness audit was not part of this run." in texts(section(doc, "fairness"))
    assert "Privacy was not audited in this run." in texts(section(doc, "limitations"))


def test_history_adds_this_report_with_the_same_labels(sample_run):
    doc = build_document(sample_run)
    table = next(b for b in section(doc, "history").blocks if isinstance(b, Table))
    assert table.columns == ["Key figure (UTC date of the audit)", "2026-10-01 08:00", "this report"]
    assert [c.text for c in table.rows[0]] == ["Report (AK-date-…)", "11111111", "3F9A2C1B"]
    row = next(r for r in table.rows if r[0].text == "selection-rate impact ratio (sex)")
    assert [c.text for c in row[1:]] == ["0.41", "0.34"]
    figs = key_figures(load_run(sample_run))
    assert figs["membership AUC (loss)"] == pytest.approx(0.4799, abs=1e-4)


@pytest.mark.parametrize(("bound", "text"), [
    ({"kind": "absolute", "min": 0.8}, "≥ 0.8"),
    ({"kind": "absolute", "min": 0.1, "max": 0.9}, "≥ 0.1 and ≤ 0.9"),
    ({"kind": "ratio_band", "low": 0.8, "high": 1.25}, "between 0.8 and 1.25"),
    ({"kind": "relative_to_reference", "max_difference": 0.1}, "within 0.1 of the reference group"),
    ({"kind": "relative_to_previous", "max_increase": 0.05}, "rises by ≤ 0.05 since the previous audit"),
])
def test_bound_text(bound, text):
    assert bound_text(bound) == text


def test_number_formats():
    assert fmt.pct(0.3809) == "38\u202f%"
    assert fmt.pct(0.004) == "0.4\u202f%"
    assert fmt.pct(-0.22) == "−22\u202f%"
    assert fmt.pp(0.4137) == "41\u202fpp" and fmt.pp(0.0316) == "3.2\u202fpp"
    assert fmt.interval(0.17, 0.59, as_pct=True, confidence=0.95) == "(95\u202f% CI 17–59\u202f%)"
    assert fmt.interval(-0.28, 0.15, as_pp=True, confidence=0.9) == "(90\u202f% CI −28 to 15\u202fpp)"
    assert fmt.interval(0.5, 0.75, confidence=0.995) == "(99.5\u202f% CI 0.50–0.75)"
    assert fmt.interval(0.5, 0.75, confidence=None) == "(CI 0.50–0.75)"
    assert fmt.with_interval("tpr", 0.4, [0.3, 0.5], confidence=0.8) == "40\u202f% (80\u202f% CI 30–50\u202f%)"
    assert fmt.signed(-0.0048) == "−0.005" and fmt.signed(0.00004) == "+4.0e-05"
    assert fmt.num(None) == fmt.num(float("nan")) == "—"
    assert fmt.short_hash("ab" * 32) == " ".join(["abababababababab"] * 4)


def test_findings_subset_keeps_the_findings_and_drops_the_rest(sample_run):
    f = findings_subset(sample_run)
    assert f["schema"] == sample_run["schema"] and "config_text" not in f["provenance"]    # as findings.json
    assert {"status", "checks", "fairness", "privacy", "data_quality", "influence", "provenance"} <= set(f)
    assert "sign_off" not in f and "history" not in f


def test_stability_shows_gap_retraining_and_failed_settings(sample_run):
    run = copy.deepcopy(sample_run)
    first, second = run["influence"]["stability"]["findings"][:2]
    first["retraining"] = {"predicted_gap": 0.3136, "actual_gap": 0.3083, "k": 10}
    second["agreement"]["damping ×10"] = None
    second["failures"] = {"damping ×10": "the Hessian is not positive definite"}
    method = section(build_document(run), "appendix-influence")
    table = next(b for b in method.blocks if isinstance(b, Table) and b.columns[-1] == "Verdict")
    assert table.rows[0][-2].text == "gap after removing top 10: predicted 0.31, actual 0.31"
    assert table.rows[1][3].text == "failed"
    assert "Failed settings: damping ×10: the Hessian is not positive definite" in table.note


def test_the_stability_paragraph_names_the_settings_compared_and_why_no_second_solver(sample_run):
    """The paragraph lists the ridge factors and the second solver the run compared, not a fixed text; an exact
    run without a second solver says why (exact is the reference), one configured without it says so."""
    def paragraph(run):
        blocks = section(build_document(run), "appendix-influence").blocks
        return next(b.text for b in blocks if getattr(b, "text", "").startswith("Each key finding"))

    text = paragraph(sample_run)
    assert ("multiplied by 0.1 and by 10, and with a second solver: cg (conjugate gradients to a stated "
            "residual).") in text
    assert "No second solver" not in text
    run = copy.deepcopy(sample_run)
    stability = run["influence"]["stability"]
    stability["settings"] = [s for s in stability["settings"] if s["label"] != "damping ×0.1" and s["method"] != "cg"]
    for f in stability["findings"]:
        f["agreement"] = {k: v for k, v in f["agreement"].items() if k == "damping ×10"}
        f["failures"] = {}
    text = paragraph(run)
    assert "multiplied by 10. No second solver was compared: the Hessian was formed and factorised exactly" in text
    run["influence"]["method"] = run["influence"]["method_used"] = "cg"
    assert "No second solver was compared (the configuration's second_solver is none)." in paragraph(run)


def test_per_parameter_l2_is_printed_by_name(sample_run):
    run = copy.deepcopy(sample_run)
    run["model"]["l2"] = run["influence"]["l2"] = {"weight": 1 / 550}
    for setting in run["influence"]["stability"]["settings"]:
        setting["l2"] = {"weight": 0.1 / 550}
    doc = build_document(run)
    assert "l2 = weight 0.00182" in texts(section(doc, "model"))
    assert "l2 weight 0.000182" in texts(section(doc, "appendix-influence"))


def test_no_share_of_the_gap_is_printed_only_the_gap_after_removal(sample_run):
    """Issue 18 point 7: "share of the gap closed 171 %" said nothing; each training cell shows the gap predicted
    after removing all its records instead (gap now + the cell's summed effect), in the gap's own units."""
    run = copy.deepcopy(sample_run)
    att = run["fairness"]["attributions"][0]
    doc = build_document(run)
    tables = [b for key in ("fairness", "appendix-drivers") for b in section(doc, key).blocks
              if isinstance(b, Table) and "Training group" in b.columns]
    assert tables and not any("Share" in c for t in tables for c in t.columns)
    first = tables[0]
    assert first.columns[-1] == "Gap after removing all (predicted)"
    shown = [c for c in att["cells"] if c["count"] >= 30]
    assert shown, "the sample run has cells above the minimum"
    row = next(r for r in first.rows
               if len(r) == 5 and r[0].text == shown[0]["group"] and r[1].text == shown[0]["label"])
    assert att["surrogate"] == "selection_rate"            # a rate: the gap in percentage points
    assert row[-1].text == fmt.pp(att["gap"] + shown[0]["effect"]) == "25\u202fpp"      # 36.0 − 11.2 pp
    assert "%" not in "".join(cell.text for t in tables for r in t.rows for cell in r)


def test_the_training_fit_featurizer_and_refits_are_shown_when_recorded(sample_run):
    """Issue 16: the model on its training records as the audit featurized them, which featurizer made the
    inputs, and the retrainings with their convergence; absent from older runs, then not shown."""
    assert "as featurized for this audit" not in texts(section(build_document(sample_run), "model"))
    run = copy.deepcopy(sample_run)
    run["model"]["training_fit"] = {"grad_norm": 2.5e-9, "reference_norm": 0.61, "relative": 4.1e-9, "loss": 0.35876,
                                    "objective": 0.37574, "accuracy": 0.83794, "n": 506, "threshold": 0.05,
                                    "stationary": False, "allowed": True}
    run["data"]["featurizer"] = "tabular (data.featurizer: tabular): numbers standardised, categories one-hot"
    run["influence"]["refits"] = {"count": 5, "not_converged": 2, "tolerance": 1e-5, "largest_relative": 0.0021,
                                  "largest_grad_norm": 0.0013, "by_purpose": {"reference model": {
                                      "count": 4, "not_converged": 2}, "privacy trust check": {
                                      "count": 1, "not_converged": 0}}}
    doc = build_document(run)
    model = texts(section(doc, "model"))
    for text in ("The model on its training records, as featurized for this audit", "0.359", "83.8\u202f%", "2.5e-09",
                 "4.1e-09 (accepted up to 0.05)", "audit ran only because model.allow_non_stationary was set"):
        assert text in model, text
    assert ("Features made from the columns by: tabular (data.featurizer: tabular): numbers standardised, "
            "categories one-hot.") in texts(section(doc, "data"))
    assert ("Retrainings made by this audit: 5 (reference model: 4, privacy trust check: 1); 2 did not reach a "
            "relative gradient norm of 1.0e-05 (largest left: 2.1e-03).") in texts(section(doc, "methodology"))


def test_intervals_are_labelled_with_the_confidence_the_run_used(sample_run):
    """Issue 17: the bootstrap intervals (disparities, impact ratio, the policy checks on them) carry the
    ``confidence`` of the fairness options (here 0.9), the Wilson intervals of single rates stay at 95 %."""
    run = copy.deepcopy(sample_run)
    run["scope"]["decision_kind"] = "selection"   # the four-fifths callout is shown for a selection decision
    for rows in run["fairness"]["disparities"].values():
        for r in rows:
            r["confidence"] = 0.9
    doc = build_document(run)
    fairness, policy = section(doc, "fairness"), section(doc, "policy")
    disp = next(b for b in fairness.blocks if isinstance(b, Table) and b.caption == "Disparities between sex groups")
    subs = [c.sub for row in disp.rows for c in row[2:4]]
    assert subs and all(s.startswith("(90\u202f% CI ") for s in subs), subs
    assert "the rate of Male (90\u202f% CI 0.18–0.52). A ratio below 0.80" in texts(fairness)
    rates = next(b for b in section(doc, "appendix-groups").blocks
                 if isinstance(b, Table) and b.caption == "Per-group results, sex")
    assert rates.rows[0][2].sub.startswith("(95\u202f% CI ")
    checks = next(b for b in section(doc, "appendix-checks").blocks
                  if isinstance(b, Table) and b.caption.startswith("Every check"))
    assert [row[2].sub for row in checks.rows] == ["(90\u202f% CI 3–21\u202fpp)", "(90\u202f% CI 0.18–0.52)"]
    compact = next(b for b in policy.blocks if isinstance(b, Table) and b.caption.startswith("Results, rules"))
    assert "(90\u202f% CI 0.18–0.52)" in " ".join(c.sub for row in compact.rows for c in row)
    assert "carry 90\u202f% intervals from a group-stratified bootstrap" in texts(section(doc, "methodology"))
    assert "95\u202f% CI" not in "".join(subs) and "95\u202f% CI" not in "".join(row[2].sub for row in checks.rows)


def test_a_suppressed_run_shows_each_suppressed_row_as_suppressed_and_no_figure_of_it(sample_run):
    """After :func:`auditkit.suppression.suppress` the sample run's small women & 55+, the women marginal and
    women & <55 (which would give it back), and the unknown sex count are "suppressed" in every table that lists
    them; "(n < 30)" is not claimed of the groups that are not small; the data-protection paragraph says
    pseudonymised and what the tokens are."""
    public, withheld = suppress(sample_run)
    doc = build_document(public)
    fairness, subgroups, data = section(doc, "appendix-groups"), section(doc, "subgroups"), section(doc, "data")
    for caption, group in (("Per-group results, sex", "Female"), ("Per-group results, sex & age_band", "Female & 55+"),
                           ("Per-group results, sex & age_band", "Female & <55")):
        table = next(b for b in fairness.blocks if isinstance(b, Table) and b.caption == caption)
        row = next(r for r in table.rows if r[0].text == group)
        assert [c.text for c in row] == [group, "—", "suppressed"], (caption, group)
    assert "suppressed (n < 30)" not in texts(fairness) + texts(subgroups)
    rows = [b for b in subgroups.blocks if isinstance(b, Table)][0].rows
    assert {r[2].text: (r[3].text, r[4].text) for r in rows}["Female & <55"] == ("—", "suppressed")
    unknown = next(b for b in data.blocks if isinstance(b, Table) and b.caption.startswith("Sensitive attributes"))
    assert [c.text for c in unknown.rows[0][2:]] == ["suppressed" if s["name"] == "test" else
                                                     str(sample_run["data"]["sensitive"][0]["unknown"][s["name"]])
                                                     for s in sample_run["data"]["splits"]]
    limits = texts(section(doc, "limitations"))
    assert ("Groups with fewer than 30 test records, and the groups from which such a group could be worked out by "
            "subtraction, were not reported: Female, Female & 55+, Female & <55.") in limits
    cover = texts(doc.sections[0])
    assert "It contains pseudonymised data, not anonymous data." in cover
    assert "keyed hashes (BLAKE2b) of each record's split and row" in cover and "GDPR Recital 26" in cover
    assert withheld["entries"]
