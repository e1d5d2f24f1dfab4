"""The typed run document: a run.json saved by the previous auditkit version validates and dumps back unchanged,
its JSON Schema (``auditkit schema --run``) is checked by an independent validator (jsonschema), ``auditkit
render`` re-renders the saved run and refuses a broken one in one line, and plugins' findings are typed."""

from __future__ import annotations

import copy
import json
import math

import jsonschema
import pytest
from run_documents import PREVIOUS, run_document

from auditkit import writer
from auditkit.audits.typed import Part
from auditkit.cli import main
from auditkit.errors import InputError
from auditkit.rundoc import FINDINGS_KEYS, SCHEMA, RunDocument, assemble, findings_of, load_run, run_json_schema
from auditkit.suppression import suppress


def test_a_run_saved_by_the_previous_version_validates_and_dumps_back_unchanged():
    saved = json.loads(PREVIOUS.read_text(encoding="utf-8"))
    run = load_run(PREVIOUS)
    assert isinstance(run, RunDocument) and run.schema_ == SCHEMA == saved["schema"]
    assert run.fairness.disparities["sex"][0].impact_ratio.basis == "reference"
    assert run.privacy.n_flagged == len(saved["privacy"]["flags"])
    assert run.influence.fitting is None and run.numerics is None and run.plugins == {}   # facts it did not record
    # the same JSON, key order and number types included: the model neither drops nor adds nor converts
    assert json.dumps(run.to_json_dict(), ensure_ascii=False) == json.dumps(saved, ensure_ascii=False)
    findings = findings_of(run)
    assert list(findings) == [k for k in FINDINGS_KEYS if k != "plugins"]     # no third-party plugin ran
    assert "config_text" not in findings["provenance"] and findings["model"] == saved["model"]


def test_the_json_schema_accepts_the_saved_run_and_rejects_a_broken_one():
    schema = run_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    saved = json.loads(PREVIOUS.read_text(encoding="utf-8"))
    jsonschema.validate(saved, schema)
    broken = copy.deepcopy(saved)
    del broken["influence"]["method"]
    with pytest.raises(jsonschema.ValidationError, match="'method' is a required property"):
        jsonschema.validate(broken, schema)
    broken = copy.deepcopy(saved)
    broken["data"]["splits"][0]["colour"] = "red"
    with pytest.raises(jsonschema.ValidationError, match="Additional properties are not allowed"):
        jsonschema.validate(broken, schema)


def test_schema_run_prints_the_schema_of_run_json(capsys):
    assert main(["schema", "--run"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(run_json_schema()))
    assert printed["properties"]["schema"]["const"] == SCHEMA
    assert {"report_id", "model", "data", "influence", "provenance"} <= set(printed["required"])
    assert main(["schema"]) == 0                                         # audit.yaml's, as before
    assert "properties" in json.loads(capsys.readouterr().out) and "report_id" not in printed["properties"]["model"]


def test_load_run_names_what_is_missing_unknown_and_invalid_in_one_line(tmp_path):
    doc = run_document()
    del doc["model"]["architecture"]
    del doc["influence"]["stability"]["findings"][0]["verdict"]
    doc["data"]["colour"] = "red"
    doc["status"] = "done"
    path = tmp_path / "run.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError) as err:
        load_run(path)
    assert str(err.value) == (
        f"{str(path)!r} does not match the run schema auditkit.run/1 (invalid status (Input should be 'pass', "
        "'pass_with_warnings', 'fail' or 'incomplete'); missing model.architecture; unknown key data.colour; and 1 "
        "more): it was written by another auditkit version or edited; rerun the audit (see `auditkit schema --run`)")
    del doc["data"]["colour"], doc["status"]
    with pytest.raises(InputError) as err:
        load_run(doc)
    assert str(err.value) == (
        "the run document does not match the run schema auditkit.run/1 (missing status; missing model.architecture; "
        "missing influence.stability.findings[0].verdict): it was written by another auditkit version or edited; "
        "rerun the audit (see `auditkit schema --run`)")


def test_undefined_numbers_become_none():
    doc = run_document()
    doc["fairness"]["groups"][0]["groups"][0]["metrics"]["auc"] = math.nan
    doc["privacy"]["threshold"] = math.inf
    run = load_run(doc)
    assert run.fairness.groups[0].groups[0].metrics["auc"] is None and run.privacy.threshold is None
    json.dumps(run.to_json_dict(), allow_nan=False)


def _saved_run_folder(tmp_path, doc: dict):
    """A folder as auditkit writes it, holding ``doc`` as run.json (and its manifest)."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False), encoding="utf-8")
    writer.write_manifest(folder, doc["report_id"])
    return folder


def test_render_rerenders_a_run_saved_by_the_previous_version(tmp_path, capsys):
    saved = json.loads(PREVIOUS.read_text(encoding="utf-8"))
    folder = _saved_run_folder(tmp_path, saved)
    assert main(["render", str(folder), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["report_id"], summary["run_status"]) == (saved["report_id"], saved["status"])
    assert {"report.html", "report.pdf", "findings.json", "run.json"} <= {p.name for p in folder.iterdir()}
    assert json.loads((folder / "run.json").read_text(encoding="utf-8")) == saved           # kept as it was
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert saved["report_id"] in html
    # saved before suppression: the report shows the suppressed copy, the withheld values go to the private file
    public, withheld = suppress(load_run(saved).to_json_dict())
    assert len(withheld["entries"]) > 0
    assert json.loads((folder / "findings.json").read_text(encoding="utf-8")) == findings_of(load_run(public))
    private = folder / "suppressed_cells.json"
    assert json.loads(private.read_text(encoding="utf-8")) == withheld and private.stat().st_mode & 0o777 == 0o600
    shown = {g["group"]: g["count"] for t in saved["fairness"]["groups"] for g in t["groups"]}
    assert (shown["Female & 55+"], shown["Male & <55"]) == (21, 84)     # saved with its figures; shown without
    for group in ("Female &amp; 55+", "Male &amp; &lt;55"):
        assert f'{group}</td><td class="num">—</td><td class="muted">suppressed</td>' in html


def test_render_refuses_a_run_with_a_field_removed_and_leaves_it_alone(tmp_path, capsys):
    doc = run_document()
    del doc["model"]["loss"]
    folder = _saved_run_folder(tmp_path, doc)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert main(["render", str(folder)]) == 2
    assert capsys.readouterr().err == (
        f"auditkit: error: {str(folder / 'run.json')!r} does not match the run schema auditkit.run/1 (missing "
        "model.loss): it was written by another auditkit version or edited; rerun the audit (see `auditkit schema "
        "--run`)\n")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


class Canary(Part):
    """A third-party plugin's typed findings."""

    canaries: int
    rate: float | None = None


def _plugins(monkeypatch, models: dict):
    class Plugin:
        def __init__(self, model):
            self.findings_model = model
    monkeypatch.setattr("auditkit.audits.registry.load_plugin", lambda name: Plugin(models[name]))


def test_third_party_findings_go_under_plugins_through_their_findings_model(monkeypatch):
    _plugins(monkeypatch, {"canary": Canary, "notes": None})
    run = assemble.run_document({**run_document(), "canary": {"canaries": 3}, "notes": {"free": ["form", 1]},
                                 "idle": None})
    assert run.plugins == {"canary": {"canaries": 3}, "notes": {"free": ["form", 1]}}
    assert "canary" not in run.to_json_dict() and run.to_json_dict()["plugins"]["canary"] == {"canaries": 3}
    with pytest.raises(InputError) as err:
        assemble.run_document({**run_document(), "canary": {"canaries": "three", "extra": 1}})
    assert str(err.value) == ("audit plugin 'canary': its findings do not match its findings_model Canary (invalid "
                              "canaries (Input should be a valid integer, unable to parse string as an integer); "
                              "unknown key extra): fix the plugin")


def test_built_in_plugins_declare_their_findings_models():
    from auditkit.audits.registry import load_plugin
    fields = RunDocument.model_fields
    for name in ("fairness", "privacy", "data_quality"):
        model = load_plugin(name).findings_model
        assert model is not None and fields[name].annotation == model | None
