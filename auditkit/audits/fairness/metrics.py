"""Per-group performance metrics for the fairness audit, computed with fairlearn's ``MetricFrame``.

Pure statistics: numpy, pandas, scikit-learn and fairlearn only (no torch, no I/O).

For every sensitive attribute and every intersection of attributes, the records are split by group
and, within each group ``g`` (``n_g`` records; ``y`` = favourable outcome happened, ``ŷ`` = favourable
outcome predicted, ``s`` = predicted probability of the favourable outcome, ``ℓ`` = per-record loss)::

    count          n_g                                            fairlearn.metrics.count
    accuracy       #(ŷ = y) / n_g                                 sklearn accuracy_score
    selection_rate #(ŷ = 1) / n_g                                 fairlearn.metrics.selection_rate
    tpr            #(ŷ = 1, y = 1) / #(y = 1)                     fairlearn.metrics.true_positive_rate
    fpr            #(ŷ = 1, y = 0) / #(y = 0)                     fairlearn.metrics.false_positive_rate
    fnr            #(ŷ = 0, y = 1) / #(y = 1)                     fairlearn.metrics.false_negative_rate
    precision      #(ŷ = 1, y = 1) / #(ŷ = 1)                     sklearn precision_score
    mean_loss      mean of ℓ over the group
    auc            P(s of a random positive > s of a random negative) (ties ½)   sklearn roc_auc_score

Each rate carries a Wilson score interval at 95% (``intervals``, :func:`~auditkit.audits.fairness.intervals.
wilson_interval`), from its numerator k and its own denominator m::

    (p̂ + z²/2m ± z·√(p̂(1−p̂)/m + z²/4m²)) / (1 + z²/m),   p̂ = k/m,  z = Φ⁻¹(0.975)

The minimum n applies to each rate's own denominator (``denominators``): the group's records for accuracy,
selection rate and mean loss, its positives (y = 1) for TPR and FNR, its negatives for FPR, its predicted
positives for precision, and the smaller of positives and negatives for AUC. A metric whose denominator is
below ``min_group_size`` is withheld: absent from ``metrics`` and ``intervals`` and listed in ``insufficient``
(metric → its denominator), so that no value rests on fewer records than the minimum without saying so (a TPR
on 3 patients with the disease is not reported, even in a group of 40).

A rate whose denominator is zero in a group is withheld the same way (denominator 0): fairlearn itself would
report 0 for TPR, FNR and FPR, which would look like a measured value. Missing sensitive values are the group
``"unknown"``: counted and reported like any other group, flagged ``unknown=True``, and left out of disparities
(see :mod:`auditkit.audits.fairness.disparities`). A group with fewer than ``min_group_size`` records is
reported with ``sufficient=False`` (and all its metrics are withheld).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import sklearn.metrics as skm
from fairlearn.metrics import (
    MetricFrame,
    count,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)

from auditkit.audits.jsonsafe import json_safe
from auditkit.errors import InputError

from .intervals import wilson_interval

UNKNOWN = "unknown"
SEPARATOR = " & "
METRICS = ("count", "accuracy", "selection_rate", "tpr", "fpr", "fnr", "precision", "mean_loss", "auc")


@dataclass
class GroupRow:
    """One group of one attribute (or intersection): its size, metrics and their denominators.

    ``denominators``: each metric's own denominator (module docstring); ``insufficient``: the metrics withheld
    because their denominator is below the minimum (metric → denominator), absent from ``metrics``."""

    group: str
    count: int
    metrics: dict[str, float]
    sufficient: bool
    unknown: bool
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    denominators: dict[str, int] = field(default_factory=dict)
    insufficient: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return json_safe({"group": self.group, "count": self.count, "metrics": dict(self.metrics),
                          "intervals": {k: list(v) for k, v in self.intervals.items()},
                          "denominators": dict(self.denominators), "insufficient": dict(self.insufficient),
                          "sufficient": self.sufficient, "unknown": self.unknown})


def rate_counts(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, tuple[int, int]]:
    """``(numerator, denominator)`` of every rate metric of one group (0/1 arrays of its records)."""
    pos, neg, hit = y_true == 1, y_true == 0, y_pred == 1
    counts = {"accuracy": ((y_true == y_pred).sum(), y_true.size), "selection_rate": (hit.sum(), y_true.size),
              "tpr": ((hit & pos).sum(), pos.sum()), "fpr": ((hit & neg).sum(), neg.sum()),
              "fnr": ((~hit & pos).sum(), pos.sum()), "precision": ((hit & pos).sum(), hit.sum())}
    return {m: (int(k), int(n)) for m, (k, n) in counts.items()}


def denominators(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, int]:
    """Each metric's own denominator in one group: records (accuracy, selection rate, mean loss), positives
    (TPR, FNR), negatives (FPR), predicted positives (precision), the smaller class (AUC)."""
    out = {m: n for m, (_, n) in rate_counts(y_true, y_pred).items()}
    pos = int((y_true == 1).sum())
    out["mean_loss"] = int(y_true.size)
    out["auc"] = min(pos, int(y_true.size) - pos)
    return out


def rate_intervals(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, tuple[float, float]]:
    """Wilson intervals of every rate metric of one group (0/1 arrays of its records)."""
    return {m: wilson_interval(k, n) for m, (k, n) in rate_counts(y_true, y_pred).items()}


def withhold(metrics: dict[str, float], intervals: dict[str, tuple[float, float]], denoms: dict[str, int],
             min_n: int) -> dict[str, int]:
    """Remove from ``metrics`` and ``intervals`` (in place) every metric whose denominator is below ``min_n``;
    returns them as ``{metric: denominator}``."""
    out = {m: d for m, d in denoms.items() if d < min_n}
    for m in out:
        metrics.pop(m, None)
        intervals.pop(m, None)
    return out


@dataclass
class GroupTable:
    """Metrics per group for one attribute (``"sex"``) or intersection (``"sex & age_band"``).

    ``columns`` are the sensitive-attribute columns the groups are made of, so that records can be
    mapped to groups again (:func:`record_groups`).
    """

    attribute: str
    groups: list[GroupRow]
    columns: list[str] = field(default_factory=list)
    min_group_size: int = 30

    def row(self, group: str) -> GroupRow:
        """The row of ``group``; :class:`InputError` if the table has none."""
        for r in self.groups:
            if r.group == group:
                return r
        raise InputError(f"group {group!r} is not in attribute {self.attribute!r}: "
                         f"its groups are {[r.group for r in self.groups]}")

    def to_dict(self) -> dict:
        return {"attribute": self.attribute, "columns": list(self.columns), "min_group_size": self.min_group_size,
                "groups": [r.to_dict() for r in self.groups]}


def record_groups(groups: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """The group label of every record: the value of ``columns[0]``, or the values joined by ``" & "``.

    Missing values (NaN/None) become ``"unknown"``; every value is read as a string.
    """
    parts = []
    for col in columns:
        values = groups[col].astype(object)
        values = values.where(values.notna(), UNKNOWN)
        parts.append(np.array([str(v) for v in values], dtype=object))
    labels = parts[0]
    for p in parts[1:]:
        labels = labels + SEPARATOR + p
    return labels


def is_unknown(label: str) -> bool:
    """A group is unknown when any of its components is ``"unknown"`` (e.g. ``"unknown & <40"``)."""
    return UNKNOWN in str(label).split(SEPARATOR)


# ---- metric functions, called by MetricFrame on each group's records ----

def _tpr(y_true, y_pred) -> float:
    return float(true_positive_rate(y_true, y_pred, pos_label=1)) if np.any(y_true == 1) else math.nan


def _fnr(y_true, y_pred) -> float:
    return float(false_negative_rate(y_true, y_pred, pos_label=1)) if np.any(y_true == 1) else math.nan


def _fpr(y_true, y_pred) -> float:
    return float(false_positive_rate(y_true, y_pred, pos_label=1)) if np.any(y_true == 0) else math.nan


def _precision(y_true, y_pred) -> float:
    return float(skm.precision_score(y_true, y_pred, zero_division=np.nan))


def _accuracy(y_true, y_pred) -> float:
    return float(skm.accuracy_score(y_true, y_pred))


def _selection_rate(y_true, y_pred) -> float:
    return float(selection_rate(y_true, y_pred, pos_label=1))


def _count(y_true, y_pred) -> float:
    return float(count(y_true, y_pred))


def _mean_loss(y_true, y_pred, losses=None) -> float:
    return math.nan if losses is None or len(losses) == 0 else float(np.mean(losses))


def _auc(y_true, y_pred, scores=None) -> float:
    if scores is None or len(np.unique(y_true)) < 2:
        return math.nan
    return float(skm.roc_auc_score(y_true, scores))


METRIC_FUNCTIONS = {"count": _count, "accuracy": _accuracy, "selection_rate": _selection_rate, "tpr": _tpr,
                    "fpr": _fpr, "fnr": _fnr, "precision": _precision, "mean_loss": _mean_loss, "auc": _auc}


# ---- validation ----

def as_binary(name: str, values, n: int | None = None) -> np.ndarray:
    """``values`` as a 1-D int array of 0/1 (booleans, or numbers that are all 0 or 1)."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InputError(f"{name} must be 1-D (one value per record), got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise InputError(f"{name} has {arr.shape[0]} values but y_true has {n}: pass one value per record")
    if arr.dtype != bool:
        if not np.issubdtype(arr.dtype, np.number):
            raise InputError(f"{name} must be booleans (True = favourable outcome), got dtype {arr.dtype}")
        bad = ~np.isin(arr, (0, 1))
        if bad.any():
            raise InputError(f"{name} must be booleans or 0/1, got {int(bad.sum())} other value(s), "
                             f"e.g. {arr[bad][0]!r}")
    return arr.astype(np.int64)


def as_float(name: str, values, n: int) -> np.ndarray | None:
    """``values`` as a finite 1-D float array of length ``n`` (``None`` stays ``None``)."""
    if values is None:
        return None
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise InputError(f"{name} must have one value per record ({n}), got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise InputError(f"{name} contains NaN or infinite values in {int(bad.sum())} record(s): "
                         "pass finite numbers")
    return arr


def _check_columns(name: str, cols, groups: pd.DataFrame) -> list[str]:
    cols = [cols] if isinstance(cols, str) else list(cols)
    missing = [c for c in cols if c not in groups.columns]
    if missing:
        raise InputError(f"{name} names column(s) {missing} that groups does not have: "
                         f"its columns are {list(groups.columns)}")
    return cols


# ---- the table ----

def group_metrics(y_true, y_pred, *, scores, losses, groups: pd.DataFrame, attributes: list[str],
                  intersections: Sequence[Sequence[str]] = (), min_group_size: int = 30) -> list[GroupTable]:
    """One :class:`GroupTable` per attribute, then one per intersection, computed with fairlearn.

    ``y_true``/``y_pred`` are booleans meaning "the favourable outcome" (happened / predicted);
    ``scores`` the predicted probability of the favourable outcome and ``losses`` the per-record loss
    (either may be ``None``: its metric is then NaN). ``groups`` holds one column per sensitive
    attribute, one row per record. Groups are listed in fairlearn's (sorted) order; formulas are in
    the module docstring.
    """
    yt = as_binary("y_true", y_true)
    n = yt.shape[0]
    yp = as_binary("y_pred", y_pred, n)
    s = as_float("scores", scores, n)
    loss = as_float("losses", losses, n)
    if not isinstance(groups, pd.DataFrame):
        raise InputError(f"groups must be a pandas DataFrame (one column per sensitive attribute), "
                         f"got {type(groups).__name__}")
    if len(groups) != n:
        raise InputError(f"groups has {len(groups)} rows but y_true has {n}: pass one row per record")
    if n == 0:
        raise InputError("y_true has no records: pass at least one")
    if isinstance(min_group_size, bool) or not isinstance(min_group_size, int | np.integer) or min_group_size < 1:
        raise InputError(f"min_group_size={min_group_size!r} is not allowed: it must be an integer ≥ 1")
    if isinstance(attributes, str):
        attributes = [attributes]
    specs = [[c] for c in _check_columns("attributes", attributes, groups)]
    for inter in intersections:
        cols = _check_columns("intersections", inter, groups)
        if len(cols) < 2:
            raise InputError(f"intersections entry {list(cols)} must name at least two columns")
        specs.append(cols)

    sample_params = {}
    if s is not None:
        sample_params["auc"] = {"scores": s}
    if loss is not None:
        sample_params["mean_loss"] = {"losses": loss}
    tables = []
    for cols in specs:
        name = SEPARATOR.join(cols)
        labels = pd.Series(record_groups(groups, cols), name=name)
        mf = MetricFrame(metrics=METRIC_FUNCTIONS, y_true=yt, y_pred=yp, sensitive_features=labels,
                         sample_params=sample_params or None)
        rows = []
        for group, values in mf.by_group.iterrows():
            metrics = {m: float(values[m]) for m in METRICS}
            metrics["count"] = int(values["count"])
            members = labels.to_numpy() == group
            intervals = rate_intervals(yt[members], yp[members])
            denoms = denominators(yt[members], yp[members])
            withheld = withhold(metrics, intervals, denoms, int(min_group_size))
            rows.append(GroupRow(group=str(group), count=int(values["count"]), metrics=metrics,
                                 sufficient=int(values["count"]) >= min_group_size, unknown=is_unknown(group),
                                 intervals=intervals, denominators=denoms, insufficient=withheld))
        tables.append(GroupTable(attribute=name, groups=rows, columns=list(cols), min_group_size=int(min_group_size)))
    return tables
