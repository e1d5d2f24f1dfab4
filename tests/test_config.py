"""audit.yaml: validation, one-line messages naming the key to fix, JSON Schema, safe YAML."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import ROOT

from auditkit.config import AuditConfig, json_schema, load_config, parse_config
from auditkit.errors import InputError

EXAMPLE = ROOT / "examples/heart_disease/audit.yaml"


def example() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def error_of(doc, tmp_path) -> str:
    path = tmp_path / "audit.yaml"
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    with pytest.raises(InputError) as info:
        load_config(path)
    return str(info.value)


def test_the_example_is_valid_and_paths_are_relative_to_it():
    config = load_config(EXAMPLE)
    assert isinstance(config, AuditConfig)
    assert config.path(config.model.weights) == EXAMPLE.parent / "model/weights.pt"
    assert config.data.sensitive[1].from_column == "age" and config.data.sensitive[1].bands == [55]
    assert len(config.sha256) == 64


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(modle={}), "unknown key 'modle': remove it or fix its spelling (see `auditkit schema`)"),
    (lambda d: d["model"].update(weigths="x.pt"),
     "unknown key 'model.weigths': remove it or fix its spelling (see `auditkit schema`)"),
    (lambda d: d["model"].pop("builder"), "model.builder is required but missing: add it (see `auditkit schema`)"),
    (lambda d: d["model"].update(l2=-1), "model.l2: coefficients must be ≥ 0 (got -1)"),
    (lambda d: d["model"].update(l2={"weight": -0.1}), "model.l2: coefficients must be ≥ 0"),
    (lambda d: d["model"].update(builder="os.system"),
     "model.builder: String should match pattern '^[A-Za-z_][\\w.]*:[A-Za-z_]\\w*$' (got 'os.system')"),
    (lambda d: d["model"].update(loss="hinge"), "model.loss: Input should be 'cross_entropy' or 'bce' (got 'hinge')"),
    (lambda d: d["data"].update(train="a.csv"),
     "data: give either 'table' (+ 'split') or 'train'/'test'/'holdout' files, not both"),
    (lambda d: d["data"].update(split={"test": 0.6, "holdout": 0.5}),
     "data.split: test + holdout must leave records for training (sum < 1)"),
    (lambda d: d["data"].update(featurizer="os.system"),
     "data.featurizer: must be none, passthrough, tabular or package.module:function (got 'os.system')"),
    (lambda d: d["data"].update(table=None, split=None),
     "data: name the 'train' table (with 'test' and/or 'holdout'), or one 'table' with a 'split'"),
    (lambda d: d["data"]["sensitive"][1].pop("bands"),
     "data.sensitive.1: 'from' and 'bands' go together: give both to derive bands, or neither"),
    (lambda d: d["influence"].update(damping=-0.1), "influence.damping: must be 'auto' or a number ≥ 0 (got -0.1)"),
    (lambda d: d.update(base_dir="/"), "unknown key 'base_dir': remove it or fix its spelling (see `auditkit schema`)"),
])
def test_bad_configurations_get_one_line_naming_the_key(edit, message, tmp_path):
    doc = example()
    edit(doc)
    assert error_of(doc, tmp_path) == f"{tmp_path / 'audit.yaml'}: {message}"


def test_malformed_yaml_names_the_line(tmp_path):
    msg = error_of("model:\n  name: [unclosed\n", tmp_path)
    assert msg.startswith(f"configuration file {str(tmp_path / 'audit.yaml')!r} is not valid YAML at line 3")


def test_python_tags_are_refused_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    doc = f"model: !!python/object/apply:os.system ['touch {marker}']\n"
    msg = error_of(doc, tmp_path)
    assert "is not valid YAML" in msg and not marker.exists()


def test_a_list_instead_of_a_mapping_is_named(tmp_path):
    assert error_of("- a\n- b\n", tmp_path).endswith("expected a mapping of sections (model, data, ...), got list: "
                                                     "see `auditkit schema`")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InputError, match="does not exist: pass the path of your audit.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_json_schema_describes_every_section_and_forbids_extras():
    schema = json_schema()
    assert set(schema["properties"]) == {"report", "model", "data", "influence", "audits", "policy", "history", "seed",
                                         "backend"}
    assert schema["additionalProperties"] is False
    json.dumps(schema)
    # the schema's sensitive entries use the YAML key 'from'
    assert "from" in schema["$defs"]["SensitiveConfig"]["properties"]


def test_parse_config_accepts_the_same_document_as_a_dict():
    config = parse_config(example(), base_dir=EXAMPLE.parent)
    assert config.audits["fairness"]["bootstrap"] == 500


def test_passwords_in_urls_never_reach_the_report_text(tmp_path):
    doc = example()
    doc["history"] = "postgresql+psycopg://auditor:s3cr3t@db.example/audits"
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(doc))
    config = load_config(path)
    assert "s3cr3t" in config.text and "s3cr3t" not in config.redacted_text
    assert "postgresql+psycopg://auditor:***@db.example/audits" in config.redacted_text
