"""Disparities between groups, with confidence intervals valid at 0 % and 100 %.

For one :class:`~auditkit.audits.fairness.metrics.GroupTable` and one metric ``m``, with ``m_g`` the
metric in group ``g`` and ``r`` the reference group, over the groups ``G`` that take part (at least
``min_group_size`` records, not ``"unknown"``, ``m_g`` reported: its own denominator, e.g. the group's
positives for a TPR, is at least ``min_group_size``)::

    difference          max_g m_g − min_g m_g   (the best-off against the worst-off group)
    ratio               min_g m_g / max_g m_g
    worst_group         argmin_g m_g where higher is better (selection_rate, tpr, accuracy, precision, auc),
                        argmax_g m_g where lower is better (fpr, fnr, mean_loss); best_group the other end
    to_reference[g]     difference m_g − m_r, ratio m_g / m_r, for every g ≠ r

and for ``selection_rate`` (``sr``) two impact ratios, both read against the four-fifths rule
(a value below 0.8 is evidence of adverse impact):

    impact_ratio        min_{g ≠ r} sr_g / sr_r          (against the reference group; EEOC Uniform Guidelines)
    impact_ratio_max    min_g sr_g / max_g sr_g          (against the most selected group, as NYC Local Law 144
                                                          bias audits compute it; equals ``ratio``)

Confidence intervals (``method``):

- ``"newcombe"``, the rate metrics (selection_rate, tpr, fpr, fnr, accuracy, precision): a difference of two
  groups' rates gets Newcombe's hybrid score interval (1998, method 10), a ratio the MOVER-R interval with Wilson
  limits (Donner & Zou 2012), both from :mod:`auditkit.audits.fairness.intervals`, treating the two groups
  compared (the highest and the lowest; a group and the reference) as independent binomial samples. Both are
  valid at 0 % and 100 % (a bootstrap of 3/3 resamples to 3/3 every time and gives a width-0 interval). The
  interval of ``difference`` is that of the two groups at the ends, so it may reach below 0: the order of the
  two groups is then not settled by the data.
- ``"bootstrap"``, ``mean_loss`` and ``auc``: a group-stratified percentile bootstrap. Each replicate resamples,
  with replacement, ``n_g`` records from within each group ``g`` (every group keeps its size), recomputes every
  ``m_g`` and the statistics above; the interval is the ``(1 − c)/2`` and ``(1 + c)/2`` quantiles of the
  replicates. A replicate in which a statistic is undefined is left out (``n_boot_used``: the smallest number
  of replicates any interval rests on). When every replicate of a statistic is the same value the bootstrap
  has degenerated: that interval is not reported (NaN) and ``ci_note`` says why.

Groups left out are listed in ``excluded`` with the reason (e.g. ``"3 positives, fewer than 30"``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from auditkit.errors import InputError

from .findings import DENOMINATOR_WORDS
from .intervals import newcombe_difference, ratio_interval
from .metrics import GroupTable, as_binary, as_float, json_safe, rate_counts, record_groups

RATE_METRICS = ("selection_rate", "tpr", "fpr", "fnr", "accuracy", "precision")
RECORD_METRICS = ("mean_loss", "auc")
SUPPORTED = RATE_METRICS + RECORD_METRICS
HIGHER_IS_BETTER = {"selection_rate": True, "tpr": True, "accuracy": True, "precision": True, "auc": True,
                    "fpr": False, "fnr": False, "mean_loss": False}
FOUR_FIFTHS = 0.8

Interval = tuple[float, float]
NO_CI: Interval = (math.nan, math.nan)


@dataclass
class ImpactRatio:
    """A selection-rate impact ratio and its four-fifths reading.

    ``basis="reference"``: ``min_{g≠r} sr_g / sr_r``, ``compared_to`` the reference group.
    ``basis="most_selected"``: ``min_g sr_g / max_g sr_g``, ``compared_to`` the most selected group.
    ``group`` is the group the minimum belongs to; ``adverse_impact`` is ``value < threshold`` (``None``
    when the value is undefined).
    """

    basis: str
    value: float
    ci: Interval
    group: str | None
    compared_to: str | None
    threshold: float = FOUR_FIFTHS
    adverse_impact: bool | None = None

    def to_dict(self) -> dict:
        return json_safe({"basis": self.basis, "value": self.value, "ci": list(self.ci), "group": self.group,
                          "compared_to": self.compared_to, "threshold": self.threshold,
                          "adverse_impact": self.adverse_impact})


@dataclass
class Disparity:
    """Disparity of one metric across the groups of one attribute (formulas in the module docstring).

    ``status`` is ``"ok"`` or ``"insufficient_data"`` (then ``reason`` says why and the statistics are
    NaN/None). ``groups`` are the groups that take part, ``values`` their metric, ``excluded`` maps each
    group left out to why. Intervals are ``(low, high)`` at ``confidence``.
    """

    attribute: str
    metric: str
    status: str
    reason: str | None = None
    reference: str | None = None
    higher_is_better: bool = True
    groups: list[str] = field(default_factory=list)
    values: dict[str, float] = field(default_factory=dict)
    excluded: dict[str, str] = field(default_factory=dict)
    difference: float = math.nan
    difference_ci: Interval = NO_CI
    ratio: float = math.nan
    ratio_ci: Interval = NO_CI
    worst_group: str | None = None
    best_group: str | None = None
    to_reference: dict[str, dict] = field(default_factory=dict)
    impact_ratio: ImpactRatio | None = None
    impact_ratio_max: ImpactRatio | None = None
    confidence: float = 0.95
    n_boot: int = 0
    n_boot_used: int = 0
    seed: int | None = 0
    method: str = "newcombe"
    ci_note: str | None = None

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in ("attribute", "metric", "status", "reason", "reference",
                                             "higher_is_better", "groups", "values", "excluded", "difference",
                                             "ratio", "worst_group", "best_group", "confidence", "n_boot",
                                             "n_boot_used", "seed", "method", "ci_note")}
        out["difference_ci"] = list(self.difference_ci)
        out["ratio_ci"] = list(self.ratio_ci)
        out["to_reference"] = {g: {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
                               for g, d in self.to_reference.items()}
        out["impact_ratio"] = self.impact_ratio.to_dict() if self.impact_ratio else None
        out["impact_ratio_max"] = self.impact_ratio_max.to_dict() if self.impact_ratio_max else None
        return json_safe(out)


# ---- the statistics, vectorised over replicates ----

def _div(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.true_divide(a, b)
    return np.where(np.isfinite(out), out, np.nan)


def _auc_rows(s: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Row-wise ROC AUC by the Mann–Whitney statistic (average ranks for ties, as roc_auc_score)."""
    from scipy.stats import rankdata

    ranks = rankdata(s, axis=1)
    n1 = pos.sum(1).astype(np.float64)
    n0 = s.shape[1] - n1
    return _div((ranks * pos).sum(1) - n1 * (n1 + 1) / 2, n1 * n0)


def _bootstrap(rng, metrics, yt, s, loss, n_boot: int) -> dict[str, np.ndarray]:
    """``n_boot`` replicates of each record metric (mean_loss, auc) in one group (records resampled with
    replacement, size kept)."""
    n = yt.shape[0]
    chunk = max(1, 4_000_000 // n)
    parts: dict[str, list] = {m: [] for m in metrics}
    for start in range(0, n_boot, chunk):
        idx = rng.integers(0, n, size=(min(chunk, n_boot - start), n))
        for m in metrics:
            parts[m].append(loss[idx].mean(1) if m == "mean_loss" else _auc_rows(s[idx], yt[idx]))
    return {m: np.concatenate(parts[m]) for m in metrics}


def _ci(reps: np.ndarray, confidence: float) -> tuple[Interval, int]:
    """Percentile interval of the finite replicates and their number; NO_CI when there are none or when they
    are all equal (a degenerate bootstrap: see :func:`_one`)."""
    ok = reps[np.isfinite(reps)]
    if ok.size == 0 or ok.min() == ok.max():
        return NO_CI, int(ok.size)
    lo, hi = np.quantile(ok, [(1 - confidence) / 2, (1 + confidence) / 2])
    return (float(lo), float(hi)), int(ok.size)


# ---- validation ----

def _check_options(metrics, n_boot, confidence, seed) -> list[str]:
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    unknown = [m for m in metrics if m not in SUPPORTED]
    if unknown or not metrics:
        raise InputError(f"metrics={metrics!r} is not allowed: use one or more of {list(SUPPORTED)}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 0:
        raise InputError(f"n_boot={n_boot!r} is not allowed: it must be an integer ≥ 0 (0: no intervals)")
    if isinstance(confidence, bool) or not isinstance(confidence, float | int) or not 0 < confidence < 1:
        raise InputError(f"confidence={confidence!r} is not allowed: it must be a number between 0 and 1")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)):
        raise InputError(f"seed={seed!r} is not allowed: it must be an integer or None")
    return metrics


def _arrays(data, metrics, table: GroupTable, labels):
    if not isinstance(data, dict):
        raise InputError(f"data must be a dict with y_true, y_pred and groups, got {type(data).__name__}")
    need = ["y_true", "y_pred"] + (["groups"] if labels is None else []) + \
        (["losses"] if "mean_loss" in metrics else []) + (["scores"] if "auc" in metrics else [])
    missing = [k for k in need if data.get(k) is None]
    if missing:
        raise InputError(f"data lacks {missing}: metrics {metrics} need {need}")
    yt = as_binary("y_true", data["y_true"]).astype(bool)
    n = yt.shape[0]
    yp = as_binary("y_pred", data["y_pred"], n).astype(bool)
    s = as_float("scores", data.get("scores"), n)
    loss = as_float("losses", data.get("losses"), n)
    if labels is not None:
        labels = np.asarray(labels, dtype=object)
        if labels.shape != (n,):
            raise InputError(f"groups must hold one group label per record ({n}), got shape {labels.shape}")
        return yt, yp, s, loss, labels
    groups = data["groups"]
    if len(groups) != n:
        raise InputError(f"data['groups'] has {len(groups)} rows but y_true has {n}: pass one row per record")
    absent = [c for c in table.columns if c not in groups.columns]
    if absent:
        raise InputError(f"data['groups'] lacks column(s) {absent} of attribute {table.attribute!r}")
    return yt, yp, s, loss, record_groups(groups, table.columns)


# ---- the disparities ----

def disparities(table: GroupTable, *, data: dict, groups=None, reference: str | None = None,
                metrics: Sequence[str] = ("selection_rate", "tpr", "fpr", "fnr", "accuracy", "precision"),
                n_boot: int = 1000, confidence: float = 0.95, seed: int | None = 0) -> list[Disparity]:
    """One :class:`Disparity` per metric for ``table`` (formulas and intervals: module docstring).

    ``data`` holds the arrays the table was computed from: ``y_true``, ``y_pred`` (booleans, the
    favourable outcome), ``groups`` (the DataFrame of sensitive columns) and, for ``mean_loss`` /
    ``auc``, ``losses`` / ``scores``. ``groups``, if given, are the records' group labels in this table
    (e.g. ``"female & <40"``) and replace ``data["groups"]``. ``reference`` is a group of the table; by
    default the largest group with at least ``table.min_group_size`` records (first on a tie). Only groups
    with ``sufficient=True`` that are not unknown take part; with fewer than two, every metric gets
    ``status="insufficient_data"`` and a ``reason``. Seeded with ``numpy.random.default_rng(seed)``.
    """
    metrics = _check_options(metrics, n_boot, confidence, seed)
    if not isinstance(table, GroupTable):
        raise InputError(f"table must be a GroupTable from group_metrics, got {type(table).__name__}")
    labels = [r.group for r in table.groups]
    if reference is not None and reference not in labels:
        raise InputError(f"reference={reference!r} is not a group of attribute {table.attribute!r}: "
                         f"use one of {labels}")
    minimum = table.min_group_size
    excluded = {}
    for r in table.groups:
        if r.unknown:
            excluded[r.group] = "unknown (missing sensitive value)"
        elif not r.sufficient:
            excluded[r.group] = f"{r.count} records, fewer than {minimum}"
    eligible = [r for r in table.groups if r.group not in excluded]
    common = dict(attribute=table.attribute, confidence=float(confidence), n_boot=int(n_boot), seed=seed)

    def insufficient(metric: str, reason: str, ref=None, ex=excluded) -> Disparity:
        return Disparity(metric=metric, status="insufficient_data", reason=reason, reference=ref,
                         higher_is_better=HIGHER_IS_BETTER[metric], excluded=dict(ex),
                         method="bootstrap" if metric in RECORD_METRICS else "newcombe", **common)

    if len(eligible) < 2:
        reason = (f"{'no group' if not eligible else 'only one group'} with at least {minimum} records"
                  + (f" ({eligible[0].group})" if eligible else "")
                  + (f"; left out: {', '.join(f'{g} ({why})' for g, why in excluded.items())}" if excluded else ""))
        return [insufficient(m, reason) for m in metrics]
    if reference is None:
        reference = max(eligible, key=lambda r: r.count).group  # max keeps the first on ties
    elif reference in excluded:
        return [insufficient(m, f"reference group {reference!r} cannot be compared: {excluded[reference]}",
                             reference) for m in metrics]

    yt, yp, s, loss, rec = _arrays(data, metrics, table, groups)
    rng = np.random.default_rng(seed)
    record_metrics = [m for m in metrics if m in RECORD_METRICS]
    counts: dict[str, dict[str, tuple[int, int]]] = {}
    reps: dict[str, dict[str, np.ndarray]] = {}
    for r in eligible:
        mask = rec == r.group
        if int(mask.sum()) != r.count:
            raise InputError(f"data does not match the table: group {r.group!r} of {table.attribute!r} has "
                             f"{int(mask.sum())} records in data but {r.count} in the table")
        counts[r.group] = rate_counts(yt[mask], yp[mask])
        if n_boot and record_metrics:
            reps[r.group] = _bootstrap(rng, record_metrics, yt[mask], None if s is None else s[mask],
                                       None if loss is None else loss[mask], n_boot)
    return [_one(metric, eligible, reference, excluded, counts, reps, confidence, n_boot, common, insufficient,
                 minimum) for metric in metrics]


def _left_out(row, metric: str, minimum: int) -> str:
    """Why a group large enough overall takes no part in ``metric``'s comparison."""
    if metric in row.insufficient:
        return f"{row.insufficient[metric]} {DENOMINATOR_WORDS[metric]}, fewer than {minimum}"
    return f"{metric} undefined in this group"


def _one(metric, eligible, reference, excluded, counts, reps, confidence, n_boot, common, insufficient,
         minimum) -> Disparity:
    higher = HIGHER_IS_BETTER[metric]
    excluded = dict(excluded)
    taking = []
    for r in eligible:
        if math.isfinite(r.metrics.get(metric, math.nan)):
            taking.append(r)
        else:
            excluded[r.group] = _left_out(r, metric, minimum)
    names = [r.group for r in taking]
    if reference not in names:
        why = excluded.get(reference, f"{metric} undefined")
        return insufficient(metric, f"{metric} is not reported in the reference group {reference!r} ({why})",
                            reference, excluded)
    if len(taking) < 2:
        return insufficient(metric, f"{metric} is reported only in the reference group {reference!r} among the "
                                    "groups large enough to compare", reference, excluded)
    v = np.array([r.metrics[metric] for r in taking], dtype=np.float64)
    ref = names.index(reference)
    lo_i, hi_i = int(np.argmin(v)), int(np.argmax(v))
    if metric in RATE_METRICS:
        out = _by_score(metric, names, v, ref, lo_i, hi_i, counts, confidence, higher, excluded, common)
    else:
        out = _by_bootstrap(metric, names, v, ref, lo_i, hi_i, reps, confidence, n_boot, higher, excluded, common)
    out.reference = reference
    return out


def _by_score(metric, names, v, ref, lo_i, hi_i, counts, confidence, higher, excluded, common) -> Disparity:
    """A rate metric's disparity with Newcombe (difference) and MOVER-R (ratio) intervals."""
    k = {g: counts[g][metric] for g in names}

    def diff_ci(a: str, b: str) -> Interval:
        return newcombe_difference(*k[a], *k[b], confidence)

    def ratio_ci(a: str, b: str) -> Interval:
        return ratio_interval(*k[a], *k[b], confidence)

    lo, hi, r = names[lo_i], names[hi_i], names[ref]
    out = Disparity(metric=metric, status="ok", higher_is_better=higher, groups=list(names),
                    values={g: float(x) for g, x in zip(names, v, strict=True)}, excluded=excluded,
                    difference=float(v[hi_i] - v[lo_i]), difference_ci=diff_ci(hi, lo),
                    ratio=float(_div(v[lo_i], v[hi_i])), ratio_ci=ratio_ci(lo, hi),
                    worst_group=lo if higher else hi, best_group=hi if higher else lo, method="newcombe",
                    **common)
    for j, g in enumerate(names):
        if j != ref:
            out.to_reference[g] = {"difference": float(v[j] - v[ref]), "difference_ci": diff_ci(g, r),
                                   "ratio": float(_div(v[j], v[ref])), "ratio_ci": ratio_ci(g, r)}
    if metric == "selection_rate":
        others = [j for j in range(len(names)) if j != ref]
        to_ref = _div(v[others], v[ref])
        j = others[int(np.nanargmin(to_ref))] if np.isfinite(to_ref).any() else others[0]
        value = float(np.nanmin(to_ref)) if np.isfinite(to_ref).any() else math.nan
        out.impact_ratio = ImpactRatio("reference", value, ratio_ci(names[j], r), names[j], r,
                                       adverse_impact=None if math.isnan(value) else value < FOUR_FIFTHS)
        out.impact_ratio_max = ImpactRatio("most_selected", out.ratio, out.ratio_ci, lo, hi,
                                           adverse_impact=None if math.isnan(out.ratio) else out.ratio < FOUR_FIFTHS)
    return out


def _by_bootstrap(metric, names, v, ref, lo_i, hi_i, reps, confidence, n_boot, higher, excluded,
                  common) -> Disparity:
    """A record metric's (mean loss, AUC) disparity with group-stratified bootstrap intervals."""
    B = np.column_stack([reps[g][metric] for g in names]) if n_boot else np.empty((0, len(names)))
    used, degenerate = [n_boot], []

    def ci(x, what: str):
        if not n_boot:
            return NO_CI
        interval, k = _ci(x, confidence)
        used.append(k)
        if k and math.isnan(interval[0]):
            degenerate.append(what)
        return interval

    boot_min, boot_max = B.min(1), B.max(1)  # NaN in any group makes the replicate NaN: left out
    out = Disparity(metric=metric, status="ok", higher_is_better=higher, groups=list(names),
                    values={g: float(x) for g, x in zip(names, v, strict=True)}, excluded=excluded,
                    difference=float(v[hi_i] - v[lo_i]), difference_ci=ci(boot_max - boot_min, "difference"),
                    ratio=float(_div(v[lo_i], v[hi_i])), ratio_ci=ci(_div(boot_min, boot_max), "ratio"),
                    worst_group=names[lo_i if higher else hi_i], best_group=names[hi_i if higher else lo_i],
                    method="bootstrap", **common)
    for j, g in enumerate(names):
        if j != ref:
            out.to_reference[g] = {"difference": float(v[j] - v[ref]),
                                   "difference_ci": ci(B[:, j] - B[:, ref], f"difference of {g}"),
                                   "ratio": float(_div(v[j], v[ref])),
                                   "ratio_ci": ci(_div(B[:, j], B[:, ref]), f"ratio of {g}")}
    out.n_boot_used = int(min(used))
    if degenerate:
        out.ci_note = (f"no interval for the {', '.join(degenerate)}: every bootstrap resample gave the same value, "
                       "so the bootstrap cannot measure its uncertainty")
    return out
