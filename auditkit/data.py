"""Tabular audit data: features, target, sensitive attributes and record ids, validated.

::

    spec = DataSpec(target="default", sensitive=("sex", "age_band"), id_column="customer_id", favourable=0)
    splits = prepare_splits({"train": "train.parquet", "test": "test.csv", "holdout": holdout_df}, spec)
    splits["train"].X, splits["train"].y, splits["test"].groups, splits["holdout"].ids

- Tables come from a DataFrame (copied) or a ``.csv`` (also compressed: ``.csv.gz``, ``.csv.bz2``, ``.csv.xz``,
  ``.csv.zst``, ``.csv.zip``) / ``.parquet`` / ``.pq`` file (:func:`load_table`).
- The featurizer is fitted on the **train split only** and applied unchanged to every split.
- Labels are encoded ``0..C-1`` in the order of ``classes`` (the sorted target values of train).
- Sensitive attributes are kept aside as string groups (missing → the explicit group ``"unknown"``,
  counted, never dropped). They are model inputs only when they are also listed among the features.
- Record ids are kept as strings for the private flagged-records file; error messages never print them.

Featurizer protocol (``prepare_splits(..., featurizer=...)``): the featurizer receives the feature
columns only (``frame[list(features)]``) and is either

- an object with ``fit(frame)`` and ``transform(frame)``: ``fit`` is called once on the train split
  (so a pre-fitted scikit-learn transformer is re-fitted on train), ``transform`` on every split; or
- a plain callable ``frame -> array``, applied to every split as is (use this for a featurizer fitted
  elsewhere: ``featurizer=fitted.transform``).

Its output (array, DataFrame or scipy sparse matrix) must convert to a 2-D finite float64 array with one
row per record and the same number of columns for every split. Feature names are taken from
``feature_names_``, ``get_feature_names_out()`` or the output DataFrame's columns, else ``x0, x1, ...``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from .datacheck import check_feature_values
from .errors import InputError, NotFittedError

FORMATS = ".csv (or .csv.gz, .csv.bz2, .csv.xz, .csv.zst, .csv.zip), .parquet or .pq"
#: compressions of a CSV file pandas reads by the file's last suffix
CSV_COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst", ".zip")
MISSING_LEVEL = "missing"
UNKNOWN_GROUP = "unknown"


def load_table(source: pd.DataFrame | str | PathLike, *, id_column: str | None = None) -> pd.DataFrame:
    """A DataFrame (copied) or a table file: ``.csv`` (pandas defaults; compressed ``.csv.gz`` and the other
    ``CSV_COMPRESSIONS`` too), ``.parquet`` or ``.pq``.

    ``id_column``, when given, is read from CSV as text, so that ids such as ``"007"`` keep their zeros.
    """
    if isinstance(source, pd.DataFrame):
        return source.copy()
    if not isinstance(source, (str, PathLike)):
        raise InputError(f"table source must be a pandas DataFrame or a path to a {FORMATS} file; "
                         f"got {type(source).__name__}")
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix in CSV_COMPRESSIONS and len(path.suffixes) > 1 and path.suffixes[-2].lower() == ".csv":
        suffix = ".csv"                                  # pandas infers the compression from the last suffix
    if suffix not in (".csv", ".parquet", ".pq"):
        shown = "".join(path.suffixes[-2:]) if suffix in CSV_COMPRESSIONS else path.suffix
        raise InputError(f"table file {str(path)!r} has an unsupported suffix {shown!r}: "
                         f"supported formats are {FORMATS} (or pass a pandas DataFrame)")
    if not path.exists():
        raise InputError(f"table file {str(path)!r} does not exist: pass a path to a {FORMATS} file, "
                         f"or a pandas DataFrame")
    fmt = "CSV" if suffix == ".csv" else "Parquet"
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype={id_column: str} if id_column else None)
        return pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure is an input problem
        detail = (str(exc).strip().splitlines() or [""])[0]
        raise InputError(f"could not read table file {str(path)!r} as {fmt} ({type(exc).__name__}: {detail}): "
                         f"check that it is a valid {fmt} file") from exc


def _names(value: Any, what: str) -> tuple[str, ...]:
    try:
        items = (value,) if isinstance(value, str) else tuple(value)
    except TypeError:
        raise InputError(f"DataSpec {what} must be a column name or a sequence of them; got {value!r}") from None
    for item in items:
        if not isinstance(item, str) or not item:
            raise InputError(f"DataSpec {what} must be column names (non-empty strings); got {item!r}")
    dup = next((c for i, c in enumerate(items) if c in items[:i]), None)
    if dup is not None:
        raise InputError(f"DataSpec {what} lists {dup!r} more than once: list each column once")
    return items


@dataclass(frozen=True)
class DataSpec:
    """Which columns are what.

    - ``target``: the label column.
    - ``sensitive``: attributes to audit fairness over (kept aside as groups; model inputs only if also
      among ``features``). A single name is accepted for a one-element tuple.
    - ``id_column``: record identifiers (unique within a split); None → ``"row-<position>"``.
    - ``features``: model input columns; None → every column except the target and the id column.
    - ``favourable``: the target value that is the favourable outcome (e.g. ``1`` or ``"good"``);
      None → for a binary target the larger (last in sorted order) class; required for more classes.
    """

    target: str
    sensitive: tuple[str, ...] = ()
    id_column: str | None = None
    features: tuple[str, ...] | None = None
    favourable: Any = None

    def __post_init__(self):
        if not isinstance(self.target, str) or not self.target:
            raise InputError(f"DataSpec target must be a column name (non-empty string); got {self.target!r}")
        object.__setattr__(self, "sensitive", _names(self.sensitive, "sensitive"))
        if self.id_column is not None and (not isinstance(self.id_column, str) or not self.id_column):
            raise InputError(f"DataSpec id_column must be a column name or None; got {self.id_column!r}")
        if self.id_column == self.target:
            raise InputError(f"DataSpec id_column {self.id_column!r} is also the target: use different columns")
        if self.target in self.sensitive:
            raise InputError(f"DataSpec target {self.target!r} is also listed in sensitive: remove it from sensitive")
        if self.features is not None:
            features = _names(self.features, "features")
            if not features:
                raise InputError("DataSpec features is empty: list at least one column, or pass None for every "
                                 "column except the target and the id column")
            if self.target in features:
                raise InputError(f"DataSpec target {self.target!r} is also listed in features: remove it from features")
            if self.id_column in features:
                raise InputError(f"DataSpec id_column {self.id_column!r} is also listed in features: record ids must "
                                 f"not be model inputs; remove it from features")
            object.__setattr__(self, "features", features)

    def feature_columns(self, frame: pd.DataFrame) -> list[str]:
        """The model input columns of ``frame`` under this spec."""
        if self.features is not None:
            return list(self.features)
        return [c for c in frame.columns if c not in (self.target, self.id_column)]


def _is_categorical(series: pd.Series) -> bool:
    return pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series)


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str, where: str, fix: str) -> None:
    for col in columns:
        if col not in frame.columns:
            raise InputError(f"{where} has no {what} column {col!r}; available columns are "
                             f"{[str(c) for c in frame.columns]}: {fix}")


#: a text column whose values are numbers in at least this share of its rows is a numeric column with typos
MOSTLY_NUMERIC = 0.9


def _refuse_stray_text(series: pd.Series, col: str) -> None:
    """Refuse a column of numbers with a few text values ("12.5", "n/a?", "two hundred"): read as text it
    would silently become hundreds of one-hot levels. Columns listed as categorical are never checked."""
    present = series.dropna()
    if pd.api.types.is_bool_dtype(series) or len(present) == 0:
        return
    numeric = pd.to_numeric(present.astype(str).str.strip(), errors="coerce").notna()
    bad = int((~numeric).sum())
    if bad and numeric.mean() >= MOSTLY_NUMERIC:
        raise InputError(f"feature column {col!r} holds numbers but {bad} value(s) that are not numbers: correct "
                         "those values (or leave them empty), or add it to data.categorical (TabularFeaturizer "
                         "categorical=) to treat it as categories")


def _refuse_infinite(values: pd.Series, col: str) -> None:
    """Refuse ±inf in a numeric column (a missing value is imputed; an infinity has no meaningful stand-in)."""
    count = int(np.isinf(pd.to_numeric(values, errors="coerce").to_numpy(np.float64)).sum())
    if count:
        raise InputError(f"numeric feature column {col!r} has {count} infinite value(s): replace infinities with "
                         "numbers, or leave them empty (missing values are imputed)")


class TabularFeaturizer:
    """Numbers and categories → a float64 matrix; fitted on the training split only.

    - Numeric columns (numeric dtypes except bool): missing values → the training median; a 0/1
      ``"<col>_missing"`` indicator for each column with missing values in training; then standardised
      ``(x - mean) / std`` with the training mean and sample standard deviation (ddof=1) after imputation
      (std 0 or undefined → 1).
    - Other columns (object, string, category, bool, and any listed in ``categorical``): one-hot
      ``"<col>=<level>"`` over the training levels (as text, sorted), where a missing value is the explicit
      level ``"missing"`` (a column only if training has missing values). Levels unseen in training,
      including missing where training had none, map to all zeros.
    - Column order: numeric columns (in feature order), then the missing indicators, then the one-hots.

    Built on scikit-learn: a ``ColumnTransformer`` (``columns_``) of ``SimpleImputer(strategy="median")`` +
    ``StandardScaler`` on the numeric columns, ``MissingIndicator`` on the same columns and
    ``OneHotEncoder(handle_unknown="ignore")`` on the categories as text. Written here: which columns are
    categorical, the checks that give one-line errors, and the sample standard deviation (see
    :func:`_sample_std_scale`). Fitted attributes: ``numeric_``, ``categorical_``, ``with_missing_``,
    ``medians_``, ``means_``, ``stds_``, ``levels_``, ``feature_names_``.
    """

    def __init__(self, *, categorical: Sequence[str] = ()):
        self.categorical = _names(categorical, "categorical") if categorical else ()

    def fit(self, frame: pd.DataFrame, features: Sequence[str] | None = None) -> TabularFeaturizer:
        """Learn medians, means, standard deviations and levels from ``frame`` (training data only)."""
        features = [str(c) for c in frame.columns] if features is None else list(features)
        if not features:
            raise InputError("TabularFeaturizer.fit needs at least one feature column; got none")
        _require_columns(frame, features, "feature", "the training table", "fix the feature list or the table")
        for col in self.categorical:
            if col not in features:
                raise InputError(f"TabularFeaturizer categorical column {col!r} is not among the features "
                                 f"{features}: fix the name or remove it")
        for col in features:
            if pd.api.types.is_datetime64_any_dtype(frame[col]) or pd.api.types.is_timedelta64_dtype(frame[col]):
                raise InputError(f"feature column {col!r} has dtype {frame[col].dtype}: convert it to numbers or "
                                 f"categories, or leave it out of the features")
        for col in features:
            if col not in self.categorical and not pd.api.types.is_numeric_dtype(frame[col]):
                _refuse_stray_text(frame[col], col)
        self.categorical_ = [c for c in features if c in self.categorical or _is_categorical(frame[c])]
        self.numeric_ = [c for c in features if c not in self.categorical_]
        for col in self.numeric_:
            _refuse_infinite(frame[col], col)
            if frame[col].isna().all():
                raise InputError(f"numeric feature column {col!r} has no values in the training data: fill it or "
                                 f"leave it out of the features")
        inner = self._inner(frame)
        self.columns_ = ColumnTransformer(
            [("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), self.numeric_),
             ("missing", MissingIndicator(features="missing-only", error_on_new=False), self.numeric_),
             ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float64,
                                      feature_name_combiner=_one_hot_name), self.categorical_)],
            sparse_threshold=0.0, verbose_feature_names_out=False)
        with np.errstate(over="ignore", invalid="ignore"):     # absurd magnitudes are refused just below
            self.columns_.fit(inner)
        numeric = self.columns_.named_transformers_["numeric"] if self.numeric_ else None
        imputer, scaler = (numeric.named_steps["simpleimputer"], numeric.named_steps["standardscaler"]) \
            if numeric is not None else (None, None)
        if scaler is not None:
            scaler.scale_ = _sample_std_scale(scaler, imputer.transform(inner[self.numeric_]), self.numeric_)
        self.medians_ = dict(zip(self.numeric_, map(float, imputer.statistics_), strict=True)) if imputer else {}
        self.means_ = dict(zip(self.numeric_, map(float, scaler.mean_), strict=True)) if scaler else {}
        self.stds_ = dict(zip(self.numeric_, map(float, scaler.scale_), strict=True)) if scaler else {}
        indicator = self.columns_.named_transformers_["missing"] if self.numeric_ else None
        self.with_missing_ = [self.numeric_[j] for j in indicator.features_] if indicator is not None else []
        encoder = self.columns_.named_transformers_["onehot"] if self.categorical_ else None
        self.levels_ = ({c: [str(v) for v in levels] for c, levels in zip(self.categorical_, encoder.categories_,
                                                                         strict=True)} if encoder else {})
        self.feature_names_ = (list(self.numeric_) + [f"{c}_missing" for c in self.with_missing_]
                               + [f"{c}={v}" for c in self.categorical_ for v in self.levels_[c]])
        return self

    def _inner(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The columns the transformers see: numeric columns as float64 (missing → NaN), categories as text
        (missing → the level ``"missing"``)."""
        numbers = {c: pd.to_numeric(frame[c], errors="coerce").to_numpy(np.float64, na_value=np.nan)
                   for c in self.numeric_}
        texts = {c: self._as_text(frame[c]).to_numpy(object) for c in self.categorical_}
        return pd.DataFrame({**numbers, **texts}, index=pd.RangeIndex(len(frame)),
                            columns=self.numeric_ + self.categorical_)

    @staticmethod
    def _as_text(series: pd.Series) -> pd.Series:
        return series.astype("string").fillna(MISSING_LEVEL)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """The float64 matrix ``(len(frame), len(feature_names_))`` of ``frame``."""
        if not hasattr(self, "feature_names_"):
            raise NotFittedError("TabularFeaturizer is not fitted: call fit(train_frame) first")
        _require_columns(frame, self.numeric_ + self.categorical_, "feature", "the table",
                         "transform tables with the columns the featurizer was fitted on")
        for col in self.numeric_:
            values = pd.to_numeric(frame[col], errors="coerce")
            bad = int((values.isna() & frame[col].notna()).sum())
            if bad:
                raise InputError(f"numeric feature column {col!r} has {bad} non-numeric values: convert them to "
                                 f"numbers or missing values")
            _refuse_infinite(values, col)
        out = self.columns_.transform(self._inner(frame))
        return np.ascontiguousarray(out, dtype=np.float64).reshape(len(frame), len(self.feature_names_))

    def fit_transform(self, frame: pd.DataFrame, features: Sequence[str] | None = None) -> np.ndarray:
        return self.fit(frame, features).transform(frame)


def _one_hot_name(column: str, level: str) -> str:
    """The name of a one-hot column: ``"<col>=<level>"`` (a module function, so the featurizer pickles)."""
    return f"{column}={level}"


def _sample_std_scale(scaler: StandardScaler, imputed: np.ndarray, columns: Sequence[str]) -> np.ndarray:
    """The ``scale_`` auditkit standardises with: the sample standard deviation (ddof=1) of each imputed numeric
    column, 1 where it is 0 or undefined (one record). Hand-written because StandardScaler offers only the
    population standard deviation (ddof=0), and its variance (computed with a correction term) can differ from
    numpy's two-pass formula in the last bit, which would move every featurized value, and the weights of models
    trained on them (the examples' committed weights, the golden files), by a rounding error. Raises
    :class:`InputError` when the mean or the standard deviation overflowed float64."""
    n = len(imputed)
    with np.errstate(over="ignore", invalid="ignore"):
        std = np.std(imputed, axis=0, ddof=1) if n > 1 else np.full(imputed.shape[1], np.nan)
    for j, col in enumerate(columns):
        if not np.isfinite(scaler.mean_[j]) or (np.isinf(std[j]) and n > 1):
            raise InputError(f"numeric feature column {col!r} has values too large to standardise (largest "
                             f"magnitude {float(np.abs(imputed[:, j]).max()):.3g}): rescale the column (e.g. other "
                             "units)")
    return np.where(np.isfinite(std) & (std > 0), std, 1.0)


class PassThrough:
    """The feature columns as given (``data.featurizer: none``): numbers already encoded the way the model was
    trained on them (standardised, one-hot), taken unchanged as float64, in the order of the features.

    Refuses a column that holds text or missing values (:class:`InputError` naming the column; infinities are
    refused after featurization by :func:`prepare_splits`):
    such a column needs encoding, by :class:`TabularFeaturizer` or the model owner's featurizer.
    """

    def fit(self, frame: pd.DataFrame) -> PassThrough:
        self.feature_names_ = [str(c) for c in frame.columns]
        return self.transform_check(frame)

    def transform_check(self, frame: pd.DataFrame) -> PassThrough:
        for col in frame.columns:
            values = frame[col]
            if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
                raise InputError(f"data.featurizer none takes numbers as given, but feature column {col!r} has dtype "
                                 f"{values.dtype}: encode it as the model was trained (numbers), or set "
                                 "data.featurizer: tabular")
            missing = int(values.isna().sum())
            if missing:
                raise InputError(f"data.featurizer none takes numbers as given, but feature column {col!r} has "
                                 f"{missing} missing value(s): fill them as the model's training did, or set "
                                 "data.featurizer: tabular (which imputes the median)")
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """``frame`` as a float64 matrix (columns in the order fitted)."""
        self.transform_check(frame)
        return frame[self.feature_names_].to_numpy(np.float64)


#: largest |mean| and the range of the standard deviation of a column called already standardised
STANDARDISED_MEAN, STANDARDISED_STD = 0.25, (0.75, 1.33)


def needs_encoding(frame: pd.DataFrame) -> str | None:
    """Why a training table's feature columns need :class:`TabularFeaturizer` (text or boolean values, missing
    values, or numbers that are neither 0/1 nor already standardised: |mean| ≤ 0.25, 0.75 ≤ std ≤ 1.33), or None
    when every column looks encoded already (the automatic choice of ``data.featurizer``)."""
    for col in frame.columns:
        values = frame[col]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            return f"column {col!r} is not numeric"
        if values.isna().any():
            return f"column {col!r} has missing values"
        x = values.to_numpy(np.float64)
        if np.isin(x, (0.0, 1.0)).all():
            continue
        low, high = STANDARDISED_STD
        std = float(x.std(ddof=1)) if x.size > 1 else 0.0
        if not (abs(float(x.mean())) <= STANDARDISED_MEAN and low <= std <= high):
            return f"column {col!r} is neither 0/1 nor standardised (mean {float(x.mean()):.3g}, std {std:.3g})"
    return None


@dataclass(eq=False)
class AuditData:
    """One split, ready for the audit.

    ``X[i]``, ``y[i]``, ``ids[i]``, ``groups.iloc[i]`` and ``frame.iloc[i]`` describe the same record
    (the frame's index is reset to positions). ``y`` encodes ``classes[y[i]]``; ``classes`` are those of
    the train split, shared by every split.
    """

    name: str
    frame: pd.DataFrame
    X: np.ndarray
    y: np.ndarray
    classes: list
    favourable_index: int
    ids: np.ndarray
    groups: pd.DataFrame
    feature_names: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    def unknown_counts(self) -> dict[str, int]:
        """Records in the explicit group ``"unknown"`` (missing value), per sensitive attribute."""
        return {str(c): int((self.groups[c] == UNKNOWN_GROUP).sum()) for c in self.groups.columns}


def _classes(values: pd.Series, target: str) -> list:
    unique = [v.item() if isinstance(v, np.generic) else v for v in pd.unique(values)]
    try:
        return sorted(unique)
    except TypeError:
        kinds = sorted({type(v).__name__ for v in unique})
        raise InputError(f"target column {target!r} mixes values that cannot be ordered ({', '.join(kinds)}): "
                         f"use one type for all labels") from None


def _favourable_index(classes: list, spec: DataSpec) -> int:
    if spec.favourable is None:
        if len(classes) != 2:
            raise InputError(f"target column {spec.target!r} has {len(classes)} classes {classes}: set "
                             f"DataSpec.favourable to the favourable one")
        return 1
    for i, c in enumerate(classes):
        if c == spec.favourable:
            return i
    raise InputError(f"favourable {spec.favourable!r} is not one of the classes of target {spec.target!r}: "
                     f"{classes}; use one of them")


def _ids(frame: pd.DataFrame, spec: DataSpec, name: str) -> np.ndarray:
    if spec.id_column is None:
        return np.array([f"row-{i}" for i in range(len(frame))], dtype=str)
    col = frame[spec.id_column]
    missing = int(col.isna().sum())
    if missing:
        raise InputError(f"split {name!r} has {missing} missing values in id column {spec.id_column!r}: "
                         f"every record needs an id")
    ids = np.array([str(v) for v in col], dtype=str)
    dup = np.flatnonzero(pd.Series(ids).duplicated().to_numpy())
    if dup.size:
        rows = ", ".join(str(i) for i in dup[:3]) + (", ..." if dup.size > 3 else "")
        raise InputError(f"split {name!r} has {dup.size} duplicate values in id column {spec.id_column!r} "
                         f"(0-based rows {rows}): record ids must be unique within a split")
    return ids


def _groups(frame: pd.DataFrame, spec: DataSpec) -> pd.DataFrame:
    data = {c: frame[c].astype("string").fillna(UNKNOWN_GROUP).astype(str) for c in spec.sensitive}
    return pd.DataFrame(data, index=pd.RangeIndex(len(frame)), columns=list(spec.sensitive))


def _as_matrix(out: Any, name: str, n: int) -> np.ndarray:
    if hasattr(out, "toarray"):  # scipy sparse
        out = out.toarray()
    try:
        X = np.array(out, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"featurizer output for split {name!r} cannot be converted to floats ({exc}): return a "
                         f"numeric 2-D array") from None
    if X.ndim != 2:
        raise InputError(f"featurizer output for split {name!r} has {X.ndim} dimensions (shape {X.shape}): return "
                         f"a 2-D array, one row per record")
    if X.shape[0] != n:
        raise InputError(f"featurizer output for split {name!r} has {X.shape[0]} rows for {n} records: return one "
                         f"row per record, in order")
    return X


def _feature_names(featurizer: Any, out: Any, width: int) -> list[str]:
    names = getattr(featurizer, "feature_names_", None)
    if names is None and hasattr(featurizer, "get_feature_names_out"):
        try:
            names = featurizer.get_feature_names_out()
        except Exception:  # noqa: BLE001 - names are a convenience only
            names = None
    if names is None and isinstance(out, pd.DataFrame):
        names = out.columns
    names = [str(c) for c in names] if names is not None else []
    return names if len(names) == width else [f"x{j}" for j in range(width)]


def _user_call(fn: Callable, frame: pd.DataFrame, featurizer: Any, step: str, split: str):
    """``fn(frame)`` of a featurizer; a failure of foreign code becomes one :class:`InputError` line."""
    try:
        return fn(frame)
    except (InputError, NotFittedError):
        raise
    except Exception as exc:  # noqa: BLE001 - user code: any failure is a problem of the input
        detail = (str(exc).strip().splitlines() or [""])[0][:160]
        raise InputError(f"featurizer {type(featurizer).__name__}.{step} failed on the {split} split "
                         f"({type(exc).__name__}: {detail}): check the featurizer against the feature columns and "
                         "their types") from None


def prepare_splits(splits: Mapping[str, pd.DataFrame | str | PathLike], spec: DataSpec, *,
                   featurizer: Any = None, unseen_levels: str = "zeros") -> dict[str, AuditData]:
    """Load, validate and featurize every split; the featurizer and the classes come from ``"train"``.

    ``featurizer``: None → :class:`TabularFeaturizer`; else an object with ``fit``/``transform`` or a
    callable ``frame -> array`` (see the module docstring). With the :class:`TabularFeaturizer`, every split's
    feature values are checked first (:func:`auditkit.datacheck.check_feature_values`: numbers, integers within
    64 bits, and with ``unseen_levels="refuse"`` categories that train has), naming split, row and column.
    Raises :class:`InputError` on bad input.
    """
    if not isinstance(splits, Mapping):
        raise InputError(f"splits must be a dict of split name to DataFrame or path, e.g. {{'train': ..., "
                         f"'test': ...}}; got {type(splits).__name__}")
    if "train" not in splits:
        raise InputError(f"splits has no 'train' split; got {[str(k) for k in splits]}: the featurizer and the "
                         f"classes are taken from a split named 'train'")
    if not isinstance(spec, DataSpec):
        raise InputError(f"spec must be a DataSpec; got {type(spec).__name__}")
    if featurizer is None:
        featurizer = TabularFeaturizer()
    elif not (hasattr(featurizer, "fit") and hasattr(featurizer, "transform")) and not callable(featurizer):
        raise InputError(f"featurizer must be an object with fit(frame) and transform(frame), or a callable "
                         f"frame -> array; got {type(featurizer).__name__}")
    names = ["train"] + [k for k in splits if k != "train"]
    tables = {k: load_table(splits[k], id_column=spec.id_column) for k in names}
    origin = {k: table.index for k, table in tables.items()}      # row positions in the tables, for messages
    frames = {k: table.reset_index(drop=True) for k, table in tables.items()}

    features: list[str] = []
    for name in names:
        frame, where = frames[name], f"split {name!r}"
        if len(frame) == 0:
            raise InputError(f"split {name!r} has no rows: pass a table with at least one record")
        _require_columns(frame, [spec.target], "target", where, "fix DataSpec.target or the table")
        if spec.id_column is not None:
            _require_columns(frame, [spec.id_column], "id", where, "fix DataSpec.id_column or the table")
        _require_columns(frame, spec.sensitive, "sensitive", where, "fix DataSpec.sensitive or the table")
        if name == "train":
            features = spec.feature_columns(frame)
            if not features:
                raise InputError("split 'train' has no feature columns besides the target and the id column: "
                                 "add feature columns or list them in DataSpec.features")
        _require_columns(frame, features, "feature", where, "fix DataSpec.features or the table")
        missing = int(frame[spec.target].isna().sum())
        if missing:
            raise InputError(f"split {name!r} has {missing} missing values in target column {spec.target!r}: "
                             f"drop or label those records before the audit")

    classes = _classes(frames["train"][spec.target], spec.target)
    if len(classes) < 2:
        raise InputError(f"target column {spec.target!r} has a single class ({classes[0]!r}) in the train split: "
                         f"the audit needs at least two classes")
    favourable_index = _favourable_index(classes, spec)
    codes = {c: i for i, c in enumerate(classes)}
    labels = {}
    for name in names:
        y = frames[name][spec.target].astype(object).map(codes)
        unseen = y.isna()
        if unseen.any():
            values = _classes(frames[name][spec.target][unseen], spec.target)
            raise InputError(f"split {name!r} has {int(unseen.sum())} records with target values not seen in the "
                             f"train split: {values}; every class must occur in train")
        labels[name] = y.to_numpy(np.int64)

    if isinstance(featurizer, TabularFeaturizer):        # its column kinds are known: check every split
        check_feature_values(frames, features, categorical=featurizer.categorical, rows=origin,
                             unseen_levels=unseen_levels)
    fit = getattr(featurizer, "fit", None)
    if callable(fit) and hasattr(featurizer, "transform"):
        _user_call(fit, frames["train"][features].copy(), featurizer, "fit", "train")
        apply: Callable[[pd.DataFrame], Any] = featurizer.transform
    else:
        apply = featurizer
    result: dict[str, AuditData] = {}
    width, feature_names = None, []
    for name in names:
        frame = frames[name]
        out = _user_call(apply, frame[features].copy(), featurizer, "transform", name)
        X = _as_matrix(out, name, len(frame))
        if width is None:
            width, feature_names = X.shape[1], _feature_names(featurizer, out, X.shape[1])
        elif X.shape[1] != width:
            raise InputError(f"featurizer output for split {name!r} has {X.shape[1]} columns but the train split "
                             f"has {width}: transform every split to the same features")
        bad = ~np.isfinite(X)
        if bad.any():
            cols = [feature_names[j] for j in np.flatnonzero(bad.any(axis=0))]
            shown = ", ".join(repr(c) for c in cols[:5]) + (", ..." if len(cols) > 5 else "")
            raise InputError(f"split {name!r} has {int(bad.sum())} non-finite values after featurization "
                             f"(features {shown}): replace infinities in the input or fix the featurizer")
        result[name] = AuditData(name=name, frame=frame, X=X, y=labels[name], classes=list(classes),
                                 favourable_index=favourable_index, ids=_ids(frame, spec, name),
                                 groups=_groups(frame, spec), feature_names=list(feature_names))
    return {k: result[k] for k in splits}


def age_bands(series: pd.Series, edges: Sequence[float] = (40, 60)) -> pd.Series:
    """Numeric values → band labels, for turning e.g. age into a sensitive attribute.

    Bands are half-open ``[lo, hi)``: with the default edges ``(40, 60)`` the labels are ``"<40"``,
    ``"40-59"`` and ``"60+"`` (integer edges: ``"lo-(hi-1)"``; other edges: ``"lo-<hi"``, e.g.
    ``"18.5-<25"``). Missing values become ``"unknown"``. Returns strings, with the input's index and name.
    """
    try:
        edges = [float(e) for e in edges]
    except (TypeError, ValueError):
        raise InputError(f"age_bands edges must be a sequence of numbers, e.g. (40, 60); got {edges!r}") from None
    if not edges or not all(np.isfinite(edges)) or any(b <= a for a, b in zip(edges[:-1], edges[1:], strict=True)):
        raise InputError(f"age_bands edges must be finite and strictly increasing, at least one; got {edges}")
    series = pd.Series(series)
    values = pd.to_numeric(series, errors="coerce")
    bad = int((values.isna() & series.notna()).sum())
    if bad:
        raise InputError(f"age_bands needs numbers; column {series.name!r} has {bad} non-numeric values: "
                         f"convert them to numbers or missing values")

    def fmt(x: float) -> str:
        return str(int(x)) if x.is_integer() else repr(x)

    integer = all(e.is_integer() for e in edges)
    labels = [f"<{fmt(edges[0])}"]
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        labels.append(f"{fmt(lo)}-{fmt(hi - 1)}" if integer else f"{fmt(lo)}-<{fmt(hi)}")
    labels.append(f"{fmt(edges[-1])}+")
    arr = values.to_numpy(np.float64)
    bands = np.searchsorted(np.asarray(edges), arr, side="right")
    out = np.where(np.isnan(arr), UNKNOWN_GROUP, np.asarray(labels, dtype=object)[np.minimum(bands, len(labels) - 1)])
    return pd.Series(out, index=series.index, name=series.name, dtype=object).astype(str)


__all__ = ["DataSpec", "TabularFeaturizer", "PassThrough", "AuditData", "load_table", "prepare_splits", "age_bands"]
