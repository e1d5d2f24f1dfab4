"""The bad-input battery: every malformed configuration, data set, model or output location is refused by the
command line with exit 2 and ONE line that names the problem and the fix, no traceback, and nothing written
(no report, no hidden staging folder, no history file) anywhere under the case's folder.

Most cases run in-process through ``auditkit.cli.main`` (what the ``auditkit`` command calls; stderr captured);
``test_refusals_in_a_fresh_process`` runs a few through ``python -m auditkit`` to show that what reaches a
terminal is the same one line.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from reliability_support import assert_one_line_refusal, cli, make_case, report_html, snapshot, text_of

from auditkit.cli import main
from auditkit.config import load_config
from auditkit.inputs import load_data
from auditkit.runner import audit

POLICY_ON_PRIVACY = {"policy": "p", "title": "t", "rules": [
    {"id": "auc", "metric": "privacy.loss.auc", "bound": {"kind": "absolute", "max": 0.6}, "severity": "fail",
     "requirement": "r"}]}


class Pwned:
    """A pickle that runs ``touch MARKER`` when unpickled (what a hostile weights file does)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os
        return os.system, (f"touch {self.marker}",)


def _write(name: str, content: bytes | str):
    """Prep step: write a file into the case folder (bytes, or text)."""
    def prep(folder, config):
        path = folder / name
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    return prep


def _weights(make_state):
    """Prep step: replace weights.pt by ``torch.save(make_state())``."""
    def prep(folder, config):
        torch.save(make_state(), folder / "weights.pt")
    return prep


def _pickle_bomb(folder, config):
    with open(folder / "weights.pt", "wb") as f:
        pickle.dump({"weight": Pwned(folder / "PWNED")}, f)


def _whole_module(folder, config):
    torch.save(torch.nn.Linear(39, 2).double(), folder / "weights.pt")


def _nan_weights(folder, config):
    state = torch.load(folder / "weights.pt", weights_only=True)
    state["weight"][0, 3] = float("nan")
    torch.save(state, folder / "weights.pt")


def _float32_overflow(folder, config):
    state = torch.load(folder / "weights.pt", weights_only=True)
    state["weight"] = state["weight"] * 1e300          # finite in float64, +-inf once cast to float32
    torch.save(state, folder / "weights.pt")


def _dir_for(name):
    def prep(folder, config):
        target = folder / name
        target.unlink(missing_ok=True)
        target.mkdir()
    return prep


def _nan_in(column, rows):
    def table(frame):
        frame[column] = frame[column].astype(object)
        frame.loc[rows, column] = np.nan
        return frame
    return table


def _set(column, rows, value):
    def table(frame):
        frame[column] = frame[column].astype(object) if isinstance(value, str) else frame[column]
        frame.loc[rows, column] = value
        return frame
    return table


def _config_text(text):
    def prep(folder, config):
        config.write_text(text)
    return prep


def _policy(doc, name="policy.yaml"):
    def prep(folder, config):
        (folder / name).write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return prep


#: (case id, configuration edit, table edit, extra preparation, --out relative to the case folder, phrases that
#: must appear in the one line: what is wrong and how to fix it)
CASES = [
    # --- the configuration file ---
    ("malformed-yaml", None, None, _config_text("model:\n  name: [unclosed\n"), None,
     ["is not valid YAML at line 3", "audit.yaml"]),
    ("yaml-duplicate-key", None, None, lambda f, c: c.write_text(c.read_text() + "seed: 1\n"), None,
     ["key 'seed' given twice", "give each key once"]),
    ("yaml-python-tag", None, None, _config_text("model: !!python/object/apply:os.system ['true']\n"), None,
     ["is not valid YAML", "python/object/apply:os.system"]),
    ("empty-config", None, None, _config_text(""), None, ["is empty", "see `auditkit schema`"]),
    ("config-is-a-list", None, None, _config_text("- model\n- data\n"), None,
     ["expected a mapping of sections", "got list"]),
    ("config-not-utf8", None, None, _write("audit.yaml", b"model:\n  name: \xff\xfe\x00bad\n"), None,
     ["cannot be read", "UTF-8"]),
    ("config-is-a-directory", None, None, lambda f, c: (c.unlink(), c.mkdir()), None,
     ["is a directory, not a file", "pass the path of your audit.yaml"]),
    ("unknown-top-level-key", lambda d: d.update(modle={}), None, None, None,
     ["unknown key 'modle'", "remove it or fix its spelling"]),
    ("unknown-nested-key", lambda d: d["influence"].update(dampnig=0.1), None, None, None,
     ["unknown key 'influence.dampnig'", "remove it or fix its spelling"]),
    ("wrong-type-seed", lambda d: d.update(seed="zero"), None, None, None,
     ["seed: Input should be a valid integer", "(got 'zero')"]),
    ("wrong-type-plugin-option", lambda d: d["audits"]["fairness"].update(bootstrap="many"), None, None, None,
     ["options of audit 'fairness': bootstrap", "valid integer", "'many'"]),
    ("unknown-plugin", lambda d: d["audits"].update(robustness={}), None, None, None,
     ["audit plugin 'robustness' is not installed", "available plugins are"]),
    ("bands-not-increasing", lambda d: d["data"]["sensitive"][1].update(bands=[60, 40]), None, None, None,
     ["data.sensitive.1: bands [60.0, 40.0] must be finite and strictly increasing", "fix 'bands'"]),
    # --- files named by the configuration ---
    ("missing-data-file", lambda d: d["data"].update(table="nowhere.csv"), None, None, None,
     ["data.table: file", "nowhere.csv", "does not exist: fix the path"]),
    ("data-file-is-a-directory", None, None, _dir_for("patients.csv"), None,
     ["data.table", "patients.csv", "is a directory", "give the path of a table file"]),
    ("missing-weights", lambda d: d["model"].update(weights="gone.pt"), None, None, None,
     ["model.weights: file", "gone.pt", "does not exist"]),
    ("garbage-weights", None, None, _write("weights.pt", b"\x00not a torch file" * 10), None,
     ["model.weights", "is not a weights file torch can load safely", "torch.save(model.state_dict(), path)"]),
    ("pickled-code-in-weights", None, None, _pickle_bomb, None,
     ["model.weights", "is not a weights file torch can load safely"]),
    ("whole-module-instead-of-state-dict", None, None, _whole_module, None,
     ["model.weights", "torch.save(model.state_dict(), path)"]),
    ("weights-of-another-architecture", None, None, _weights(lambda: torch.nn.Linear(20, 2).double().state_dict()),
     None, ["does not fit the model built by", "the weights belong to another architecture"]),
    ("weights-with-nan", None, None, _nan_weights, None,
     ["model.weights", "non-finite", "weight", "retrain"]),
    ("weights-overflow-float32", lambda d: d["model"].update(dtype="float32"), None, _float32_overflow, None,
     ["model.weights", "non-finite", "float32", "float64"]),
    ("builder-not-importable", lambda d: d["model"].update(builder="no_such_pkg.models:build"), None, None, None,
     ["model.builder: cannot import module 'no_such_pkg.models'", "PYTHONPATH"]),
    ("builder-missing-attribute", lambda d: d["model"].update(builder="examples.heart_disease.model:bulid"), None,
     None, None, ["has no attribute 'bulid'", "fix the name after the colon"]),
    ("builder-args-wrong", lambda d: d["model"]["builder_args"].update(n_feature=39), None, None, None,
     ["model.builder: calling", "check model.builder_args"]),
    ("model-with-three-outputs", lambda d: d["model"].update(
        builder="torch.nn:Linear", builder_args={"in_features": 39, "out_features": 3}, weights=None), None, None,
     None, ["outputs of shape (3,)", "the model needs 2 outputs"]),
    ("featurizer-does-not-match-model", lambda d: d["data"].update(features=["age", "sex", "chol"],
                                                                   categorical=["sex"]), None, None, None,
     ["the model cannot take the featurized data (5 features per record)", "data.features/categorical/featurizer"]),
    ("featurizer-that-fails", lambda d: d["data"].update(featurizer="sklearn.preprocessing:StandardScaler"), None,
     None, None, ["featurizer StandardScaler.fit failed on the train split", "check the featurizer"]),
    ("featurizer-not-a-class", lambda d: d["data"].update(featurizer="json:loads"), None, None, None,
     ["data.featurizer: calling 'json:loads' failed", "returns an object with fit(frame) and transform(frame)"]),
    ("train-fn-not-importable", lambda d: d["model"].update(train_fn="nowhere:train"), None, None, None,
     ["model.train_fn: cannot import module 'nowhere'"]),
    # --- the data ---
    ("empty-table", None, lambda f: f.iloc[:0], None, None, ["data.table", "has no rows", "at least one record"]),
    ("zero-byte-table", None, None, _write("patients.csv", b""), None,
     ["could not read table file", "check that it is a valid CSV file"]),
    ("single-label", None, _set("disease", slice(None), "no"), None, None,
     ["has a single class ('no')", "at least two classes"]),
    ("training-split-of-one-record", lambda d: d["data"]["split"].update(test=0.5, holdout=0.499), None, None, None,
     ["data.split: the train part has 1 record(s) of the table's 920", "at least 2 records"]),
    ("nan-target", None, _nan_in("disease", [3, 10]), None, None,
     ["missing values in target column 'disease'", "drop or label those records"]),
    ("inf-feature", None, _set("chol", [5], np.inf), None, None,
     ["numeric feature column 'chol' has 1 infinite value(s)", "replace infinities"]),
    ("non-numeric-in-numeric-column", None, _set("chol", [7], "two hundred"), None, None,
     ["feature column 'chol'", "1 value(s) that are not numbers", "add it to data.categorical"]),
    ("duplicate-record-ids", None, lambda f: f.assign(id=f["id"].where(f.index != 5, f["id"][4])), None, None,
     ["data.table: 1 duplicate values in id column 'id' (0-based rows 5)", "must be unique"]),
    ("missing-record-id", None, _nan_in("id", [2]), None, None,
     ["missing values in id column 'id'", "every record needs an id"]),
    ("missing-target-column", lambda d: d["data"].update(target="outcome"), None, None, None,
     ["has no target column 'outcome'", "fix"]),
    ("missing-sensitive-column", lambda d: d["data"]["sensitive"][0].update(column="gender"), None, None, None,
     ["has no sensitive column 'gender'", "fix"]),
    ("favourable-not-a-class", lambda d: d["data"].update(favourable="maybe"), None, None, None,
     ["favourable 'maybe' is not one of the classes", "use one of them"]),
    ("explain-unknown-record", lambda d: d["audits"]["fairness"].update(explain={"records": ["nobody"]}), None,
     None, None, ["fairness.explain.records: 1 record id(s) are not in the test split", "give ids from"]),
    # --- influence, policy, history, output ---
    ("singular-hessian-without-damping", lambda d: (d["model"].update(l2=0.0), d["influence"].update(damping=0.0)),
     None, None, None, ["influence.damping: the Hessian is singular", "set 'damping: auto'"]),
    ("policy-metric-without-plugin", lambda d: d.update(policy="policy.yaml", audits={"fairness": {"bootstrap": 50}}),
     None, _policy(POLICY_ON_PRIVACY), None,
     ["metric privacy.loss.auc needs privacy, which this audit does not run", "enable the privacy plugin"]),
    ("policy-unknown-metric", lambda d: d.update(policy="policy.yaml"), None,
     _policy({**POLICY_ON_PRIVACY, "rules": [{**POLICY_ON_PRIVACY["rules"][0], "metric": "privacy.los.auc"}]}),
     None, ["'privacy.los.auc' is not a known metric id", "did you mean 'privacy.loss.auc'?"]),
    ("policy-with-python-tag", lambda d: d.update(policy="policy.yaml"), None,
     _policy("policy: !!python/object/apply:os.system ['true']\n"), None, ["not valid YAML", "no !!python tags"]),
    ("unknown-builtin-policy", lambda d: d.update(policy="eu-ai-act"), None, None, None,
     ["policy eu-ai-act: no such file and no built-in policy of that name", "give a YAML file or one of"]),
    ("privacy-without-non-members", lambda d: d["data"]["split"].update(holdout=0.0), None, None, None,
     ["audits.privacy needs non-members", "data.split.holdout > 0"]),
    ("history-under-a-file", lambda d: d.update(history="weights.pt/history.sqlite"), None, None, None,
     ["history: cannot open the history store", "give a writable SQLite path"]),
    ("history-file-not-a-database", None, None, _write("history.sqlite", b"not a database, 32 bytes long...\n" * 40),
     None, ["history: cannot open the history store", "history.sqlite", "give a writable SQLite path"]),
    ("output-under-a-file", None, None, None, "weights.pt/report",
     ["--out", "cannot be written", "choose a folder you can write to"]),
    ("output-on-a-read-only-file-system", None, None, None, "/proc/auditkit-report",
     ["--out '/proc/auditkit-report' cannot be written", "choose a folder you can write to"]),
    ("output-is-a-file", None, None, None, "weights.pt", ["is a file: give a folder for the report"]),
]


@pytest.mark.parametrize("name, edit, table, prep, out, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_one_line_and_nothing_written(name, edit, table, prep, out, expected, tmp_path,
                                                                capsys):
    config = make_case(tmp_path, edit=edit, table=table)
    if prep is not None:
        prep(tmp_path, config)
    before = snapshot(tmp_path)
    target = tmp_path / (out or "runs/report")
    code = main(["run", str(config), "--out", str(target), "--quiet"])
    captured = capsys.readouterr()
    assert_one_line_refusal(code, captured.err, expected)
    assert captured.out == ""
    assert snapshot(tmp_path) == before                       # no report, no staging folder, no history file
    assert not (tmp_path / "PWNED").exists()                  # nothing in any file was executed


def test_the_battery_has_at_least_thirty_distinct_cases():
    assert len({c[0] for c in CASES}) == len(CASES) >= 30


def test_refusals_in_a_fresh_process(tmp_path):
    """Through ``python -m auditkit``: the terminal sees the same one line, never a traceback."""
    for name, edit, table, prep, out, expected in [c for c in CASES if c[0] in (
            "pickled-code-in-weights", "duplicate-record-ids")]:
        folder = tmp_path / name
        config = make_case(folder, edit=edit, table=table)
        if prep is not None:
            prep(folder, config)
        before = snapshot(folder)
        code, stdout, stderr = cli("run", config, "--out", folder / (out or "runs/report"))
        assert_one_line_refusal(code, stderr, expected, progress=True)
        assert stdout == "" and snapshot(folder) == before, name
        assert not (folder / "PWNED").exists()


def test_validate_refuses_the_same_configuration_problems(tmp_path, capsys):
    """``auditkit validate`` reads the files a run reads, so it refuses data and model problems too."""
    config = make_case(tmp_path, table=lambda f: f.assign(id=f["id"].where(f.index != 5, f["id"][4])))
    assert main(["validate", str(config)]) == 2
    assert_one_line_refusal(2, capsys.readouterr().err, ["duplicate values in id column 'id'"])


@pytest.mark.parametrize("which, expected", [
    ("audit.yaml", ["cannot be read (PermissionError)", "check its permissions"]),
    ("patients.csv", ["could not read table file", "PermissionError", "check that it is a valid CSV file"]),
    ("weights.pt", ["model.weights", "PermissionError", "torch.save(model.state_dict(), path)"]),
])
def test_a_file_the_user_may_not_read(which, expected, tmp_path, capsys, monkeypatch):
    """A file that exists but cannot be opened (mode 000 for another user; the tests run as root, who reads any
    file, so the operating system's refusal is simulated at ``open``): exit 2 naming the file and the cause."""
    import builtins
    import io

    config = make_case(tmp_path)
    locked = str(tmp_path / which)
    real_open, real_io_open = builtins.open, io.open

    def guarded(opener):
        def open_(file, *args, **kwargs):
            if str(file) == locked:
                raise PermissionError(13, "Permission denied", locked)
            return opener(file, *args, **kwargs)
        return open_

    monkeypatch.setattr(builtins, "open", guarded(real_open))
    monkeypatch.setattr(io, "open", guarded(real_io_open))
    before = snapshot(tmp_path)
    code = main(["run", str(config), "--out", str(tmp_path / "runs/report"), "--quiet"])
    assert_one_line_refusal(code, capsys.readouterr().err, expected)
    assert snapshot(tmp_path) == before


def test_a_group_of_one_record_is_reported_as_too_small_not_as_a_crash(tmp_path):
    """A sensitive group holding a single record is legal data (a rare category), not bad input: the audit
    completes, the group is marked too small (no metric of one person is reported) and the report says so."""
    config = make_case(tmp_path, table=lambda f: f.assign(site=np.where(f.index % 2 == 0, "North", "South")),
                       edit=lambda d: (d["audits"]["fairness"].update(bootstrap=20), d.update(history=False),
                                       d["data"]["sensitive"].append({"column": "site"})))
    lone = str(load_data(load_config(config)).splits["test"].ids[0])   # one test record gets a group of its own
    frame = pd.read_csv(tmp_path / "patients.csv", dtype={"id": str})
    frame.loc[frame["id"] == lone, "site"] = "Island"
    frame.to_csv(tmp_path / "patients.csv", index=False)

    run = audit(config).run.to_json_dict()
    groups = [g for t in run["fairness"]["groups"] for g in t["groups"] if "Island" in str(g["group"])]
    assert groups and all(g["suppressed"] and g.get("count") is None for g in groups)
    text = text_of(report_html(run))
    assert "Island — suppressed" in text                            # listed, its count withheld
    assert "were not reported: " in text and "Island" in text.split("were not reported: ")[1][:300]
