"""The drivers part of the fairness section (issue 18, point 7): the gaps the policy flagged, each before and after
removing its drivers; the plugin's own largest gaps only as context when no rule flags one."""

from __future__ import annotations

import copy

from auditkit.report import build_document
from auditkit.report.blocks import Figure, Heading, Paragraph, Table


def _fairness_section(run: dict):
    doc = build_document(run)
    return next(s for s in doc.sections if any(isinstance(b, Heading) and b.text.startswith("Training records")
                                               for b in s.blocks))


def _flagged(sample_run: dict) -> dict:
    """The sample run with one flagged FPR gap and one whose surrogate points the other way."""
    run = copy.deepcopy(sample_run)
    driver = {"token": "R-ABCDEFGH", "effect": -0.0042, "label": "no", "groups": {"sex": "Male"}}
    common = {"rule": "eu/fpr-gap", "check_status": "fail", "metric": "fairness.fpr.difference", "attribute": "sex",
              "disadvantaged": "Male", "advantaged": "Female", "surrogate": "false_positive"}
    run["fairness"]["flagged_gaps"] = [
        {**common, "gap": 0.44, "gap_ci": [0.3, 0.57], "surrogate_gap": 0.30, "drivers": [driver],
         "predicted_gap_after": {"5": 0.28, "10": 0.25}, "actual_gap_after": {"10": 0.26},
         "actual_metric_gap_after": {"10": 0.40}},
        {**common, "rule": "eu/tpr-gap", "check_status": "warn", "metric": "fairness.tpr.difference",
         "surrogate": "equal_opportunity", "gap": 0.15, "surrogate_gap": -0.1,
         "note": "On predicted probabilities Male is not worse off than Female (gap −10.0 pp): records that drive "
                 "that gap would not explain this one, so none are named."}]
    return run


def test_each_flagged_gap_reads_before_and_after_removing_its_drivers(sample_run):
    doc = build_document(_flagged(sample_run))
    section = next(s for s in doc.sections if s.key == "fairness")
    appendix = next(s for s in doc.sections if s.key == "appendix-drivers")      # the per-gap tables: the bulk
    [table] = [b for b in section.blocks if isinstance(b, Table) and b.caption.startswith("Gaps flagged")]
    fpr, tpr = table.rows
    assert [c.text for c in fpr[:3]] == ["fpr-gap (FAIL)", "False-positive-rate gap", "Male"]
    assert fpr[2].sub == "vs Female" and fpr[3].text == "44\u202fpp (95\u202f% CI 30–57\u202fpp)"
    assert fpr[4].text == ("On predicted probabilities: gap now 30\u202fpp → after removing the top 10: 25\u202fpp "
                           "(predicted), 26\u202fpp (actual, retrained). On decisions: gap now 44\u202fpp → "
                           "40\u202fpp (actual, retrained).")
    assert tpr[4].text.startswith("On predicted probabilities Male is not worse off than Female")
    assert not [b for b in section.blocks if isinstance(b, Table) and b.caption.startswith("Top drivers")]
    [drivers] = [b for b in appendix.blocks if isinstance(b, Table) and b.caption.startswith("Top drivers")]
    assert drivers.caption == "Top drivers of the false-positive-rate gap by sex: Male vs Female"
    assert [c.text for c in drivers.rows[0]] == ["R-ABCDEFGH", "no", "Male", "−0.42\u202fpp"]
    # the plugin's own gaps (and their figures) are not shown beside the flagged ones
    assert not any(isinstance(b, Figure) and "drivers_" in b.src for b in section.blocks)
    assert not any(isinstance(b, Heading) and b.text == "Training records that drive the largest gaps"
                   for b in section.blocks)


def test_without_a_flagged_gap_the_section_says_so_and_shows_context(sample_run):
    run = copy.deepcopy(sample_run)
    for check in run["checks"]:
        check["status"] = "pass"
    section = _fairness_section(run)
    i = next(i for i, b in enumerate(section.blocks) if isinstance(b, Heading)
             and b.text == "Training records that drive the largest gaps")
    assert isinstance(section.blocks[i + 1], Paragraph)
    assert section.blocks[i + 1].text.startswith("No fairness rule of the policy warns or fails, so no flagged gap "
                                                 "needs explaining. For context,")
    # an older run whose checks flag gaps but which holds no flagged_gaps says that instead
    older = _fairness_section(sample_run)
    assert any(isinstance(b, Paragraph) and b.text.startswith("This run document holds no drivers of the gaps the "
                                                               "policy flagged") for b in older.blocks)
