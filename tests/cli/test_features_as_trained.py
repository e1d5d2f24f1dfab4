"""Issue 16: a model audited on its own data as it was trained. Real data (UCI Heart Disease) encoded by its
owner (standardised numbers, one-hot categories) and kept as files; a linear model trained on exactly those
columns. Re-featurizing them is refused by the stationarity check (exit 2); ``featurizer: none`` audits the
arrays as given and matches the engine run directly on them; privacy needs no test table or sensitive attribute."""

from __future__ import annotations

import json
import stat

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import ROOT
from test_cli import cli

from auditkit import InfluenceEngine, fit_model
from auditkit.cli import main
from auditkit.config import parse_config
from auditkit.data import TabularFeaturizer, needs_encoding
from auditkit.errors import InputError
from auditkit.influence.losses import resolve_loss
from auditkit.influence.stationarity import STATIONARITY_THRESHOLD, stationarity
from auditkit.runner import check_config
from auditkit.seeds import derived_seed
from examples.datasets import prepare

L2 = 0.01
#: the seed of the stationarity check's label shuffle in these audits (seed 0): derived from the run's seed
SHUFFLE = derived_seed(0, "stationarity")
BUILDER = """import torch


def build(n_features):
    return torch.nn.Linear(n_features, 2).double()    # float64, as the weights were saved


def lazy(model, X, y):
    return model            # a training function that stops at once: its refits do not converge
"""


@pytest.fixture(scope="module")
def owner(tmp_path_factory):
    """The owner's files: encoded train (members, .csv.gz) and held-out (non-members) tables, the builder module
    beside the configuration, and weights trained on exactly the encoded training columns."""
    tmp = tmp_path_factory.mktemp("owner")
    d = prepare("heart_disease")
    names = [n.replace("=", "_") for n in d.feature_names]
    tables = {}
    for split, X, y in (("train", d.X_train, d.y_train), ("holdout", d.X_test, d.y_test)):
        frame = pd.DataFrame(X, columns=names)
        frame.insert(0, "id", [f"{split}-{i:04d}" for i in range(len(frame))])
        frame["sex"] = np.where(frame["sex_Male"] == 1, "male", "female")
        frame["disease"] = y
        tables[split] = frame
    tables["train"].to_csv(tmp / "train.csv.gz", index=False)
    tables["holdout"].to_csv(tmp / "holdout.csv", index=False)
    module = f"owner_{tmp.name.replace('-', '_')}"
    (tmp / f"{module}.py").write_text(BUILDER)
    X = pd.read_csv(tmp / "train.csv.gz")[names].to_numpy(np.float64)      # the arrays as kept in the file
    torch.manual_seed(0)
    model = torch.nn.Linear(len(names), 2).double()
    info = fit_model(model, torch.tensor(X), torch.tensor(d.y_train), l2=L2)
    assert info["converged"]
    torch.save(model.state_dict(), tmp / "weights.pt")
    return {"dir": tmp, "module": module, "names": names, "model": model, "X": X, "y": d.y_train}


def config(owner, name: str, *, featurizer=None, model=None, audits=None, **data) -> str:
    doc = {"model": {"name": "owner-lr", "builder": f"{owner['module']}:build",
                     "builder_args": {"n_features": len(owner["names"])}, "weights": "weights.pt", "l2": L2,
                     **(model or {})},
           "data": {"train": "train.csv.gz", "holdout": "holdout.csv", "target": "disease", "id_column": "id",
                    "features": owner["names"], **data},
           "audits": audits or {"privacy": {}, "data_quality": {}}, "history": False}
    if featurizer is not None:
        doc["data"]["featurizer"] = featurizer
    path = owner["dir"] / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def here(capsys, *args) -> tuple[int, str, str]:
    """The command line in this process (faster than a subprocess): (exit code, stdout, stderr)."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_owners_columns_look_encoded_and_raw_columns_do_not(owner):
    train = pd.read_csv(owner["dir"] / "train.csv.gz")[owner["names"]]
    assert needs_encoding(train) is None
    raw = prepare("heart_disease").train
    age = raw["age"].to_numpy(np.float64)
    assert needs_encoding(raw[["age", "chol"]]) == (f"column 'age' is neither 0/1 nor standardised (mean "
                                                    f"{age.mean():.3g}, std {age.std(ddof=1):.3g})")
    assert needs_encoding(raw[["sex"]]) == "column 'sex' is not numeric"


def test_refeaturized_columns_are_refused_with_the_measured_numbers(capsys, owner):
    """The default featurizer (tabular) standardises the 0/1 columns again: exit 2 naming the causes."""
    path = config(owner, "tabular.yaml", featurizer="tabular")
    frame = pd.read_csv(owner["dir"] / "train.csv.gz")
    X = TabularFeaturizer().fit_transform(frame[owner["names"]])
    m = stationarity(owner["model"], X, owner["y"], l2=L2, seed=SHUFFLE)   # ground truth: the arrays the audit sees
    assert m["relative"] > 2 * STATIONARITY_THRESHOLD and m["loss"] > stationarity(owner["model"], owner["X"],
                                                                                    owner["y"], l2=L2)["loss"] + 0.05
    message = (f"auditkit: error: model: the weights are not a minimum of the stated objective (mean cross_entropy + "
               f"L2) on the {len(X)} training records as featurized: gradient norm {m['grad_norm']:.3g}, "
               f"{m['relative']:.3g} of its size with shuffled labels (converged training reaches 1e-6 or less; "
               f"refused above 0.05); training loss {m['loss']:.4g}, accuracy {m['accuracy']:.3f}. Likely causes: "
               "features encoded differently from training (data.featurizer: tabular was used; 'none' takes "
               f"already-encoded features as given), a wrong model.l2 ({L2}), a wrong model.loss, or a training "
               "split other than the one the model was trained on. Fix the configuration, or set "
               "model.allow_non_stationary: true to audit anyway (the report then states it as a limitation)")
    for command in (["validate", path], ["run", path, "--out", owner["dir"] / "refused"]):
        code, out, err = here(capsys, *command)
        assert (code, err.splitlines()[-1]) == (2, message)         # run prints its progress first
    assert not (owner["dir"] / "refused").exists()


def test_a_wrong_l2_is_refused_too(capsys, owner):
    code, _, err = here(capsys, "validate", config(owner, "l2.yaml", featurizer="none", model={"l2": 0.5}))
    m = stationarity(owner["model"], owner["X"], owner["y"], l2=0.5, seed=SHUFFLE)
    assert (code, err) == (2, (
        f"auditkit: error: model: the weights are not a minimum of the stated objective (mean cross_entropy + L2) on "
        f"the {len(owner['y'])} training records as featurized: gradient norm {m['grad_norm']:.3g}, "
        f"{m['relative']:.3g} of its size with shuffled labels (converged training reaches 1e-6 or less; refused "
        f"above 0.05); training loss {m['loss']:.4g}, accuracy {m['accuracy']:.3f}. Likely causes: features encoded "
        "differently from training (data.featurizer: none was used; 'tabular' standardises and one-hot encodes), a "
        "wrong model.l2 (0.5), a wrong model.loss, or a training split other than the one the model was trained on. "
        "Fix the configuration, or set model.allow_non_stationary: true to audit anyway (the report then states it "
        "as a limitation)\n"))


def test_features_as_given_match_the_engine_on_the_same_arrays(owner, tmp_path):
    """featurizer none, privacy + data quality only: no test table, no sensitive attribute; the builder module is
    found in the configuration's folder (the command runs from the repository root)."""
    path = config(owner, "none.yaml", featurizer="none")
    code, out, err = cli("run", path, "--out", tmp_path / "out")
    assert code == 0, err
    run = json.loads((tmp_path / "out/run.json").read_text())
    assert [s["name"] for s in run["data"]["splits"]] == ["train", "holdout"]
    assert run["data"]["featurizer"] == "none (data.featurizer: none): the feature columns as given"
    fit = run["model"]["training_fit"]
    truth = stationarity(owner["model"], owner["X"], owner["y"], l2=L2)
    assert fit["relative"] < 1e-6 and fit["stationary"] and fit["loss"] == pytest.approx(truth["loss"], rel=1e-12)
    assert fit["accuracy"] == truth["accuracy"]
    scores = pd.read_csv(tmp_path / "out/record_scores.csv", dtype={"record_id": str})
    assert stat.S_IMODE((tmp_path / "out/record_scores.csv").stat().st_mode) == 0o600
    assert list(scores["record_id"]) == [f"train-{i:04d}" for i in range(len(owner["y"]))]
    engine = InfluenceEngine(owner["model"], "cross_entropy", l2=L2).fit(torch.tensor(owner["X"]),
                                                                          torch.tensor(owner["y"]))
    with torch.no_grad():
        loss = resolve_loss("cross_entropy")(owner["model"](torch.tensor(owner["X"])), torch.tensor(owner["y"]))
    expected = loss.numpy() + engine.self_influence(leverage=True)     # the engine-only data-quality score
    np.testing.assert_allclose(scores["data_quality_score"], expected, rtol=1e-9, atol=1e-12)
    # the full privacy ranking: its top records are the flagged ones, in the same order
    flagged = pd.read_csv(tmp_path / "out/flagged_records.csv")
    flags = flagged[flagged["finding"] == "privacy flag"]
    top = scores.sort_values("privacy_risk", ascending=False, kind="stable").head(len(flags))
    assert list(top["token"]) == list(flags["token"]) and len(flags) == run["privacy"]["n_flagged"]
    html = (tmp_path / "out/report.html").read_text()
    assert "none (data.featurizer: none): the feature columns as given" in html
    assert "The model on its training records, as featurized for this audit" in html


def test_unset_featurizer_is_chosen_by_the_columns(capsys, owner):
    code, out, err = here(capsys, "validate", config(owner, "auto.yaml"))
    assert code == 0, err
    assert ("  featurizer: none (chosen automatically: every feature column is numeric, complete, and 0/1 or already "
            "standardised; set data.featurizer: tabular to standardise them)\n") in out


def test_allowed_non_stationary_weights_are_a_limitation(capsys, owner, tmp_path):
    path = config(owner, "allowed.yaml", featurizer="tabular", model={"allow_non_stationary": True},
                  audits={"data_quality": {}})
    code, out, err = here(capsys, "run", path, "--out", tmp_path / "out")
    assert code == 0, err
    run = json.loads((tmp_path / "out/run.json").read_text())
    fit = run["model"]["training_fit"]
    assert not fit["stationary"] and fit["allowed"] and fit["relative"] > fit["threshold"] == 0.05
    html = " ".join((tmp_path / "out/report.html").read_text().split())
    assert (f"The audited weights are not a minimum of the stated objective on the training records as featurized "
            f"(gradient norm {fit['grad_norm']:.3g}, {fit['relative']:.3g} of its size with shuffled labels, above the "
            "0.05 the audit accepts; model.allow_non_stationary was set): influence estimates assume a minimum and may "
            "be far from what retraining would do.") in html          # the limitation the report composes


def test_unconverged_refits_are_counted_and_named(capsys, owner, tmp_path):
    path = config(owner, "lazy.yaml", featurizer="none", model={"train_fn": f"{owner['module']}:lazy"},
                  audits={"privacy": {"trust_top": 0, "reference_models": 4}}, sensitive=[{"column": "sex"}])
    code, out, err = here(capsys, "run", path, "--out", tmp_path / "out")
    assert code == 0, err
    run = json.loads((tmp_path / "out/run.json").read_text())
    refits = run["influence"]["refits"]
    # the reference models (half the records each) stay at the builder's initialisation: not a minimum on their half
    assert refits["by_purpose"] == {"reference model": {"count": 4, "not_converged": 4}}
    assert refits["largest_relative"] > refits["tolerance"] == 1e-5
    assert refits["count"] == refits["not_converged"] == 4
    assert ("4 of the 4 retrainings did not converge (reference model: 4 of 4; the largest gradient norm left was "
            in " ".join((tmp_path / "out/report.html").read_text().split()))
    assert ("Memorisation may be underestimated: self-influence at the final parameters misses records a non-convex "
            "model has memorised, and the check of the top-ranked records by retraining was switched off (trust_top: "
            "0).") in run["privacy"]["notes"]
    # per-group results when a sensitive attribute is given
    assert set(run["privacy"]["attacks_by_group"]) == {"sex"} and run["privacy"]["exposure"][0]["attribute"] == "sex"


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["data"].pop("test"), "audits.fairness needs a test table: give data.test (or data.split.test > 0), "
                                      "or remove the fairness audit"),
    (lambda d: d["data"].pop("sensitive"), "audits.fairness needs data.sensitive (the attributes to compare groups "
                                           "by): add it, or remove the fairness audit"),
])
def test_fairness_still_needs_a_test_table_and_a_sensitive_attribute(edit, message, tmp_path):
    doc = {"model": {"name": "m", "builder": "x.y:build"},
           "data": {"train": "a.csv", "test": "b.csv", "target": "t", "sensitive": [{"column": "sex"}]},
           "audits": {"fairness": {}}}
    edit(doc)
    with pytest.raises(InputError) as err:
        check_config(parse_config(doc, base_dir=tmp_path))
    assert str(err.value) == message


def test_privacy_only_needs_no_test_table(owner):
    doc = yaml.safe_load(config(owner, "privacy.yaml", featurizer="none").read_text())
    assert "test" not in doc["data"] and "sensitive" not in doc["data"]
    assert check_config(parse_config(doc, base_dir=owner["dir"])) is None


def test_the_builder_is_still_found_from_the_current_directory(capsys, owner, monkeypatch):
    """A module that is only in the folder auditkit runs from (not beside the configuration) is found too."""
    folder = owner["dir"] / "cwd"
    folder.mkdir()
    module = f"cwd_{owner['module']}"
    (folder / f"{module}.py").write_text(BUILDER)
    path = config(owner, "cwd.yaml", featurizer="none")
    path.write_text(path.read_text().replace(f"{owner['module']}:build", f"{module}:build"))
    monkeypatch.chdir(folder)
    code, out, err = here(capsys, "validate", path)
    assert code == 0, err
    monkeypatch.chdir(owner["dir"] / "..")
    code, out, err = here(capsys, "validate", config(owner, "nowhere.yaml", featurizer="none",
                                                     model={"builder": "not_here_at_all:build"}))
    assert (code, err) == (2, "auditkit: error: model.builder: cannot import module 'not_here_at_all' (No module named "
                              "'not_here_at_all'): install it, put it on PYTHONPATH, or put it in the current "
                              "directory or the configuration file's folder\n")


def test_none_refuses_text_and_a_categorical_list(capsys, owner, tmp_path):
    frame = pd.read_csv(owner["dir"] / "train.csv.gz")
    frame["age"] = frame["age"].astype(str) + " years"
    frame.to_csv(owner["dir"] / "text.csv", index=False)
    code, _, err = here(capsys, "validate", config(owner, "text.yaml", featurizer="none", train="text.csv"))
    dtype = pd.read_csv(owner["dir"] / "text.csv")["age"].dtype                # object, or str with pandas 3
    assert (code, err) == (2, f"auditkit: error: data.featurizer none takes numbers as given, but feature column 'age' "
                              f"has dtype {dtype}: encode it as the model was trained (numbers), or set "
                              "data.featurizer: tabular\n")
    code, _, err = here(capsys, "validate", config(owner, "cat.yaml", featurizer="none", categorical=["sex_Male"]))
    assert (code, err) == (2, "auditkit: error: data.featurizer 'none' takes the columns as given, but "
                              "data.categorical lists 'sex_Male' to encode: remove data.categorical, or set "
                              "data.featurizer: tabular\n")


def test_the_examples_pass_the_check(capsys):
    for name in ("heart_disease", "german_credit", "spam"):
        code, out, err = here(capsys, "validate", ROOT / f"examples/{name}/audit.yaml")
        assert code == 0, err
        assert "of its size with shuffled labels\n" in out
