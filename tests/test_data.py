"""auditkit.data: loading, featurizing and validating tabular audit data; error messages word for word."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from auditkit.data import AuditData, DataSpec, TabularFeaturizer, age_bands, load_table, prepare_splits
from auditkit.errors import InputError, NotFittedError

HEART = Path(__file__).resolve().parents[1] / "examples" / "heart_disease" / "data" / "heart_disease_uci.csv"


def exact(message: str) -> str:
    return "^" + re.escape(message) + "$"


@pytest.fixture
def train() -> pd.DataFrame:
    return pd.DataFrame({
        "id": ["007", "008", "009", "010", "011", "012", "013", "014"],
        "age": [25.0, 35.0, 45.0, 55.0, 65.0, 75.0, np.nan, 50.0],
        "income": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
        "sex": ["F", "M", "F", None, "M", "F", "M", "F"],
        "region": ["north", "south", "east", "north", None, "south", "east", "north"],
        "owner": [True, False, True, True, False, False, True, False],
        "y": ["bad", "good", "good", "bad", "good", "bad", "good", "good"],
    })


@pytest.fixture
def test() -> pd.DataFrame:
    return pd.DataFrame({
        "id": ["100", "101", "102"],
        "age": [np.nan, 30.0, 90.0],
        "income": [2.0, 100.0, 3.0],
        "sex": ["M", None, None],
        "region": ["west", "north", None],
        "owner": [True, False, True],
        "y": ["good", "bad", "good"],
    })


SPEC = DataSpec(target="y", sensitive=("sex",), id_column="id")


def assert_same(a: AuditData, b: AuditData) -> None:
    assert a.name == b.name and a.classes == b.classes and a.favourable_index == b.favourable_index
    assert a.feature_names == b.feature_names
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.ids, b.ids)
    pd.testing.assert_frame_equal(a.groups, b.groups)
    pd.testing.assert_frame_equal(a.frame, b.frame, check_dtype=False)


# ---------------------------------------------------------------- loading and round trips


def test_round_trip_dataframe_csv_parquet(tmp_path, train, test):
    from_frames = prepare_splits({"train": train, "test": test}, SPEC)
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    train.to_parquet(tmp_path / "train.parquet", index=False)
    test.to_parquet(tmp_path / "test.pq", index=False)
    from_csv = prepare_splits({"train": tmp_path / "train.csv", "test": str(tmp_path / "test.csv")}, SPEC)
    from_parquet = prepare_splits({"train": tmp_path / "train.parquet", "test": tmp_path / "test.pq"}, SPEC)
    for other in (from_csv, from_parquet):
        assert list(other) == ["train", "test"]
        for name in ("train", "test"):
            assert_same(from_frames[name], other[name])
    assert from_csv["train"].ids[0] == "007"  # ids read from CSV as text keep their leading zeros


def test_load_table_copies_a_dataframe(train):
    loaded = load_table(train)
    loaded.loc[0, "age"] = -1.0
    assert train.loc[0, "age"] == 25.0


def test_prepared_fields(train, test):
    d = prepare_splits({"train": train, "test": test}, SPEC)
    tr, te = d["train"], d["test"]
    assert tr.classes == ["bad", "good"] and te.classes == ["bad", "good"]
    assert tr.favourable_index == 1  # binary target, favourable=None: the last class in sorted order
    assert tr.y.dtype == np.int64 and tr.y.tolist() == [0, 1, 1, 0, 1, 0, 1, 1]
    assert te.y.tolist() == [1, 0, 1]
    assert tr.X.dtype == np.float64 and tr.X.shape == (8, len(tr.feature_names)) and tr.n == 8 and te.n == 3
    assert tr.ids.tolist() == ["007", "008", "009", "010", "011", "012", "013", "014"]
    assert te.ids.tolist() == ["100", "101", "102"]
    assert list(tr.frame.index) == list(range(8))
    assert tr.feature_names == ["age", "income", "age_missing",
                                "sex=F", "sex=M", "sex=missing",
                                "region=east", "region=missing", "region=north", "region=south",
                                "owner=False", "owner=True"]


def test_ids_default_to_row_positions(train):
    d = prepare_splits({"train": train.drop(columns="id")}, DataSpec(target="y"))
    assert d["train"].ids.tolist() == [f"row-{i}" for i in range(8)]


def test_favourable_chosen_explicitly(train):
    d = prepare_splits({"train": train}, DataSpec(target="y", id_column="id", favourable="bad"))
    assert d["train"].favourable_index == 0
    numeric = train.assign(y=(train["y"] == "good").astype(int))
    assert prepare_splits({"train": numeric}, DataSpec(target="y", id_column="id"))["train"].favourable_index == 1
    assert prepare_splits({"train": numeric}, DataSpec(target="y", favourable=0))["train"].classes == [0, 1]


# ---------------------------------------------------------------- featurizer


def test_featurizer_fitted_on_train_only(train, test):
    d = prepare_splits({"train": train, "test": test}, SPEC)
    names, X = d["test"].feature_names, d["test"].X
    col = {n: j for j, n in enumerate(names)}
    # a level seen only in test ("west") maps to all zeros of that column's one-hot
    region = [col["region=east"], col["region=missing"], col["region=north"], col["region=south"]]
    assert X[0, region].tolist() == [0.0] * 4
    # a missing region in test maps to the training "missing" level
    assert X[2, col["region=missing"]] == 1.0
    # a missing age in test is imputed with the TRAIN median, standardised with train mean/std
    age = train["age"].fillna(train["age"].median())
    assert X[0, col["age"]] == pytest.approx((train["age"].median() - age.mean()) / age.std())
    assert X[0, col["age_missing"]] == 1.0 and X[1, col["age_missing"]] == 0.0
    assert X[1, col["income"]] == pytest.approx((100.0 - 4.5) / train["income"].std())
    # income had no missing values in train: no indicator column; train columns are standardised
    assert "income_missing" not in names
    np.testing.assert_allclose(d["train"].X[:, col["age"]].mean(), 0.0, atol=1e-12)
    np.testing.assert_allclose(d["train"].X[:, col["age"]].std(ddof=1), 1.0)
    # the test split does not move the fit: the same train matrix with or without it
    alone = prepare_splits({"train": train}, SPEC)["train"]
    np.testing.assert_array_equal(alone.X, d["train"].X)


def test_featurizer_constant_column_and_forced_categorical(train):
    frame = train.assign(const=3.0, code=[1, 2, 1, 2, 3, 1, 2, 3])
    f = TabularFeaturizer(categorical=["code"]).fit(frame, ["const", "code"])
    assert f.feature_names_ == ["const", "code=1", "code=2", "code=3"]
    X = f.transform(frame)
    assert X[:, 0].tolist() == [0.0] * 8  # std 0 → 1
    assert X[:2, 1:].tolist() == [[1, 0, 0], [0, 1, 0]]


def test_featurizer_errors(train):
    with pytest.raises(NotFittedError, match=exact("TabularFeaturizer is not fitted: call fit(train_frame) first")):
        TabularFeaturizer().transform(train)
    f = TabularFeaturizer().fit(train, ["age", "sex"])
    with pytest.raises(InputError, match=exact(
            "the table has no feature column 'sex'; available columns are ['age']: "
            "transform tables with the columns the featurizer was fitted on")):
        f.transform(train[["age"]])
    with pytest.raises(InputError, match=exact(
            "numeric feature column 'age' has 1 non-numeric values: convert them to numbers or missing values")):
        f.transform(train.assign(age=["x", 1, 2, 3, 4, 5, 6, 7]))
    with pytest.raises(InputError, match=exact(
            "numeric feature column 'age' has no values in the training data: fill it or leave it out of the "
            "features")):
        TabularFeaturizer().fit(train.assign(age=np.nan), ["age"])
    with pytest.raises(InputError, match=exact(
            "TabularFeaturizer categorical column 'cod' is not among the features ['age']: fix the name or "
            "remove it")):
        TabularFeaturizer(categorical=["cod"]).fit(train, ["age"])


def test_sensitive_attributes_are_inputs_only_when_listed(train, test):
    spec = DataSpec(target="y", sensitive=("sex", "region"), id_column="id", features=("age", "income"))
    d = prepare_splits({"train": train, "test": test}, spec)
    assert d["train"].feature_names == ["age", "income", "age_missing"]
    assert list(d["train"].groups.columns) == ["sex", "region"]


def test_missing_sensitive_values_become_unknown_and_are_counted(train, test):
    spec = DataSpec(target="y", sensitive=("sex", "region", "owner"), id_column="id")
    d = prepare_splits({"train": train, "test": test}, spec)
    assert d["train"].unknown_counts() == {"sex": 1, "region": 1, "owner": 0}
    assert d["test"].unknown_counts() == {"sex": 2, "region": 1, "owner": 0}
    assert d["test"].n == 3 and len(d["test"].groups) == 3  # never dropped
    assert d["test"].groups["sex"].tolist() == ["M", "unknown", "unknown"]
    assert d["train"].groups["owner"].tolist()[:2] == ["True", "False"]


def test_user_featurizers(train, test):
    class Mean:
        def fit(self, frame):
            self.mean_ = float(frame["income"].mean())
            self.feature_names_ = ["income_centered"]
            return self

        def transform(self, frame):
            return (frame[["income"]] - self.mean_).to_numpy()

    d = prepare_splits({"train": train, "test": test}, SPEC, featurizer=Mean())
    assert d["train"].feature_names == ["income_centered"]
    assert d["test"].X[:, 0].tolist() == [-2.5, 95.5, -1.5]

    def plain(frame):
        return pd.DataFrame({"a": frame["income"] * 2.0, "b": 1.0})

    d = prepare_splits({"train": train, "test": test}, SPEC, featurizer=plain)
    assert d["test"].feature_names == ["a", "b"] and d["test"].X.tolist() == [[4, 1], [200, 1], [6, 1]]
    d = prepare_splits({"train": train}, SPEC, featurizer=lambda f: np.ones((len(f), 2)))
    assert d["train"].feature_names == ["x0", "x1"]


@pytest.mark.parametrize(("featurizer", "message"), [
    (lambda f: np.ones(len(f)), "featurizer output for split 'train' has 1 dimensions (shape (8,)): return a 2-D "
                                "array, one row per record"),
    (lambda f: np.ones((3, 2)), "featurizer output for split 'train' has 3 rows for 8 records: return one row per "
                                "record, in order"),
    (lambda f: np.ones((len(f), 2 if len(f) == 8 else 3)),
     "featurizer output for split 'test' has 3 columns but the train split has 2: transform every split to the "
     "same features"),
    (lambda f: f[["income"]].assign(z=np.where(f["income"] > 50, np.inf, 0.0)),
     "split 'test' has 1 non-finite values after featurization (features 'z'): replace infinities in the input "
     "or fix the featurizer"),
    (lambda f: f[["sex"]].fillna("?"), "featurizer output for split 'train' cannot be converted to floats (could "
                                       "not convert string to float: 'F'): return a numeric 2-D array"),
    (42, "featurizer must be an object with fit(frame) and transform(frame), or a callable frame -> array; got int"),
])
def test_bad_user_featurizer(train, test, featurizer, message):
    with pytest.raises(InputError, match=exact(message)):
        prepare_splits({"train": train, "test": test}, SPEC, featurizer=featurizer)


# ---------------------------------------------------------------- bad input, word for word


FORMATS = ".csv (or .csv.gz, .csv.bz2, .csv.xz, .csv.zst, .csv.zip), .parquet or .pq"


def test_load_table_errors(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(InputError, match=exact(
            f"table file {str(missing)!r} does not exist: pass a path to a {FORMATS} file, or a pandas DataFrame")):
        load_table(missing)
    xlsx = tmp_path / "data.xlsx"
    xlsx.write_text("x")
    with pytest.raises(InputError, match=exact(
            f"table file {str(xlsx)!r} has an unsupported suffix '.xlsx': supported formats are {FORMATS} (or pass "
            "a pandas DataFrame)")):
        load_table(xlsx)
    gz = tmp_path / "data.txt.gz"
    gz.write_bytes(b"x")
    with pytest.raises(InputError, match=exact(
            f"table file {str(gz)!r} has an unsupported suffix '.txt.gz': supported formats are {FORMATS} (or pass "
            "a pandas DataFrame)")):
        load_table(gz)
    broken = tmp_path / "broken.parquet"
    broken.write_text("this is not parquet")
    with pytest.raises(InputError, match="^" + re.escape(f"could not read table file {str(broken)!r} as Parquet (")
                       + r".+" + re.escape("): check that it is a valid Parquet file") + "$"):
        load_table(broken)
    with pytest.raises(InputError, match=exact(
            f"table source must be a pandas DataFrame or a path to a {FORMATS} file; got list")):
        load_table([[1, 2]])


@pytest.mark.parametrize("name", ["t.csv.gz", "t.CSV.GZ", "t.csv.bz2", "t.csv.xz", "t.parquet"])
def test_tables_as_people_keep_them_read_back_equal(name, tmp_path):
    frame = pd.DataFrame({"id": ["007", "010"], "x": [0.125, -3.5], "c": ["a", "b"]})
    path = tmp_path / name
    if name.endswith("parquet"):
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False, compression={".gz": "gzip", ".bz2": "bz2", ".xz": "xz"}[path.suffix.lower()])
    pd.testing.assert_frame_equal(load_table(path, id_column="id"), frame, check_dtype=False)


def test_missing_columns(train):
    cols = "['id', 'age', 'income', 'sex', 'region', 'owner', 'y']"
    cases = [
        (DataSpec(target="label"), f"split 'train' has no target column 'label'; available columns are {cols}: "
                                   f"fix DataSpec.target or the table"),
        (DataSpec(target="y", id_column="key"), f"split 'train' has no id column 'key'; available columns are "
                                                f"{cols}: fix DataSpec.id_column or the table"),
        (DataSpec(target="y", sensitive="race"), f"split 'train' has no sensitive column 'race'; available columns "
                                                 f"are {cols}: fix DataSpec.sensitive or the table"),
        (DataSpec(target="y", features=("age", "height")), f"split 'train' has no feature column 'height'; available "
                                                           f"columns are {cols}: fix DataSpec.features or the table"),
    ]
    for spec, message in cases:
        with pytest.raises(InputError, match=exact(message)):
            prepare_splits({"train": train}, spec)


def test_feature_column_missing_in_test_only(train, test):
    with pytest.raises(InputError, match=exact(
            "split 'test' has no feature column 'income'; available columns are ['id', 'age', 'sex', 'region', "
            "'owner', 'y']: fix DataSpec.features or the table")):
        prepare_splits({"train": train, "test": test.drop(columns="income")}, SPEC)


def test_missing_target_values(train):
    with pytest.raises(InputError, match=exact(
            "split 'train' has 2 missing values in target column 'y': drop or label those records before the audit")):
        prepare_splits({"train": train.assign(y=["good", None, "bad", None, "good", "bad", "bad", "good"])}, SPEC)


def test_duplicate_ids_do_not_print_the_identifier(train):
    ids = ["007", "008", "007", "010", "007", "008", "013", "013"]
    with pytest.raises(InputError, match=exact(
            "split 'train' has 4 duplicate values in id column 'id' (0-based rows 2, 4, 5, ...): record ids must be "
            "unique within a split")) as info:
        prepare_splits({"train": train.assign(id=ids)}, SPEC)
    assert "007" not in str(info.value) and "013" not in str(info.value)


def test_missing_ids(train):
    with pytest.raises(InputError, match=exact(
            "split 'train' has 1 missing values in id column 'id': every record needs an id")):
        prepare_splits({"train": train.assign(id=[None, "1", "2", "3", "4", "5", "6", "7"])}, SPEC)


def test_empty_split(train, test):
    with pytest.raises(InputError, match=exact("split 'test' has no rows: pass a table with at least one record")):
        prepare_splits({"train": train, "test": test.iloc[:0]}, SPEC)


def test_no_train_split(train):
    with pytest.raises(InputError, match=exact(
            "splits has no 'train' split; got ['fit', 'test']: the featurizer and the classes are taken from a "
            "split named 'train'")):
        prepare_splits({"fit": train, "test": train}, SPEC)


def test_single_class(train):
    with pytest.raises(InputError, match=exact(
            "target column 'y' has a single class ('good') in the train split: the audit needs at least two classes")):
        prepare_splits({"train": train.assign(y="good")}, SPEC)


def test_test_labels_not_in_train(train, test):
    with pytest.raises(InputError, match=exact(
            "split 'test' has 2 records with target values not seen in the train split: ['maybe']; every class must "
            "occur in train")):
        prepare_splits({"train": train, "test": test.assign(y=["good", "maybe", "maybe"])}, SPEC)


def test_favourable_not_a_class(train):
    with pytest.raises(InputError, match=exact(
            "favourable 'ok' is not one of the classes of target 'y': ['bad', 'good']; use one of them")):
        prepare_splits({"train": train}, DataSpec(target="y", favourable="ok"))
    with pytest.raises(InputError, match=exact(
            "favourable '1' is not one of the classes of target 'y': [0, 1]; use one of them")):
        prepare_splits({"train": train.assign(y=[0, 1] * 4)}, DataSpec(target="y", favourable="1"))


def test_multiclass_needs_favourable(train):
    frame = train.assign(y=[0, 1, 2] * 2 + [0, 1])
    with pytest.raises(InputError, match=exact(
            "target column 'y' has 3 classes [0, 1, 2]: set DataSpec.favourable to the favourable one")):
        prepare_splits({"train": frame}, DataSpec(target="y"))
    assert prepare_splits({"train": frame}, DataSpec(target="y", favourable=2))["train"].favourable_index == 2


def test_infinite_numbers_are_refused_in_every_split(train, test):
    message = exact("numeric feature column 'income' has 1 infinite value(s): replace infinities with numbers, or "
                    "leave them empty (missing values are imputed)")
    with pytest.raises(InputError, match=message):
        prepare_splits({"train": train, "test": test.assign(income=[1.0, np.inf, 2.0])}, SPEC)
    with pytest.raises(InputError, match=message):          # in training data too, before any statistic is taken
        prepare_splits({"train": train.assign(income=[-np.inf] + list(train["income"][1:])), "test": test}, SPEC)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"target": ""}, "DataSpec target must be a column name (non-empty string); got ''"),
    ({"target": "y", "features": ("age", "y")}, "DataSpec target 'y' is also listed in features: remove it from "
                                               "features"),
    ({"target": "y", "id_column": "id", "features": ("id", "age")},
     "DataSpec id_column 'id' is also listed in features: record ids must not be model inputs; remove it from "
     "features"),
    ({"target": "y", "sensitive": ("sex", "sex")}, "DataSpec sensitive lists 'sex' more than once: list each column "
                                                    "once"),
    ({"target": "y", "sensitive": ("y",)}, "DataSpec target 'y' is also listed in sensitive: remove it from "
                                           "sensitive"),
    ({"target": "y", "features": ()}, "DataSpec features is empty: list at least one column, or pass None for every "
                                      "column except the target and the id column"),
])
def test_bad_spec(kwargs, message):
    with pytest.raises(InputError, match=exact(message)):
        DataSpec(**kwargs)


def test_spec_accepts_a_single_sensitive_name_and_lists():
    spec = DataSpec(target="y", sensitive="sex", features=["age", "sex"])
    assert spec.sensitive == ("sex",) and spec.features == ("age", "sex")


# ---------------------------------------------------------------- age bands


def test_age_bands():
    ages = pd.Series([18, 39.9, 40, 59, 59.5, 60, 95, np.nan], name="age", index=range(10, 18))
    bands = age_bands(ages)
    assert bands.tolist() == ["<40", "<40", "40-59", "40-59", "40-59", "60+", "60+", "unknown"]
    assert bands.name == "age" and list(bands.index) == list(range(10, 18))
    assert age_bands(pd.Series([17.0, 18.5, 30.0]), edges=(18.5, 25)).tolist() == ["<18.5", "18.5-<25", "25+"]
    with pytest.raises(InputError, match=exact(
            "age_bands edges must be finite and strictly increasing, at least one; got [60.0, 40.0]")):
        age_bands(ages, edges=(60, 40))
    with pytest.raises(InputError, match=exact(
            "age_bands needs numbers; column 'age' has 1 non-numeric values: convert them to numbers or missing "
            "values")):
        age_bands(pd.Series(["old", 30], name="age"))


# ---------------------------------------------------------------- real data


def test_heart_disease_real_data():
    raw = load_table(HEART)
    assert raw.shape == (920, 16)
    frame = raw.assign(target=(raw["num"] > 0).astype(int), age_band=age_bands(raw["age"]))
    rng = np.random.default_rng(0)
    test_mask = rng.random(len(frame)) < 0.25
    features = ("age", "sex", "dataset", "cp", "trestbps", "chol", "fbs", "restecg", "thalch", "exang", "oldpeak",
                "slope", "ca", "thal")
    spec = DataSpec(target="target", sensitive=("sex", "age_band"), id_column="id", features=features, favourable=0)
    d = prepare_splits({"train": frame[~test_mask], "test": frame[test_mask]}, spec)
    tr, te = d["train"], d["test"]
    assert tr.n + te.n == 920 and tr.X.shape[1] == te.X.shape[1] == len(tr.feature_names)
    assert np.isfinite(tr.X).all() and np.isfinite(te.X).all()
    assert tr.classes == [0, 1] and tr.favourable_index == 0  # favourable: no heart disease
    assert tr.y.tolist() == (frame[~test_mask]["target"]).tolist()
    names = tr.feature_names
    assert names[:6] == ["age", "trestbps", "chol", "thalch", "oldpeak", "ca"]
    assert {"ca_missing", "chol_missing", "sex=Male", "sex=Female", "dataset=Cleveland", "thal=missing",
            "fbs=True", "fbs=False", "fbs=missing"} <= set(names)
    assert not any(n.startswith(("num", "id", "age_band", "target")) for n in names)  # no leak of target or id
    assert set(tr.groups["age_band"]) <= {"<40", "40-59", "60+"}
    assert tr.unknown_counts() == {"sex": 0, "age_band": 0}
    assert te.ids.tolist() == [str(i) for i in frame[test_mask]["id"]]
    # one-hot blocks are 0/1 with exactly one level per record in train
    sex = [j for j, n in enumerate(names) if n.startswith("sex=")]
    assert (tr.X[:, sex].sum(axis=1) == 1).all()


def test_featurizer_matches_the_formulas_written_in_pandas():
    """TabularFeaturizer (scikit-learn transformers inside) against its documented formulas computed with pandas
    on the real heart-disease table: median imputation, indicators, sample-std standardisation, sorted one-hots;
    a test table with unseen levels and missing values where training had none."""
    import pickle
    raw = load_table(HEART)
    features = ["age", "sex", "dataset", "cp", "trestbps", "chol", "fbs", "thalch", "oldpeak", "ca", "thal"]
    train, test = raw.iloc[::2].reset_index(drop=True), raw.iloc[1::2].reset_index(drop=True)
    test.loc[:4, "dataset"] = "Elsewhere"                  # a level never seen in training
    test.loc[:2, "age"] = np.nan                          # age has no missing values in training
    f = pickle.loads(pickle.dumps(TabularFeaturizer(categorical=["ca"]).fit(train, features)))
    numeric = ["age", "trestbps", "chol", "thalch", "oldpeak"]
    categorical = ["sex", "dataset", "cp", "fbs", "ca", "thal"]         # in feature order
    missing = [c for c in numeric if train[c].isna().any()]
    for frame in (train, test):
        parts = []
        for c in numeric:
            filled = train[c].fillna(train[c].median())
            parts.append((frame[c].fillna(train[c].median()) - filled.mean()) / filled.std(ddof=1))
        parts += [frame[c].isna().astype(float) for c in missing]
        names = numeric + [f"{c}_missing" for c in missing]
        for c in categorical:
            levels = sorted(train[c].astype("string").fillna("missing").unique())
            text = frame[c].astype("string").fillna("missing")
            parts += [(text == v).astype(float) for v in levels]
            names += [f"{c}={v}" for v in levels]
        expected = np.column_stack([np.asarray(p, dtype=np.float64) for p in parts])
        assert f.feature_names_ == names
        np.testing.assert_array_equal(f.transform(frame), expected)       # to the last bit
    X = f.transform(test)
    dataset = [j for j, n in enumerate(f.feature_names_) if n.startswith("dataset=")]
    assert X[:5, dataset].sum() == 0 and (X[5:, dataset].sum(axis=1) == 1).all()
    assert "age_missing" not in f.feature_names_ and np.isfinite(X).all()
