"""Property-based tests (hypothesis) of configuration and data validation: whatever the input, the answer is a
valid object or ONE line of :class:`InputError`, never another exception; what is accepted satisfies the
invariants the audit relies on. Examples are derandomised (the same ones every run, as CI needs), and
hypothesis shrinks a failure to a minimal input."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_support import example_doc, make_case

from auditkit.config import AuditConfig, load_config, parse_config
from auditkit.data import DataSpec, prepare_splits
from auditkit.errors import InputError
from auditkit.inputs import load_data
from auditkit.runner import check_config

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                    st.sampled_from(["auto", "exact", "cg", "float32", "bce", "warm_start", "os:system", "-1", "",
                                     "examples.heart_disease.model:build", "../../etc/passwd", "builtin:none"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=6)


def paths(doc, prefix=()):
    """Every key path of a nested document (mappings and lists)."""
    out = []
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else []
    for key, value in items:
        out.append(prefix + (key,))
        out += paths(value, prefix + (key,))
    return out


BASE = example_doc()
PATHS = paths(BASE)


@st.composite
def mutated_configs(draw):
    """The example's configuration with 1-3 random edits: a value replaced, a key removed or a key added."""
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        parent = doc
        try:
            for key in path[:-1]:
                parent = parent[key]
            action = draw(st.sampled_from(["replace", "delete", "add"]))
            if action == "replace":
                parent[path[-1]] = draw(values)
            elif action == "delete" and isinstance(parent, dict):
                parent.pop(path[-1], None)
            elif isinstance(parent, dict):
                parent[draw(st.text(min_size=1, max_size=8))] = draw(values)
        except (KeyError, IndexError, TypeError):
            continue                                  # an earlier edit removed or replaced the path
    return doc


def one_line(exc: InputError) -> str:
    text = str(exc)
    assert text and "\n" not in text and "Traceback" not in text, text
    return text


@SETTINGS
@given(mutated_configs())
def test_any_edit_of_a_valid_configuration_is_valid_or_one_input_error(doc):
    try:
        config = parse_config(doc)
    except InputError as exc:
        one_line(exc)
        return
    assert isinstance(config, AuditConfig)
    # what the schema promises (sensitive may be empty: the fairness audit's need of it is check_config's, runner)
    assert config.model.name and all(s.column for s in config.data.sensitive)
    assert config.influence.damping == "auto" or config.influence.damping >= 0


@SETTINGS
@given(st.text(alphabet=st.sampled_from(list("abc:-[]{}!&*|>#'\" \n\t0123.,?%@`") + ["\x00", "é"]),
               max_size=60))
def test_any_text_as_audit_yaml_is_valid_or_one_input_error(tmp_path, text):
    path = tmp_path / "audit.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as info:                                  # no text this short is a whole audit
        load_config(path)
    one_line(info.value)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    folder = tmp_path_factory.mktemp("case")
    make_case(folder)
    return folder


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.dictionaries(st.sampled_from(["fairness", "privacy", "data_quality", "robustness", "os:system"]),
                       st.one_of(st.none(), st.dictionaries(st.sampled_from(
                           ["bootstrap", "min_group_size", "budget", "confidence", "seed", "attributes", "holdout",
                            "intersections", "reference_models", "bogus"]), values, max_size=3)), max_size=3),
       st.one_of(st.none(), st.sampled_from(["eu-ai-act-high-risk", "clinical-privacy", "nyc-ll144-impact-ratio",
                                             "no-such-policy", "policy.yaml"]), st.lists(st.sampled_from(
                                                 ["eu-ai-act-high-risk", "clinical-privacy"]), max_size=2)))
def test_any_plugin_options_and_policy_are_accepted_or_refused_in_one_line(case, audits, policy):
    doc = yaml.safe_load((case / "audit.yaml").read_text())
    doc["audits"], doc["policy"] = audits, policy
    try:
        check_config(parse_config(doc, base_dir=case))
    except InputError as exc:
        one_line(exc)


IDS = [f"mrn{i:012x}" for i in range(40)]

#: (clean values, hostile values) of each column: a table starts clean, then a few cells of some columns turn hostile
COLUMNS = {
    "x": (st.floats(-1e3, 1e3), st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e308, -0.0])),
    "t": (st.sampled_from(["a", "b", "c"]), st.sampled_from([None, "1", "2.5", " 3 ", "n/a", "", "é", "a\nb"])),
    "y": (st.sampled_from(["yes", "no"]), st.sampled_from([None, "maybe", 0, 1, float("nan")])),
    "s": (st.sampled_from(["F", "M"]), st.sampled_from([None, "X", "", "<b>F</b>"])),
    "id": (st.just(None), st.sampled_from([None, IDS[0], "", " "])),       # clean ids are IDS[:n], set below
    "b": (st.booleans(), st.sampled_from([None, "yes", 2])),
}


@st.composite
def frames(draw):
    """A table of 1-12 records, clean (distinct ids, two labels, two groups, numbers and categories) until
    a few cells of some columns are made hostile: NaN, ±inf, huge numbers, text among numbers, missing or
    unknown labels, missing, empty or repeated ids, unseen groups."""
    n = draw(st.integers(1, 12))
    data = {name: draw(st.lists(clean, min_size=n, max_size=n)) for name, (clean, _) in COLUMNS.items()}
    data["id"] = IDS[:n]
    for name, (_, hostile) in COLUMNS.items():
        if draw(st.integers(0, 3)) == 0:                                # a quarter of the columns are damaged
            for row in draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=3)):
                data[name][row] = draw(hostile)
    return pd.DataFrame(data)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(frames(), frames(), st.sampled_from([("x", "t", "b"), ("x",), ("t",), None]))
def test_any_table_is_prepared_or_refused_in_one_line(train, test, features):
    spec = DataSpec(target="y", sensitive=("s",), id_column="id", features=features)
    try:
        splits = prepare_splits({"train": train, "test": test}, spec)
    except InputError as exc:
        message = one_line(exc)
        assert not any(i in message for i in IDS)                  # an error names positions, never ids
        return
    for name, frame in (("train", train), ("test", test)):
        split = splits[name]
        assert split.X.shape[0] == len(frame) and np.isfinite(split.X).all()
        assert len(set(split.ids)) == len(frame)                   # ids present and unique
        assert set(split.y) <= set(range(len(split.classes))) and len(split.classes) >= 2
        assert (split.groups["s"] == "unknown").sum() == frame["s"].isna().sum()


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_damage_to_the_example_table_is_loaded_or_refused_in_one_line(case, tmp_path, data):
    """Random damage to the real table as a CSV file (cells blanked, set to text, ±inf or another row's id;
    rows dropped): load_data either gives finite features and unique ids, or refuses in one line."""
    frame = pd.read_csv(case / "patients.csv", dtype={"id": str})
    rows = data.draw(st.lists(st.integers(0, len(frame) - 1), min_size=1, max_size=6))
    column = data.draw(st.sampled_from(["age", "chol", "sex", "cp", "disease", "id", "thalch"]))
    value = data.draw(st.sampled_from([None, "n/a", "inf", "-inf", "1e400", "Other", "0", "mrn000000000000"]))
    frame[column] = frame[column].astype(object)
    frame.loc[rows, column] = value
    if data.draw(st.booleans()):
        frame = frame.iloc[: data.draw(st.integers(0, 12))]
    frame.to_csv(tmp_path / "patients.csv", index=False)
    (tmp_path / "audit.yaml").write_text(yaml.safe_dump(example_doc()))
    config = load_config(tmp_path / "audit.yaml")
    try:
        loaded = load_data(config)
    except InputError as exc:
        one_line(exc)
        return
    for split in loaded.splits.values():
        assert np.isfinite(split.X).all() and len(set(split.ids)) == split.n
        assert split.X.shape[1] == loaded.splits["train"].X.shape[1]
    assert not math.isnan(float(loaded.splits["train"].y.sum()))
