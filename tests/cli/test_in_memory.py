"""``auditkit.audit(config, data={...DataFrames}, model=module)``: the tables and the model as Python objects give
the same findings as the same audit from files, the objects are not changed, and wrong objects are refused in
one line. A cheap version of the heart-disease example (no retraining, 50 bootstrap samples, one stability
setting)."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import ROOT

import auditkit as ak
from auditkit.errors import InputError
from auditkit.inputs import IN_MEMORY
from auditkit.writer import findings_of

EXAMPLE = ROOT / "examples/heart_disease"


def cheap_doc() -> dict:
    doc = yaml.safe_load((EXAMPLE / "audit.yaml").read_text())
    doc["model"]["train_fn"] = None
    doc["model"]["weights"] = str(EXAMPLE / "model/weights.pt")
    doc["data"]["table"] = str(EXAMPLE / "model/patients.csv")
    doc["audits"]["fairness"]["bootstrap"] = 50
    doc["influence"]["stability"] = {"damping_factors": [10.0], "second_solver": "none"}
    doc["history"] = False
    return doc


def without_files(doc: dict) -> dict:
    """The configuration with no table file, builder or weights: the objects replace them."""
    doc = copy.deepcopy(doc)
    for key in ("builder", "builder_args", "weights"):
        doc["model"].pop(key)
    for key in ("table", "train", "test", "holdout"):
        doc["data"].pop(key, None)
    return doc


def trained_module() -> torch.nn.Module:
    """The example's trained model, in training mode (the audit puts a copy, not this object, in eval mode)."""
    model = torch.nn.Linear(39, 2, dtype=torch.float64)
    model.load_state_dict(torch.load(EXAMPLE / "model/weights.pt", weights_only=True))
    return model.train()


def comparable(run) -> dict:
    """The findings without what names the sources (file names, builder, weights file, configuration text) or
    the moment."""
    out = copy.deepcopy(findings_of(run.run))
    for key in ("report_id", "created_utc", "model"):
        out.pop(key, None)
    out["provenance"].pop("versions")
    out["provenance"]["hashes"].pop("model"), out["provenance"]["hashes"].pop("config")
    for split in out["data"]["splits"]:
        split.pop("source")
    return out


@pytest.fixture(scope="module", autouse=True)
def token_key():
    """One token key for every run here: the runs compared must give their records the same tokens."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUDITKIT_TOKEN_KEY", "the key of the in-memory comparisons")
        yield


@pytest.fixture(scope="module")
def from_files(tmp_path_factory):
    """The audit from files, with train/test/holdout written as three CSV files (the table's seeded split)."""
    folder = tmp_path_factory.mktemp("files")
    table = pd.read_csv(EXAMPLE / "model/patients.csv", dtype={"id": str})
    order = np.random.default_rng(0).permutation(len(table))
    parts = {"test": order[:230], "holdout": order[230:414], "train": order[414:]}
    frames = {k: table.iloc[np.sort(v)].reset_index(drop=True) for k, v in parts.items()}
    doc = cheap_doc()
    doc["data"].pop("table"), doc["data"].pop("split")
    for name, frame in frames.items():
        frame.to_csv(folder / f"{name}.csv", index=False)
        doc["data"][name] = str(folder / f"{name}.csv")
    return doc, frames, ak.audit(doc)


def test_dataframes_and_a_model_object_give_the_findings_of_the_files(from_files):
    doc, frames, expected = from_files
    given = {k: f.copy() for k, f in frames.items()}
    model = trained_module()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    run = ak.audit(without_files(doc), data=given, model=model)
    assert json.dumps(comparable(run), sort_keys=True) == json.dumps(comparable(expected), sort_keys=True)
    assert run.run.privacy.flags and run.run.fairness.attributions      # not trivially empty
    # the same content, the same hashes; the source says where it came from
    assert run.run.provenance.hashes.data == expected.run.provenance.hashes.data
    assert [s.source for s in run.run.data.splits] == [IN_MEMORY] * 3
    assert [s.source for s in expected.run.data.splits] == ["train.csv", "test.csv", "holdout.csv"]
    m = run.run.model
    assert m.weights_sha256 is None and m.builder == (
        "in-memory object of class torch.nn.modules.linear.Linear (auditkit.audit(model=...))")
    assert m.parameters_sha256 == expected.run.model.parameters_sha256 == run.run.provenance.hashes.model
    # the objects passed in are untouched: no derived age_band column; the model's weights and mode as they were
    for name, frame in frames.items():
        pd.testing.assert_frame_equal(given[name], frame)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items()) and model.training
    pd.testing.assert_frame_equal(run.fairness.disparities.to_frame(), expected.fairness.disparities.to_frame())
    # the report says where the data and the model came from, and claims no weights file
    from auditkit.report import build_document
    from auditkit.report.html import render_html_string
    document = build_document(run.run.to_json_dict(), figures={}, annex={"name": "findings.json"})
    html = " ".join(render_html_string(document).split())
    assert html.count(f"<td class=\"\">{IN_MEMORY}</td>") == 3 and "passed to auditkit as a Python object" in html
    assert "weights were loaded" not in html


def test_one_table_dataframe_is_split_like_the_file():
    """data={"table": df}: split by the configuration's data.split into the same records as the file."""
    from auditkit.inputs import load_data
    from auditkit.runner import configuration
    doc = cheap_doc()
    table = pd.read_csv(EXAMPLE / "model/patients.csv", dtype={"id": str})
    from_file = load_data(configuration(doc))
    from_frame = load_data(configuration(without_files(doc) | {"model": doc["model"]}, data={"table": table}))
    assert from_frame.hashes == from_file.hashes
    assert from_frame.sources == {k: f"{IN_MEMORY} ({k} part, split seed 0)" for k in ("test", "holdout", "train")}
    for name, split in from_file.splits.items():
        np.testing.assert_array_equal(from_frame.splits[name].X, split.X)
        np.testing.assert_array_equal(from_frame.splits[name].ids, split.ids)


def test_wrong_objects_are_refused_in_one_line():
    doc, frame = without_files(cheap_doc()), pd.DataFrame({"a": [1]})
    usage = ("give a dict of split name to pandas DataFrame: {'train': ..., 'test': ...} (optionally 'holdout'), "
             "or {'table': ...} split by the configuration's data.split")
    cases = [
        (dict(data=[frame]), f"data: got a list: {usage}"),
        (dict(data={"training": frame}), f"data: unknown split 'training': {usage}"),
        (dict(data={"train": frame, "test": frame.to_numpy()}),
         f"data['test']: got a ndarray, not a pandas DataFrame: {usage}"),
        (dict(data={"table": frame, "train": frame}),
         f"data: give either 'table' or 'train'/'test'/'holdout', not both (got ['table', 'train']): {usage}"),
        (dict(data={"train": frame}),
         f"data: the 'train' and 'test' DataFrames are both needed (got ['train']): {usage}"),
        (dict(data={"table": frame}, model=object()),
         "model: got a object, not a torch nn.Module: pass the trained torch model (a scikit-learn classifier "
         "converts with auditkit.models.from_sklearn)"),
        (dict(data={"table": frame}, model=SimpleNamespace(module=trained_module())),
         "model: got a SimpleNamespace, not a torch nn.Module: pass its torch module (model=converted.module) and "
         "set model.loss and model.l2 in the configuration to its loss and l2"),
    ]
    for kwargs, message in cases:
        with pytest.raises(InputError) as err:
            ak.audit(doc, **{"model": trained_module(), **kwargs})
        assert str(err.value) == message
    no_split = copy.deepcopy(doc)
    no_split["data"].pop("split")
    with pytest.raises(InputError) as err:
        ak.audit(no_split, data={"table": frame}, model=trained_module())
    assert str(err.value) == ("data: a 'table' DataFrame needs data.split in the configuration (fractions of test "
                              "and holdout records, and a seed): add it, or give 'train' and 'test' DataFrames")
    with pytest.raises(InputError) as err:
        ak.audit(doc, data={"table": frame})
    assert str(err.value) == "configuration: model.builder is required but missing: add it (see `auditkit schema`)"
    with pytest.raises(InputError) as err:
        ak.audit(doc, model=trained_module())
    assert str(err.value) == ("configuration: data: name the 'train' table (with 'test' and/or 'holdout'), or "
                              "one 'table' with a 'split'")
    with pytest.raises(InputError) as err:
        ak.audit(42)
    assert str(err.value) == ("config: got a int: give the path of audit.yaml, a dict of its sections, or a loaded "
                              "configuration (auditkit.config.load_config)")
