"""The limitations section composed from the run's facts (issue 17), an older run's written-out sentences,
third-party plugin sections, and the typed entry (a dict run is validated into a RunDocument)."""

from __future__ import annotations

import copy

import pytest
from test_report_document import section

from auditkit.errors import InputError
from auditkit.report import build_document, render_run
from auditkit.report.blocks import Bullets, Table
from auditkit.report.html import render_html_string
from auditkit.report.limitations import FIRST_ORDER, NO_POLICY, NON_CONVEX, PROXIES, limitations
from auditkit.report.plugins import MAX_ROWS
from auditkit.rundoc import load_run

OLD_FIRST_ORDER = "Influence estimates are first-order approximations around the trained parameters."


def with_facts(sample_run: dict) -> dict:
    """The sample run as a run written since issue 17: facts instead of sentences, one plugin note left."""
    run = copy.deepcopy(sample_run)
    run["model"]["hidden_layers"] = True
    run["model"]["training_fit"] = {"grad_norm": 0.0123, "relative": 0.25, "threshold": 0.05, "stationary": False,
                                    "allowed": True}
    run["data"]["sensitive"][0]["unknown"] = {"train": 2, "test": 1}
    run["influence"].pop("damping_note", None)
    run["influence"]["damping"] = 3.1e-4
    run["influence"]["fitting"] = {"damping_source": "auto", "steps": ["refit with damping 3.1e-4"],
                                   "dtype_requested": "float32", "dtype_used": "float64", "float32_overflows": 7}
    run["influence"]["refits"] = {"count": 4, "not_converged": 1, "tolerance": 1e-5, "largest_relative": 0.0021,
                                  "largest_grad_norm": 0.0013, "by_purpose": {
                                      "reference model": {"count": 3, "not_converged": 1},
                                      "privacy trust check": {"count": 1, "not_converged": 0}}}
    run["numerics"] = {"nonfinite": {"fairness": ["groups[0].groups[1].metrics.tpr", "groups[1].groups[0].metrics.tpr",
                                                  "disparities.sex[1].ratio"], "privacy": []},
                       "saturation": {"n": 200, "certain_right": 3, "certain_wrong": 1, "max_abs_logit": 41.5,
                                      "dtype": "float64"}}
    run["policy"], run["checks"], run["status"] = None, [], "pass"
    run["limitations"] = ["A plugin's own note."]
    return run


def test_limitations_are_composed_from_the_facts_in_order(sample_run):
    items = limitations(load_run(with_facts(sample_run)))
    facts = [
        NO_POLICY, NON_CONVEX, FIRST_ORDER,
        "3 record(s) have no value for 'sex': they form the group 'unknown' and are left out of disparities.",
        "The audited weights are not a minimum of the stated objective on the training records as featurized "
        "(gradient norm 0.0123, 0.25 of its size with shuffled labels, above the 0.05 the audit accepts; "
        "model.allow_non_stationary was set): influence estimates assume a minimum and may be far from what "
        "retraining would do.",
        "1 of the 4 retrainings did not converge (reference model: 1 of 3; the largest gradient norm left was "
        "0.0013, relative 0.0021 against a tolerance of 1e-05): results measured by retraining carry that "
        "optimisation error.",
        PROXIES,
    ]
    assert items[:len(facts)] == facts
    numerical = items[len(facts)]
    assert numerical.startswith("Some figures could not be computed") and numerical.endswith(
        "Values per part: fairness: 3 (tpr ×2, ratio).")
    assert items[len(facts) + 1].startswith("The model predicts 4 of its 200 training records (2.0 %) with "
                                            "certainty: the probability of the record's own label is exactly 1 (3) "
                                            "or 0 (1) in float64; the largest logit is 41.5 in absolute value.")
    assert items[len(facts) + 2] == (
        "The audit was configured for float32 (model.dtype), but 7 influence values overflowed float32 (they were "
        "not finite: features or gradients of a magnitude whose squares exceed 3.4e38). The whole audit was "
        "recomputed in float64; every figure in this report comes from that float64 run.")
    assert items[len(facts) + 3] == "A plugin's own note."
    assert items[len(facts) + 4] == (
        "The Hessian of the training objective at the trained parameters is singular or not positive definite: the "
        "model is not at a strict minimum. A damping of 0.00031 (about 1e-3 of the largest eigenvalue) was added "
        "to H, which shrinks influence estimates along flat directions.")
    assert "Groups with fewer than 30 test records were not reported: Female & 55+." in items
    assert len(items) == len(set(items)) and OLD_FIRST_ORDER not in items
    # the section shows exactly these, and the methodology shows the damping note composed from the facts
    doc = build_document(with_facts(sample_run))
    assert next(b for b in section(doc, "limitations").blocks if isinstance(b, Bullets)).items == items
    assert any(getattr(b, "text", "") == items[len(facts) + 4] for b in section(doc, "methodology").blocks)


def test_a_fact_that_is_not_there_adds_no_sentence(sample_run):
    run = with_facts(sample_run)
    run["model"]["hidden_layers"] = False
    run["influence"]["fitting"].update(damping_source="configured", float32_overflows=0)
    run["influence"]["refits"]["not_converged"] = 0
    run["model"]["training_fit"]["stationary"] = True
    run["numerics"] = {"nonfinite": {"fairness": []}, "saturation": None}
    run["policy"] = sample_run["policy"]
    run["fairness"] = None
    items = limitations(load_run(run))
    assert items[:2] == [FIRST_ORDER, "3 record(s) have no value for 'sex': they form the group 'unknown' and are "
                                      "left out of disparities."]
    text = "\n".join(items)
    for absent in (NO_POLICY, NON_CONVEX, PROXIES, "not a minimum", "did not converge", "could not be computed",
                   "with certainty", "overflowed", "damping of"):
        assert absent not in text, absent
    assert "Fairness was not audited in this run." in items


def test_an_older_run_shows_its_written_sentences_once(sample_run):
    """A run.json from before the facts: its sentences as written, then what the report derives; a sentence
    the report would also derive (the damping note) is not repeated."""
    run = copy.deepcopy(sample_run)
    note = "The Hessian is singular: a damping of 0.001 was added."
    run["influence"]["damping_note"] = note
    run["limitations"] = [*sample_run["limitations"], note, sample_run["limitations"][0]]
    items = limitations(load_run(run))
    assert items[:3] == [*sample_run["limitations"], note]
    assert items.count(note) == 1 and items.count(OLD_FIRST_ORDER) == 1
    assert FIRST_ORDER not in items and PROXIES not in items     # nothing composed from facts it does not carry
    assert "Groups with fewer than 30 test records were not reported: Female & 55+." in items


def test_a_third_party_plugin_gets_a_section_of_its_own_escaped(sample_run):
    run = copy.deepcopy(sample_run)
    run["plugins"] = {"<b>acme</b>": {
        "score": 0.123456, "passed": True, "verdict": "<script>alert(1)</script>", "missing": None,
        "labels": ["a", "<i>b</i>"],
        "records": [{"token": f"R-{i:08d}", "value": i / 4} for i in range(MAX_ROWS + 70)],
        "nested": {"a": {"b": 1}}}}
    doc = build_document(run)
    assert [s.title for s in doc.sections[11:14]] == ["Data quality and explanations", "<b>acme</b>",
                                                      "Policy evaluation"]
    assert [s.number for s in doc.sections] == list(range(1, 26)) and doc.sections[12].key == "plugin-1"
    section = doc.sections[12]
    table = next(b for b in section.blocks if isinstance(b, Table) and b.caption == "Findings")
    assert [[c.text for c in row] for row in table.rows] == [
        ["score", "0.1235"], ["passed", "yes"], ["verdict", "<script>alert(1)</script>"], ["missing", "—"],
        ["labels", "a, <i>b</i>"]]
    records = next(b for b in section.blocks if isinstance(b, Table) and b.caption == "records")
    assert records.columns == ["token", "value"] and len(records.rows) == MAX_ROWS
    assert records.note == f"The first {MAX_ROWS} of {MAX_ROWS + 70} records are shown."
    assert [c.text for c in records.rows[3]] == ["R-00000003", "0.75"]
    assert "Nested values not shown in the report: nested." in [getattr(b, "text", "") for b in section.blocks]
    signoff = next(s for s in doc.sections if s.key == "signoff")
    assert "identified by the hashes in section 4, 5 and 18." in signoff.blocks[0].text
    html = render_html_string(doc)
    for raw in ("<script>alert(1)</script>", "<b>acme</b>", "<i>b</i>"):
        assert raw not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "13. &lt;b&gt;acme&lt;/b&gt;" in html


def test_without_plugins_the_sign_off_names_sections_4_5_and_17(sample_run):
    doc = build_document(sample_run)
    assert "identified by the hashes in section 4, 5 and 17." in section(doc, "signoff").blocks[0].text
    assert build_document(load_run(sample_run)) == doc


def test_an_invalid_run_is_refused_before_anything_is_written(sample_run, tmp_path):
    run = copy.deepcopy(sample_run)
    del run["model"]
    run["status"] = "done"
    with pytest.raises(InputError) as err:
        render_run(run, tmp_path / "out")
    assert str(err.value) == (
        "the run document does not match the run schema auditkit.run/1 (invalid status (Input should be 'pass', "
        "'pass_with_warnings', 'fail' or 'incomplete'); missing model): it was written by another auditkit "
        "version or edited; rerun the audit (see `auditkit schema --run`)")
    assert not (tmp_path / "out").exists()
