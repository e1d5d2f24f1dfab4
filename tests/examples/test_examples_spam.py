"""The spam example: the committed data is the documented file, the configuration loads, the committed weights
reproduce the stated test accuracy, and the test emails it asks to explain are legitimate mail the model flags.
The full audit is not run here."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
import torch
from example_checks import ROOT, accuracy, load_example, objective_gradient

EXAMPLE = ROOT / "examples" / "spam"


@pytest.fixture(scope="module")
def loaded():
    return load_example("spam")


def test_data_file_matches_its_source_note():
    path = EXAMPLE / "data" / "spam7.csv"
    assert f"`{hashlib.sha256(path.read_bytes()).hexdigest()}`" in (EXAMPLE / "data" / "SOURCE.md").read_text()
    df = pd.read_csv(path)
    assert list(df.columns) == ["id", "crl.tot", "dollar", "bang", "money", "n000", "make", "yesno"]
    assert len(df) == 4601 and (df["yesno"] == "y").sum() == 1813  # DAAG's help page: 4601 emails, 1813 spam
    assert df["id"].tolist() == list(range(1, 4602))
    assert df["crl.tot"].max() == 15841 and df["bang"].max() == 32.478


def test_config_and_data(loaded):
    config, data, _ = loaded
    splits = data.splits
    assert {k: v.n for k, v in splits.items()} == {"train": 2531, "test": 1150, "holdout": 920}
    assert splits["train"].X.shape[1] == config.model.builder_args["n_features"] == 6
    assert list(splits["test"].groups.columns) == ["capitals_band"]
    assert splits["train"].classes[splits["train"].favourable_index] == "n"
    np.testing.assert_allclose(splits["train"].X.mean(axis=0), 0, atol=1e-12)  # standardised on train


def test_committed_weights_reproduce_the_stated_accuracy(loaded):
    _, data, model = loaded
    assert abs(accuracy(model, data.splits["test"]) - 989 / 1150) < 1e-9  # 86.0 %


def test_committed_weights_are_at_a_minimum_of_the_audited_objective(loaded):
    config, data, model = loaded
    assert objective_gradient(config, model, data.splits["train"]) < 1e-8


def test_explained_records_are_legitimate_emails_the_model_flags(loaded):
    config, data, model = loaded
    test = data.splits["test"]
    chosen = config.audits["fairness"]["explain"]["records"]
    assert len(chosen) == 5
    position = {str(i): k for k, i in enumerate(test.ids)}
    rows = np.array([position[r] for r in chosen])
    with torch.no_grad():
        predicted = model(torch.tensor(test.X[rows])).argmax(1).numpy()
    assert (test.y[rows] == test.favourable_index).all()      # truly legitimate (n)
    assert (predicted != test.favourable_index).all()         # flagged as spam
