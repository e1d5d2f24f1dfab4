"""One check of the feature values of every split (train, test, holdout alike), before anything is featurized.

The default featurizer (:class:`~auditkit.data.TabularFeaturizer`) decides each column's kind on the train split:
numbers, or categories (text, bool, or listed as categorical). Each split is then checked against that kind, so
that a bad value is named wherever it is, with its split, row and column, instead of surfacing later as a model
that "cannot take the featurized data" (a column of numbers with one ``"1,5"`` in the test split would otherwise
be read as text and one-hot encoded):

- a column of numbers (numeric in train, or text that is a number in at least ``MOSTLY_NUMERIC`` of train's rows)
  holds only numbers or empty cells, and no integer beyond the 64-bit range (``±9223372036854775807``: read as
  text, or rounded to a float, it would not mean what it says);
- with ``unseen_levels="refuse"`` (what ``auditkit run`` uses), a column of categories holds, in test and holdout,
  only levels seen in train (or empty cells): the model has no input for a level it never saw, and the featurizer
  would give such records all zeros in that column's one-hot, silently (what ``"zeros"``, the library default of
  :func:`~auditkit.data.prepare_splits`, keeps);
- no column holds dates or durations (convert them to numbers or categories first).

Rows are named by their position in the table they were read from (0-based, not counting a CSV header); values
are shown bounded; record ids are never shown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import pandas as pd

from .errors import InputError, shown

#: a text column whose values are numbers in at least this share of the train split's rows is a numeric column
MOSTLY_NUMERIC = 0.9
INT64_MAX = 2**63 - 1
INTEGER = re.compile(r"^[+-]?\d+$")


def _numbers(series: pd.Series) -> pd.Series:
    """Per present value: whether it reads as a number (text stripped of surrounding spaces)."""
    return pd.to_numeric(series.astype(str).str.strip(), errors="coerce").notna()


def is_numeric_column(train: pd.Series, declared_categorical: bool) -> bool:
    """Whether the featurizer treats the column as numbers, decided on the train split."""
    if declared_categorical or pd.api.types.is_bool_dtype(train):
        return False
    if pd.api.types.is_numeric_dtype(train):
        return True
    present = train.dropna()
    return len(present) > 0 and float(_numbers(present).mean()) >= MOSTLY_NUMERIC


def _where(rows: pd.Index, position: int) -> str:
    return f"row {rows[position]} of its table (0-based, header not counted)"


def _check_numbers(series: pd.Series, col: str, name: str, rows: pd.Index) -> None:
    """Refuse text that is not a number, and integers beyond int64, in a column of numbers."""
    if pd.api.types.is_bool_dtype(series):
        return
    if pd.api.types.is_unsigned_integer_dtype(series):
        big = (series > INT64_MAX).to_numpy()
        text = series.astype(str)
    elif pd.api.types.is_numeric_dtype(series):
        return
    else:
        present = series.notna().to_numpy()
        text = series.astype(str).str.strip()
        bad = present & ~pd.to_numeric(text.where(present, "0"), errors="coerce").notna().to_numpy()
        if bad.any():
            first = int(bad.argmax())
            raise InputError(f"feature column {col!r} holds numbers but {int(bad.sum())} value(s) that are not numbers "
                             f"in the {name} split, the first in {_where(rows, first)}: "
                             f"{shown(series.iloc[first], 40)}: correct those values (a decimal point, not a comma) or "
                             "leave them empty, or add it to data.categorical (TabularFeaturizer categorical=) to "
                             "treat it as categories")
        integer = present & text.str.match(INTEGER).fillna(False).to_numpy(dtype=bool)
        big = integer.copy()
        big[integer] = [abs(int(t)) > INT64_MAX for t in text[integer]]
    if big.any():
        first = int(big.argmax())
        raise InputError(f"feature column {col!r} holds {int(big.sum())} integer(s) beyond the 64-bit range in the "
                         f"{name} split, the first in {_where(rows, first)}: {shown(text.iloc[first], 40)}: "
                         "correct them, or rescale the column (e.g. other units)")


def _check_levels(series: pd.Series, levels: set, col: str, name: str, rows: pd.Index) -> None:
    """Refuse, in a split other than train, levels of a categorical column that train does not have."""
    present = series.notna().to_numpy()
    unseen = present & ~series.astype("string").isin(levels).fillna(False).to_numpy(dtype=bool)
    if unseen.any():
        first = int(unseen.argmax())
        raise InputError(f"categorical feature column {col!r} has {int(unseen.sum())} value(s) in the {name} split "
                         f"that the train split does not have, the first in {_where(rows, first)}: "
                         f"{shown(series.iloc[first], 40)} (train has {len(levels)} level(s)): the model has no input "
                         "for them; add such records to the train split, map them to a level it has, or leave them "
                         "empty")


def check_feature_values(frames: Mapping[str, pd.DataFrame], features: Sequence[str], *,
                         categorical: Sequence[str] = (), rows: Mapping[str, pd.Index] | None = None,
                         unseen_levels: str = "refuse") -> None:
    """Check the feature columns of every split in ``frames`` (``"train"`` decides each column's kind); see the
    module docstring. ``rows``: per split, each row's position in the table it came from (default: 0, 1, ...);
    ``unseen_levels``: ``"refuse"`` or ``"zeros"`` (levels of test or holdout that train lacks are let through).
    Raises :class:`~auditkit.errors.InputError` naming the split, the row and the column."""
    if unseen_levels not in ("refuse", "zeros"):
        raise InputError(f"unseen_levels={shown(unseen_levels)} is not allowed: give 'refuse' or 'zeros'")
    rows = {name: (rows or {}).get(name, pd.RangeIndex(len(frame))) for name, frame in frames.items()}
    names = ["train"] + [k for k in frames if k != "train"]
    for col in features:
        for name in names:
            series = frames[name][col]
            if pd.api.types.is_datetime64_any_dtype(series) or pd.api.types.is_timedelta64_dtype(series):
                raise InputError(f"feature column {col!r} has dtype {series.dtype} in the {name} split: convert it to "
                                 "numbers or categories, or leave it out of the features")
        if is_numeric_column(frames["train"][col], col in categorical):
            for name in names:
                _check_numbers(frames[name][col], col, name, rows[name])
        elif unseen_levels == "refuse":
            levels = set(frames["train"][col].dropna().astype("string"))
            for name in names[1:]:
                _check_levels(frames[name][col], levels, col, name, rows[name])
