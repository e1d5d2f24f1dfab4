"""Membership-inference evaluation and calibrated privacy flags.

Pure statistics: numpy and scikit-learn only (no torch, no I/O).

**Attack evaluation.** An attack gives every record a score, oriented so that *higher = more likely a
member* (e.g. the LOSS attack scores ``-loss``). Members (training records, ``n₁`` of them) are the
positives, non-members (held-out records, ``n₀``) the negatives. At a threshold ``τ`` the attack says
"member" when ``score ≥ τ``::

    TPR(τ) = #(member scores ≥ τ) / n₁        FPR(τ) = #(non-member scores ≥ τ) / n₀
    AUC    = P(score of a random member > score of a random non-member) + ½ P(tie)   sklearn roc_auc_score
    TPR@f  = max { TPR(τ) : FPR(τ) ≤ f }      read off the ROC, never interpolated (conservative)
    advantage = max over τ of TPR(τ) − FPR(τ)  (Yeom et al.; 0 for an attack no better than chance)

``τ`` runs over every distinct score, so tied scores move together (a tie is never split) and the ROC is
the exact empirical one. Following LiRA (Carlini et al. 2022) and ML Privacy Meter, attacks are
compared by TPR at a low FPR on a log-log ROC, not by AUC alone: a random guess has TPR@f = f. When
``n₀ < 1/f`` a single false positive already exceeds ``f``, so only thresholds with FPR = 0 qualify and
the estimate says nothing about the rate ``f``: it is reported as NaN and listed in ``unresolved_fprs``.

**Calibrated flags.** Given a per-record privacy risk (higher = more exposed) on ``m`` calibration
non-members, :func:`flag_threshold` picks ``t`` so that flagging ``risk > t`` flags at most a fraction
``budget`` of them. For a fresh non-member exchangeable with the calibration set the probability of a
(false) flag is at most ``(⌊budget·m⌋ + 1) / (m + 1) ≤ budget + (1 − budget)/(m + 1)``
(:func:`flag_false_alarm_rate`; derivation in :func:`flag_threshold`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import sklearn.metrics as skm

from auditkit.audits.jsonsafe import json_safe
from auditkit.errors import AuditkitWarning, InputError

DEFAULT_FPRS = (0.01, 0.001)
UNKNOWN = "unknown"


@dataclass
class AttackMetrics:
    """How well one membership-inference attack separates members from non-members (formulas: module docstring).

    ``tpr_at_fpr`` maps each target FPR to the highest TPR reached at an FPR ≤ the target (NaN for the
    targets in ``unresolved_fprs``: too few non-members to resolve them). ``roc`` holds the upper-left
    corners of the empirical ROC staircase at roughly log-spaced FPRs (both endpoints kept), for a log-log
    plot drawn as a step plot (``where="post"``), which never overstates the attack.
    """

    name: str
    n_members: int
    n_nonmembers: int
    auc: float
    tpr_at_fpr: dict[float, float]
    advantage: float
    random_baseline: dict
    roc: dict[str, list[float]]
    unresolved_fprs: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return json_safe({"name": self.name, "n_members": self.n_members, "n_nonmembers": self.n_nonmembers,
                          "auc": self.auc, "tpr_at_fpr": dict(self.tpr_at_fpr), "advantage": self.advantage,
                          "random_baseline": self.random_baseline, "roc": self.roc,
                          "unresolved_fprs": list(self.unresolved_fprs)})


class GroupedAttackMetrics(dict):
    """``{group: AttackMetrics | None}``; ``reasons[group]`` says why a group is ``None``."""

    def __init__(self, items=(), *, reasons: dict[str, str] | None = None, min_group_size: int = 30):
        super().__init__(items)
        self.reasons: dict[str, str] = dict(reasons or {})
        self.min_group_size = int(min_group_size)

    def to_dict(self) -> dict:
        groups = {}
        for g, m in self.items():
            groups[g] = m.to_dict() if m is not None else {"name": g, "skipped": self.reasons.get(g, "")}
        return {"min_group_size": self.min_group_size, "groups": groups}


# ---- validation ----

def _scores(name: str, values) -> np.ndarray:
    """``values`` as a non-empty, finite, 1-D float64 array."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be numbers (one score per record), got "
                         f"{type(values).__name__} that cannot be read as floats") from None
    if arr.ndim != 1:
        raise InputError(f"{name} must be 1-D (one score per record), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise InputError(f"{name} has no records: pass at least one")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise InputError(f"{name} contains NaN or infinite values in {int(bad.sum())} record(s): "
                         "pass finite numbers")
    return arr


def _fprs(fprs) -> tuple[float, ...]:
    try:
        values = tuple(float(f) for f in ((fprs,) if np.isscalar(fprs) else fprs))
    except (TypeError, ValueError):
        raise InputError(f"fprs={fprs!r} is not allowed: pass false-positive rates in (0, 1), "
                         "e.g. (0.01, 0.001)") from None
    if not values or not all(0 < f < 1 for f in values):
        raise InputError(f"fprs={fprs!r} is not allowed: pass false-positive rates in (0, 1), "
                         "e.g. (0.01, 0.001)")
    return tuple(dict.fromkeys(values))


def _budget(budget) -> float:
    if isinstance(budget, bool) or not isinstance(budget, int | float | np.integer | np.floating) \
            or not 0 < float(budget) < 1:
        raise InputError(f"budget={budget!r} is not allowed: it must be a fraction in (0, 1), "
                         "e.g. 0.01 to flag at most 1% of non-members")
    return float(budget)


def _group_labels(name: str, values, n: int, scores_name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=object)
    if arr.ndim != 1:
        raise InputError(f"{name} must be 1-D (one group label per record), got shape {arr.shape}")
    if arr.shape[0] != n:
        raise InputError(f"{name} has {arr.shape[0]} labels but {scores_name} has {n}: "
                         "pass one label per record")
    missing = [v is None or (isinstance(v, float | np.floating) and math.isnan(v)) for v in arr]
    return np.array([UNKNOWN if miss else str(v) for v, miss in zip(arr, missing, strict=True)], dtype=object)


# ---- attack evaluation ----

def _resolved(f: float, n_nonmembers: int) -> bool:
    """An FPR ``f`` is resolved when one false positive (1/n₀) does not already exceed it."""
    return f * n_nonmembers >= 1 - 1e-9


def _downsample_roc(fpr: np.ndarray, tpr: np.ndarray, max_points: int) -> dict[str, list[float]]:
    """Upper-left corners of the ROC at ~log-spaced FPRs in [1/n₀, 1], plus both endpoints."""
    if fpr.shape[0] <= max_points:
        keep = np.arange(fpr.shape[0])
    else:
        lowest = fpr[fpr > 0].min()
        grid = np.logspace(math.log10(lowest), 0.0, max(max_points - 2, 1))
        # For each grid FPR, the last ROC point with fpr ≤ it: the highest TPR reachable there.
        corners = np.searchsorted(fpr, grid * (1 + 1e-12), side="right") - 1
        keep = np.unique(np.concatenate([[0], corners, [fpr.shape[0] - 1]]))
    return {"fpr": [float(v) for v in fpr[keep]], "tpr": [float(v) for v in tpr[keep]]}


def attack_metrics(member_scores, nonmember_scores, *, fprs: Sequence[float] = DEFAULT_FPRS, name: str = "",
                   max_roc_points: int = 200) -> AttackMetrics:
    """AUC, TPR at each FPR in ``fprs``, advantage and a log-spaced ROC of one membership attack.

    Scores must be oriented so that higher means "more likely a member". TPR at FPR ``f`` is the TPR of
    the lowest threshold whose FPR is still ≤ ``f`` (equivalently the highest TPR among ROC points with
    FPR ≤ ``f``), without interpolating between ROC points: conservative, as LiRA and ML Privacy Meter
    report it. With fewer than ``1/f`` non-members the rate ``f`` cannot be resolved: NaN, and ``f`` is
    listed in ``unresolved_fprs``. Ties between scores are never split (exact empirical ROC).
    """
    pos = _scores("member_scores", member_scores)
    neg = _scores("nonmember_scores", nonmember_scores)
    targets = _fprs(fprs)
    if isinstance(max_roc_points, bool) or not isinstance(max_roc_points, int | np.integer) or max_roc_points < 3:
        raise InputError(f"max_roc_points={max_roc_points!r} is not allowed: it must be an integer ≥ 3")
    n1, n0 = int(pos.shape[0]), int(neg.shape[0])
    y = np.concatenate([np.ones(n1, dtype=np.int8), np.zeros(n0, dtype=np.int8)])
    s = np.concatenate([pos, neg])
    # drop_intermediate=False keeps every distinct threshold: a collinear point can be the one at FPR = f.
    fpr, tpr, _ = skm.roc_curve(y, s, drop_intermediate=False)
    auc = float(skm.roc_auc_score(y, s))
    tpr_at, unresolved = {}, []
    for f in targets:
        if _resolved(f, n0):
            tpr_at[f] = float(tpr[fpr <= f + 1e-12].max())
        else:
            tpr_at[f] = math.nan
            unresolved.append(f)
    return AttackMetrics(
        name=str(name), n_members=n1, n_nonmembers=n0, auc=auc, tpr_at_fpr=tpr_at,
        advantage=float(np.max(tpr - fpr)),
        random_baseline={"auc": 0.5, "tpr_at_fpr": {f: f for f in targets}},
        roc=_downsample_roc(fpr, tpr, int(max_roc_points)), unresolved_fprs=unresolved)


def attack_metrics_by_group(member_scores, nonmember_scores, member_groups, nonmember_groups, *,
                            min_group_size: int = 30, fprs: Sequence[float] = DEFAULT_FPRS, name: str = "",
                            max_roc_points: int = 200) -> GroupedAttackMetrics:
    """:func:`attack_metrics` within each group: members and non-members of the group only.

    Groups are the string forms of the labels (missing labels, None/NaN, become ``"unknown"``), in sorted
    order. A group with fewer than ``min_group_size`` members or non-members maps to ``None`` and the
    returned dict's ``reasons[group]`` gives both counts.
    """
    pos = _scores("member_scores", member_scores)
    neg = _scores("nonmember_scores", nonmember_scores)
    gpos = _group_labels("member_groups", member_groups, pos.shape[0], "member_scores")
    gneg = _group_labels("nonmember_groups", nonmember_groups, neg.shape[0], "nonmember_scores")
    if isinstance(min_group_size, bool) or not isinstance(min_group_size, int | np.integer) or min_group_size < 1:
        raise InputError(f"min_group_size={min_group_size!r} is not allowed: it must be an integer ≥ 1")
    targets = _fprs(fprs)
    out = GroupedAttackMetrics(min_group_size=int(min_group_size))
    for g in sorted(set(gpos.tolist()) | set(gneg.tolist())):
        k1, k0 = int(np.sum(gpos == g)), int(np.sum(gneg == g))
        if k1 < min_group_size or k0 < min_group_size:
            out[g] = None
            out.reasons[g] = (f"{k1} member(s) and {k0} non-member(s): each side needs at least "
                              f"min_group_size={min_group_size}")
            continue
        label = f"{name} [{g}]" if name else g
        out[g] = attack_metrics(pos[gpos == g], neg[gneg == g], fprs=targets, name=label,
                                max_roc_points=max_roc_points)
    return out


# ---- calibrated flags ----

def _flag_count(m: int, budget: float) -> int:
    """``⌊budget·m⌋``: how many calibration non-members the threshold may flag (guarded against 0.99·2000 noise)."""
    return int(math.floor(budget * m + 1e-9))


def flag_threshold(nonmember_risk, budget: float) -> float:
    """Threshold ``t`` such that flagging ``risk > t`` flags at most a fraction ``budget`` of calibration non-members.

    With the calibration risks sorted, ``r₍₁₎ ≤ … ≤ r₍ₘ₎``, ``t = r₍ₖ₎`` with ``k = ⌈(1 − budget)·m⌉ =
    m − ⌊budget·m⌋`` (the empirical ``1 − budget`` quantile, numpy ``method="inverted_cdf"``). At most
    ``m − k = ⌊budget·m⌋`` calibration risks exceed ``t`` (fewer if some tie with it).

    Guarantee. Let ``R`` be the risk of a fresh non-member, exchangeable with the ``m`` calibration risks.
    ``R > r₍ₖ₎`` means ``R`` exceeds at least ``k`` of the calibration values, so its rank among all
    ``m + 1`` values (ties broken at random) is ``> k``; that rank is uniform on ``1..m+1``, hence::

        P(R > t) ≤ (m + 1 − k)/(m + 1) = (⌊budget·m⌋ + 1)/(m + 1) ≤ budget + (1 − budget)/(m + 1),

    with equality in the first step for continuous risks (no ties); it also holds ``≥ budget·m/(m + 1)``
    then. This is the false-alarm rate averaged over calibration sets (:func:`flag_false_alarm_rate`).
    For one calibration set and continuous risks the realised rate is ``Beta(m + 1 − k, k)``
    distributed: mean as above, standard deviation ≈ ``√(⌊budget·m⌋ + 1)/(m + 1)``, so it is close to
    ``budget`` only when ``budget·m`` is large (e.g. ≥ 20 for ±25%).

    If ``budget < 1/m``, ``t`` is the largest calibration risk (no calibration non-member is flagged)
    and the guarantee is only ``1/(m + 1)``, above ``budget``: an :class:`AuditkitWarning` says so.
    """
    risk = _scores("nonmember_risk", nonmember_risk)
    b = _budget(budget)
    m = int(risk.shape[0])
    j = _flag_count(m, b)
    t = float(np.partition(risk, m - j - 1)[m - j - 1])
    if j == 0:
        warnings.warn(f"budget={b!r} is below 1/m = 1/{m}: the threshold is the largest calibration risk "
                      f"(no calibration non-member flagged) and a fresh non-member is flagged with probability "
                      f"up to 1/(m+1) = {1 / (m + 1):.3g}; calibrate on at least {math.ceil(1 / b)} non-members",
                      AuditkitWarning, stacklevel=2)
    return t


def flag_false_alarm_rate(m: int, budget: float) -> float:
    """Upper bound ``(⌊budget·m⌋ + 1)/(m + 1)`` on the false-alarm rate of :func:`flag_threshold` (exact without ties).

    The probability that a fresh non-member exchangeable with the ``m`` calibration non-members is
    flagged, averaged over calibration sets.
    """
    if isinstance(m, bool) or not isinstance(m, int | np.integer) or m < 1:
        raise InputError(f"m={m!r} is not allowed: it must be the number of calibration non-members, an integer ≥ 1")
    b = _budget(budget)
    return (_flag_count(int(m), b) + 1) / (int(m) + 1)


def realised_fpr(threshold: float, risk) -> float:
    """Fraction of ``risk`` values strictly above ``threshold``: the realised flag rate on non-members."""
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise InputError(f"threshold={threshold!r} is not allowed: pass a number, e.g. from flag_threshold") from None
    if math.isnan(t):
        raise InputError(f"threshold={threshold!r} is not allowed: pass a number, e.g. from flag_threshold")
    r = _scores("risk", risk)
    return float(np.mean(r > t))


__all__ = [
    "AttackMetrics",
    "GroupedAttackMetrics",
    "attack_metrics",
    "attack_metrics_by_group",
    "flag_threshold",
    "flag_false_alarm_rate",
    "realised_fpr",
    "json_safe",
]
