"""The real data sets bundled with the examples, and a small featurizer for them.

- UCI Heart Disease (920 patients from four hospitals; see ``heart_disease/data/SOURCE.md``).
- Statlog German Credit (1,000 applicants; see ``german_credit/data/SOURCE.md``).

``prepare(name)`` gives a deterministic train/test split and float64 feature matrices, with
``auditkit.data.TabularFeaturizer`` (median imputation + missing indicators + standardisation for numbers,
one-hot with an explicit "missing" level for categories) fitted on the training split only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from auditkit.data import TabularFeaturizer

HERE = Path(__file__).resolve().parent

HEART_NUMERIC = ["age", "trestbps", "chol", "thalch", "oldpeak", "ca"]
HEART_CATEGORICAL = ["sex", "dataset", "cp", "fbs", "restecg", "exang", "slope", "thal"]

GERMAN_COLUMNS = ["status", "duration", "credit_history", "purpose", "credit_amount", "savings",
                  "present_employment", "installment_rate", "status_sex", "other_debtors",
                  "present_residence_since", "property", "age", "installment_plans", "housing",
                  "number_of_existing_credits", "job", "number_of_people_liable_for", "telephone",
                  "foreign_worker", "credit"]
GERMAN_NUMERIC = ["duration", "credit_amount", "installment_rate", "present_residence_since", "age",
                  "number_of_existing_credits", "number_of_people_liable_for"]
GERMAN_CATEGORICAL = ["status", "credit_history", "purpose", "savings", "present_employment",
                      "other_debtors", "property", "installment_plans", "housing", "job", "telephone",
                      "foreign_worker", "sex"]


def load_heart_disease() -> pd.DataFrame:
    """One row per patient; ``target`` is 1 when heart disease is present (``num`` > 0)."""
    df = pd.read_csv(HERE / "heart_disease" / "data" / "heart_disease_uci.csv")
    for col in ("chol", "trestbps"):  # 0 mmHg and 0 mg/dl are how some hospitals recorded "not measured"
        df.loc[df[col] == 0, col] = np.nan
    df["target"] = (df["num"] > 0).astype(int)
    return df


def load_german_credit() -> pd.DataFrame:
    """One row per applicant; ``target`` is 1 for good credit; ``sex`` is decoded from ``status_sex``."""
    data = HERE / "german_credit" / "data"
    df = pd.read_csv(data / "german.data", sep=" ", names=GERMAN_COLUMNS, header=None, index_col=False)
    maps = json.loads((data / "values_maps.json").read_text())
    for col, mapping in maps.items():
        if col in df:
            df[col] = df[col].map(lambda v, m=mapping: m.get(v, v))  # codes → words; others unchanged
    df["sex"] = np.where(df["status_sex"].astype(str).str.contains("female"), "female", "male")
    df["target"] = (df["credit"] == 1).astype(int)
    df.insert(0, "id", np.arange(1, len(df) + 1))
    return df


@dataclass
class Prepared:
    """A split data set: raw frames, float64 features and integer labels."""

    train: pd.DataFrame
    test: pd.DataFrame
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    feature_names: list[str]


def split(df: pd.DataFrame, *, test_fraction: float = 0.25, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deterministic split, stratified by ``target``."""
    rng = np.random.default_rng(seed)
    test_idx = []
    for _, rows in df.groupby("target"):
        idx = rng.permutation(rows.index.to_numpy())
        test_idx.extend(idx[: int(round(test_fraction * len(idx)))])
    test_mask = df.index.isin(test_idx)
    return df[~test_mask].reset_index(drop=True), df[test_mask].reset_index(drop=True)


def prepare(name: str, *, test_fraction: float = 0.25, seed: int = 0) -> Prepared:
    """``"heart_disease"`` or ``"german_credit"``, split and encoded (featurizer fitted on train only)."""
    if name == "heart_disease":
        df, numeric, categorical = load_heart_disease(), HEART_NUMERIC, HEART_CATEGORICAL
    elif name == "german_credit":
        df, numeric, categorical = load_german_credit(), GERMAN_NUMERIC, GERMAN_CATEGORICAL
    else:
        raise ValueError(f"unknown data set {name!r}: use 'heart_disease' or 'german_credit'")
    train, test = split(df, test_fraction=test_fraction, seed=seed)
    enc = TabularFeaturizer().fit(train, numeric + categorical)
    return Prepared(train, test, enc.transform(train), train["target"].to_numpy(np.int64),
                    enc.transform(test), test["target"].to_numpy(np.int64), enc.feature_names_)
