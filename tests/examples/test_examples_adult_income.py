"""The Adult-income example: its configuration loads, its committed tables are what model.py writes, and its
committed weights are the trained model (a stated test accuracy, a gradient at the tolerance). The full audit is
not run here (about 3-4 minutes on 2 cores)."""

from __future__ import annotations

import hashlib

import pytest
from example_checks import ROOT, accuracy, load_example, objective_gradient

EXAMPLE = ROOT / "examples" / "adult_income"


@pytest.fixture(scope="module")
def loaded():
    return load_example("adult_income")


def test_data_files_are_the_committed_ones():
    expected = {line.split()[1]: line.split()[0] for line in (EXAMPLE / "data" / "SOURCE.md").read_text().splitlines()
                if len(line.split()) == 2 and len(line.split()[0]) == 64}
    assert set(expected) == {"adult.data", "adult.test", "adult.names"}
    for name, digest in expected.items():
        assert hashlib.sha256((EXAMPLE / "data" / name).read_bytes()).hexdigest() == digest


def test_model_py_writes_the_committed_tables():
    from examples.adult_income.model import tables

    frames = tables()
    assert {k: len(v) for k, v in frames.items()} == {"train": 32561, "test": 8141, "holdout": 8140}
    for name, frame in frames.items():
        assert frame.to_csv(index=False) == (EXAMPLE / "model" / f"{name}.csv").read_text()


def test_config_and_data(loaded):
    config, data, _ = loaded
    splits = data.splits
    assert {k: v.n for k, v in splits.items()} == {"train": 32561, "test": 8141, "holdout": 8140}
    assert splits["train"].X.shape[1] == config.model.builder_args["n_features"] == 91
    assert list(splits["test"].groups.columns) == ["sex", "race", "age_band"]
    assert splits["train"].classes[splits["train"].favourable_index] == ">50K"
    assert set(config.audits) == {"fairness", "privacy", "data_quality"}


def test_committed_weights_reproduce_the_stated_accuracy(loaded):
    _, data, model = loaded
    assert abs(accuracy(model, data.splits["test"]) - 6981 / 8141) < 1e-9  # 85.75 %


def test_committed_weights_are_at_a_minimum_of_the_audited_objective(loaded):
    config, data, model = loaded
    assert objective_gradient(config, model, data.splits["train"]) < 1e-8
