"""Issue 18, the document: the executive summary's sentences, the compact policy table, the datasheet's missing
values (against pandas), the appendices, and the PDF's structural markers (read with pypdf).

No open PDF/A validator installs offline on this machine (veraPDF is on neither PyPI, Debian nor npm), so the
PDF/A-3b output is checked by its structural markers instead: the PDF/A identification in the XMP, the output
intent, embedded fonts, one associated file with its relationship, the document information and the tags.
"""

from __future__ import annotations

import copy
import re

import pandas as pd
import pytest
from pypdf import PdfReader
from pypdf.generic import IndirectObject
from report_fixtures import pdf_streams
from test_report_document import section, texts

from auditkit.assemble import feature_rows
from auditkit.config import load_config
from auditkit.inputs import load_data
from auditkit.report import build_document
from auditkit.report.blocks import Bullets, Table
from auditkit.report.executive import check_sentence, next_actions, value_text
from auditkit.rundoc import load_run

NB = "\u202f"
FPR_RULE = {"id": "fpr-gap", "metric": "fairness.fpr.difference", "bound": {"kind": "absolute", "max": 0.1},
            "severity": "fail", "min_n": 30, "if_straddles": "warn", "when_insufficient": "warn",
            "requirement": "AI Act Art. 10(2)(f)"}
PRIVACY_RULE = {"id": "loss-auc", "metric": "privacy.loss.auc", "scope": {"attributes": []},
                "bound": {"kind": "absolute", "max": 0.6}, "severity": "fail", "if_straddles": "warn",
                "when_insufficient": "warn", "requirement": "GDPR Art. 32"}


def crafted(sample_run) -> dict:
    """The sample run with a failing false-positive-rate gap, a warning accuracy gap (its interval straddles
    the limit), a privacy check passing by its point estimate and an undecided check on a small group."""
    run = copy.deepcopy(sample_run)
    run["policy"]["rules"] = [run["policy"]["rules"][0], FPR_RULE, PRIVACY_RULE]
    run["checks"] = [
        {"rule": "fpr-gap", "metric": "fairness.fpr.difference", "attribute": "sex", "group": None, "value": 0.1491,
         "interval": [0.12, 0.25], "bound": "≤ 0.10", "severity": "fail", "status": "fail", "decided_by": "interval",
         "requirement": "AI Act Art. 10(2)(f)", "explanation": "Gap in false-positive rate.", "n": 57},
        {"rule": "accuracy-gap", "metric": "fairness.accuracy.difference", "attribute": "sex", "group": None,
         "value": 0.0859, "interval": [0.0046, 0.1499], "bound": "≤ 0.10", "severity": "fail", "status": "warn",
         "decided_by": "straddle rule", "requirement": "EU AI Act Art. 15(1)", "explanation": "Gap in accuracy.",
         "n": 57},
        {"rule": "loss-auc", "metric": "privacy.loss.auc", "attribute": None, "group": None, "value": 0.5004,
         "interval": None, "bound": "≤ 0.60", "severity": "fail", "status": "pass", "decided_by": "point",
         "requirement": "GDPR Art. 32", "explanation": "Membership AUC.", "n": 184},
        {"rule": "accuracy-gap", "metric": "fairness.accuracy.difference", "attribute": "sex & age_band",
         "group": None, "value": None, "interval": None, "bound": "≤ 0.10", "severity": "fail",
         "status": "insufficient_data", "decided_by": "min_n", "requirement": "EU AI Act Art. 15(1)",
         "explanation": "Gap in accuracy; not decided: 21 records.", "n": 21},
    ]
    run["status"] = "fail"
    return run


def test_each_failing_and_warning_check_is_one_plain_sentence(sample_run):
    run = load_run(crafted(sample_run))
    fail, warn = run.checks[0], run.checks[1]
    assert check_sentence(run, fail) == (
        f"False alarms by sex: people in Male whose true outcome is not “yes” were predicted “yes” 19{NB}% of the "
        f"time against 4{NB}% for Female; the gap, 15{NB}pp (95{NB}% CI 12–25{NB}pp), lies outside the policy's "
        f"limit (at most 10{NB}pp) with its whole interval (a failure).")
    assert check_sentence(run, warn) == (
        f"Accuracy by sex: predictions for Male were correct 84{NB}% of the time against 93{NB}% for Female; the "
        f"gap, 8.6{NB}pp (95{NB}% CI 0–15{NB}pp), straddles the policy's limit (at most 10{NB}pp) with its "
        f"interval, so the data cannot settle the question (a warning).")


def test_executive_summary_has_the_verdict_the_sentences_and_next_actions(sample_run):
    doc = build_document(crafted(sample_run))
    summary = section(doc, "summary")
    assert doc.sections[1] is summary and summary.title == "Executive summary"
    assert summary.blocks[0].text.startswith("Verdict: FAIL. ")
    assert ("Of 4 policy checks, 1 failed, 1 gave a warning, 1 could not be decided and 1 passed"
            in summary.blocks[0].text)
    items = next(b for b in summary.blocks if isinstance(b, Bullets)).items
    assert [i.split(":")[0] for i in items] == ["FAIL", "WARN"]       # the failure first
    assert ("1 checks could not be decided, because a group had too few records or the metric had no value: "
            "accuracy-gap (sex & age_band).") in texts(summary)
    actions = next_actions(load_run(crafted(sample_run)), {"fairness": 9})
    assert actions[0].startswith("Review the training records and training groups that drive the flagged gaps "
                                 "(sex; listed in section 9)")
    assert any(a.startswith("Check the decision threshold and the calibration") for a in actions)
    assert any(a.startswith("Collect more test records for the groups compared in the 1 checks") for a in actions)
    assert any(a.startswith("Collect more data for the cells that could not be decided") for a in actions)
    assert not any("memorisation" in a for a in actions)            # no privacy rule failed
    assert actions[-1] == "Re-run the audit after any change; sign off only when no rule fails."
    # the cover repeats the failing check
    assert doc.headlines == [check_sentence(load_run(crafted(sample_run)), load_run(crafted(sample_run)).checks[0])]


def test_a_passing_run_recommends_no_action(sample_run):
    run = crafted(sample_run)
    run["checks"] = [c for c in run["checks"] if c["status"] == "pass"]
    run["status"] = "pass"
    actions = next_actions(load_run(run), {"fairness": 9})
    assert actions == ["No action is required by the policy; re-audit after any change to the model or its data."]


def test_compact_policy_table_rules_by_scopes_citations_once(sample_run):
    doc = build_document(crafted(sample_run))
    policy = section(doc, "policy")
    table = next(b for b in policy.blocks if isinstance(b, Table) and b.caption == "Results, rules × scopes")
    assert table.columns == ["Rule", "Overall", "sex", "sex & age_band"]
    rows = {r[0].text: r for r in table.rows}
    assert list(rows) == ["accuracy-gap", "fpr-gap", "loss-auc"]
    assert [c.text for c in rows["accuracy-gap"][1:]] == ["—", "WARN", "INSUFFICIENT"]
    assert rows["accuracy-gap"][2].sub == f"8.6{NB}pp (95{NB}% CI 0–15{NB}pp)"
    assert rows["accuracy-gap"][3].sub == "n = 21"
    assert [c.text for c in rows["fpr-gap"][1:]] == ["—", "FAIL", "—"]
    # an overall-only rule is shown under "Overall", with "point estimate" where it has no interval
    assert [c.text for c in rows["loss-auc"][1:]] == ["PASS", "—", "—"]
    assert rows["loss-auc"][1].sub == "0.50 (point estimate)"
    assert rows["loss-auc"][0].sub.endswith("[3]")
    refs = next(b for b in policy.blocks if isinstance(b, Table) and b.css == "refs")
    assert [[c.text for c in r] for r in refs.rows] == [["[1]", "EU AI Act Art. 15(1)"],
                                                        ["[2]", "AI Act Art. 10(2)(f)"], ["[3]", "GDPR Art. 32"]]
    # every check, with its explanation, stays in the appendix
    every = next(b for b in section(doc, "appendix-checks").blocks
                 if isinstance(b, Table) and b.caption.startswith("Every check"))
    assert len(every.rows) == 4 and every.rows[2][-1].text == "Membership AUC."
    rules = next(b for b in section(doc, "appendix-checks").blocks if isinstance(b, Table) and b.caption == "Rules")
    assert rules.rows[2][1].sub == "overall only"


def test_numeric_columns_have_right_aligned_headers(sample_run):
    doc = build_document(sample_run)
    disp = next(b for b in section(doc, "fairness").blocks
                if isinstance(b, Table) and b.caption == "Disparities between sex groups")
    assert disp.numeric == [False, False, True, True, False]


def test_sign_off_sentence_stands_above_the_signature_boxes(sample_run):
    kinds = [b.kind for b in section(build_document(sample_run), "signoff").blocks]
    assert kinds == ["paragraph", "paragraph", "signatures"]


def test_history_shows_the_gap_of_every_failing_or_warning_check(sample_run):
    doc = build_document(crafted(sample_run))
    table = next(b for b in section(doc, "history").blocks if isinstance(b, Table))
    rows = {r[0].text: [c.text for c in r[1:]] for r in table.rows}
    assert rows["false-positive-rate gap (sex)"] == ["—", f"15{NB}pp"]
    assert rows["accuracy gap (sex)"] == ["—", f"8.6{NB}pp"]


def test_datasheet_missing_values_per_split_match_pandas():
    """The heart example: every feature's missing values in each split, against pandas on the source table
    (the rows of each split looked up by their ids); ca is missing in 611 of the 920 patients."""
    config = load_config("examples/heart_disease/audit.yaml")
    loaded = load_data(config)
    rows = {r["name"]: r for r in feature_rows(config, loaded)}
    table = pd.read_csv("examples/heart_disease/model/patients.csv")
    assert list(rows) == list(config.data.features)
    for name, split in loaded.splits.items():
        part = table.set_index("id").loc[[int(i) for i in split.ids]]
        assert {f: rows[f]["missing"][name] for f in rows} == {f: int(part[f].isna().sum()) for f in rows}, name
    assert sum(rows["ca"]["missing"].values()) == 611 == int(table["ca"].isna().sum())
    assert rows["sex"]["sensitive"] and rows["age"]["sensitive"] and not rows["chol"]["sensitive"]
    assert rows["dataset"]["proxy"].startswith("the hospital (site)")
    assert (rows["cp"]["kind"], rows["chol"]["kind"]) == ("categorical", "numeric")


def test_datasheet_section_shows_features_label_and_out_of_scope_uses(sample_run):
    run = copy.deepcopy(sample_run)
    run["data"]["label_definition"] = "yes when the angiography shows a narrowing of more than 50 %"
    run["data"]["features"] = [
        {"name": "sex", "kind": "categorical", "sensitive": True, "proxy": None,
         "missing": {"train": 0, "test": 0, "holdout": 0}},
        {"name": "ca", "kind": "numeric", "sensitive": False, "proxy": "the hospital",
         "missing": {"train": 380, "test": 150, "holdout": 81}}]
    run["scope"]["out_of_scope"] = ["Ruling out disease."]
    sheet = section(build_document(run), "datasheet")
    assert "Label “disease”: yes when the angiography shows a narrowing of more than 50 %." in sheet.blocks[0].text
    table = next(b for b in sheet.blocks if isinstance(b, Table))
    assert [[c.text for c in r] for r in table.rows] == [
        ["sex", "categorical", "sensitive", "", "0", "0", "0"],
        ["ca", "numeric", "", "the hospital", f"380 (55{NB}%)", f"150 (65{NB}%)", f"81 (35{NB}%)"]]
    assert table.numeric == [False, False, False, False, True, True, True]
    assert next(b for b in sheet.blocks if isinstance(b, Bullets)).items == ["Ruling out disease."]
    # an older run without the datasheet facts says so
    old = section(build_document(sample_run), "datasheet")
    assert "This run does not record the feature list" in texts(old)
    assert "None were stated (report.out_of_scope in the configuration)" in texts(old)


def test_bulk_is_moved_to_the_appendices(sample_run):
    doc = build_document(sample_run)
    body = "\n".join(texts(s) for s in doc.sections if not s.label)
    assert "Per-group results, sex" not in body and "Verdict" in texts(section(doc, "summary"))
    assert "Per-group results, sex" in texts(section(doc, "appendix-groups"))
    assert "Trust in the estimates, measured on this model" in texts(section(doc, "appendix-influence"))
    assert "Configuration file as used:" in texts(section(doc, "appendix-config"))
    assert "Configuration file as used:" not in texts(section(doc, "reproducibility"))
    assert "Gaps and the predicted effect of removing their drivers" in texts(section(doc, "fairness"))


# --- the PDF: tagged PDF/A-3b, metadata, one associated file -----------------------------------------------------


def _resolve(obj):
    return obj.get_object() if isinstance(obj, IndirectObject) else obj


def _fonts(reader: PdfReader):
    """Every font dictionary used by the pages (descendants of Type0 fonts included)."""
    seen = {}
    for page in reader.pages:
        fonts = _resolve(_resolve(page.get("/Resources", {})).get("/Font", {}))
        for ref in fonts.values():
            font = _resolve(ref)
            seen[id(font)] = font
            for d in _resolve(font.get("/DescendantFonts", [])):
                seen[id(_resolve(d))] = _resolve(d)
    return list(seen.values())


def test_pdf_is_tagged_pdf_a_3b_with_metadata_and_one_attachment(rendered):
    reader = PdfReader(rendered["pdf"])
    root = reader.trailer["/Root"]
    xmp = b"".join(s for s in pdf_streams(rendered["pdf"]) if b"pdfaid" in s)
    assert re.search(rb"pdfaid:part[^0-9]{0,3}3", xmp) and re.search(rb"pdfaid:conformance[^A-Z]{0,3}B", xmp)
    intents = root["/OutputIntents"]
    assert len(intents) == 1 and "/DestOutputProfile" in _resolve(intents[0])
    fonts = _fonts(reader)
    assert fonts
    for font in fonts:
        if font.get("/Subtype") in ("/Type0", "/Type3"):    # Type0: its descendant carries the file
            continue
        descriptor = _resolve(font["/FontDescriptor"])
        assert {"/FontFile", "/FontFile2", "/FontFile3"} & set(descriptor), font.get("/BaseFont")
    af = root["/AF"]
    assert len(af) == 1
    spec = _resolve(af[0])
    assert spec["/AFRelationship"] == "/Data" and spec["/F"] == "findings.json"
    names = _resolve(_resolve(root["/Names"])["/EmbeddedFiles"])["/Names"]
    assert names[0::2] == ["findings.json"] and _resolve(names[1]) == spec
    info = reader.metadata
    assert info["/Author"] == "Example Hospital Trust <b>&</b>"
    assert info["/CreationDate"].startswith("D:20261128225000")
    meta = reader.xmp_metadata
    assert meta.dc_creator == ["Example Hospital Trust <b>&</b>"]
    assert meta.xmp_create_date.isoformat().startswith("2026-11-28T22:50:00")
    assert root["/MarkInfo"]["/Marked"] is True or root["/MarkInfo"]["/Marked"] == True  # noqa: E712
    assert "/StructTreeRoot" in root


@pytest.mark.parametrize(("metric", "value", "text"), [
    ("fairness.fpr.difference", 0.1491, f"15{NB}pp"), ("fairness.selection_rate.ratio", 0.3035, "0.30"),
    ("fairness.tpr", 0.8333, f"83.3{NB}%"), ("privacy.loss.auc", 0.5004, "0.50"),
    ("privacy.loss.tpr_at_0.01", 0.014, f"1.4{NB}%"),            # the FPR's dot is part of the metric's name
    ("privacy.flagged_share", 0.004, f"0.4{NB}%"), ("privacy.exposure_gap.flag_rate", 0.005, f"0.5{NB}pp"),
])
def test_values_of_checks_are_in_one_unit_system(metric, value, text):
    assert value_text(metric, value) == text
