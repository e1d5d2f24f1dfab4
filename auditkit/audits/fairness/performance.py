"""Performance and calibration of the model on the test set, overall and per group of every attribute and
intersection the fairness audit uses.

Pure statistics: numpy, scipy and scikit-learn only (no torch, no I/O). In a group of ``n`` records, with
``y`` = the favourable outcome happened, ``ŷ`` = it was predicted (the model's arg-max class is the
favourable one; for a two-class model this is "probability of the favourable class above 0.5", for more
classes the favourable class against all others, one-vs-rest) and ``s`` = the predicted probability of the
favourable class::

    positives, negatives   #(y = 1), #(y = 0)
    prevalence             positives / n                         Wilson interval
    tp, fp, tn, fn         #(ŷ=1,y=1), #(ŷ=1,y=0), #(ŷ=0,y=0), #(ŷ=0,y=1)   (sklearn confusion_matrix)
    accuracy               (tp + tn) / n                         Wilson interval
    auroc                  P(s of a random positive > s of a random negative), ties ½ (sklearn roc_auc_score);
                           interval by DeLong's variance (DeLong, DeLong & Clarke-Pearson 1988, computed with
                           midranks as Sun & Xu 2014): AUROC ± z·√(S₁₀/m + S₀₁/k), clipped to [0, 1]
    ece                    Σ_b n_b/n · |observed_b − mean_predicted_b| over 10 equal-width bins of ``s``;
                           interval: bias-shifted percentile bootstrap of records resampled within the group
                           (seeded): [q_lo − b, q_hi − b] with b = mean(replicates) − ece, clipped at 0
    reliability            per bin: its bounds, n_b, mean_predicted_b = mean of s, observed_b = mean of y

Bins follow scikit-learn's ``calibration_curve(strategy="uniform")``: the edges are 0, 0.1, …, 1 and a
record falls in the bin whose upper edge is the first edge ≥ s (``np.searchsorted(edges[1:-1], s)``), so
bin 0 is [0, 0.1] and bin b > 0 is (b/10, (b+1)/10]. Empty bins are listed with ``n = 0`` and no means.

Minimum n, as for the fairness rates: each statistic needs ``min_n`` records in its own denominator
(prevalence, accuracy, ece and the reliability bins: the group's n; auroc: the smaller of positives and
negatives). Below it the statistic and its interval are None and ``insufficient`` maps its name to that
denominator. Confusion counts are always given; withholding them (suppression) is not this module's job.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import sklearn.metrics as skm
from scipy.stats import norm, rankdata

from auditkit.audits.jsonsafe import json_safe

from .metrics import GroupTable, as_binary, as_float, record_groups, wilson_interval

N_BINS = 10
OVERALL = "all records"
Interval = tuple[float, float] | None


@dataclass
class ReliabilityBin:
    """One bin of the reliability diagram: predicted probabilities in (bin_lower, bin_upper] (bin 0 closed)."""

    bin_lower: float
    bin_upper: float
    n: int
    mean_predicted: float | None
    observed_rate: float | None


@dataclass
class PerfRow:
    """Performance and calibration of one group (or of all records); formulas in the module docstring."""

    group: str
    n: int
    positives: int
    negatives: int
    tp: int
    fp: int
    tn: int
    fn: int
    prevalence: float | None = None
    prevalence_ci: Interval = None
    accuracy: float | None = None
    accuracy_ci: Interval = None
    auroc: float | None = None
    auroc_ci: Interval = None
    ece: float | None = None
    ece_ci: Interval = None
    reliability: list[ReliabilityBin] = field(default_factory=list)
    insufficient: dict[str, int] = field(default_factory=dict)
    suppressed: bool = False

    def to_dict(self) -> dict:
        out = asdict(self)
        for key in ("prevalence_ci", "accuracy_ci", "auroc_ci", "ece_ci"):
            out[key] = list(out[key]) if out[key] is not None else None
        return json_safe(out)


@dataclass
class Performance:
    """The performance part of the fairness findings: the decision threshold, the overall row and one list of
    rows per attribute (``groups``: ``[{"attribute", "rows"}]``)."""

    threshold: float | None
    n_classes: int
    overall: PerfRow
    groups: list[tuple[str, list[PerfRow]]]
    min_n: int
    confidence: float
    n_boot: int
    seed: int | None
    auroc_method: str = "delong"
    ece_method: str = "bootstrap, bias-shifted percentile"

    def to_dict(self) -> dict:
        return json_safe({"threshold": self.threshold, "n_classes": self.n_classes, "min_n": self.min_n,
                          "confidence": self.confidence, "n_boot": self.n_boot, "seed": self.seed,
                          "auroc_method": self.auroc_method, "ece_method": self.ece_method,
                          "bins": N_BINS, "overall": self.overall.to_dict(),
                          "groups": [{"attribute": a, "rows": [r.to_dict() for r in rows]}
                                     for a, rows in self.groups]})


# ---- the statistics ----

def bin_index(scores: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """The reliability bin of every score (scikit-learn's ``calibration_curve`` convention, module docstring)."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], scores)


def reliability_bins(y_true: np.ndarray, scores: np.ndarray, n_bins: int = N_BINS) -> list[ReliabilityBin]:
    """Every bin's bounds, size, mean predicted probability and observed rate of the favourable outcome."""
    edges = np.round(np.linspace(0.0, 1.0, n_bins + 1), 12)
    b = bin_index(scores, n_bins)
    total = np.bincount(b, minlength=n_bins)
    pred = np.bincount(b, weights=scores, minlength=n_bins)
    true = np.bincount(b, weights=y_true, minlength=n_bins)
    return [ReliabilityBin(float(edges[i]), float(edges[i + 1]), int(total[i]),
                           float(pred[i] / total[i]) if total[i] else None,
                           float(true[i] / total[i]) if total[i] else None) for i in range(n_bins)]


def expected_calibration_error(y_true: np.ndarray, scores: np.ndarray, n_bins: int = N_BINS) -> float:
    """ECE = Σ_b n_b/n · |observed_b − mean_predicted_b| over the non-empty bins (NaN for no records)."""
    if scores.size == 0:
        return math.nan
    b = bin_index(scores, n_bins)
    gap = np.bincount(b, weights=y_true - scores, minlength=n_bins)     # n_b · (observed_b − mean_predicted_b)
    return float(np.abs(gap).sum() / scores.size)


def ece_bootstrap(y_true: np.ndarray, scores: np.ndarray, *, n_boot: int, confidence: float,
                  rng: np.random.Generator, n_bins: int = N_BINS) -> Interval:
    """Bootstrap interval of the ECE from ``n_boot`` resamples of the records with replacement: the percentile
    interval shifted by the bootstrap's estimate of the bias, ``[q_lo − b, q_hi − b]`` with
    ``b = mean(replicates) − ece`` (lower end clipped at 0).

    The ECE sums absolute differences, so noise only adds to it: a resample's ECE is larger on average than the
    sample's, and the plain percentile interval can lie wholly above the estimate (e.g. 4.6 pp with replicates
    between 5 and 11 pp). Shifting by the estimated bias keeps the interval's width and puts it where the
    estimate is."""
    n = scores.size
    if n_boot < 1 or n == 0:
        return None
    b = bin_index(scores, n_bins)
    diff = y_true - scores
    reps = []
    chunk = max(1, 2_000_000 // n)
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        idx = rng.integers(0, n, size=(size, n))
        keys = (np.arange(size)[:, None] * n_bins + b[idx]).ravel()
        gaps = np.bincount(keys, weights=diff[idx].ravel(), minlength=size * n_bins).reshape(size, n_bins)
        reps.append(np.abs(gaps).sum(1) / n)
    reps = np.concatenate(reps)
    bias = float(reps.mean()) - expected_calibration_error(y_true, scores, n_bins)
    lo, hi = np.quantile(reps, [(1 - confidence) / 2, (1 + confidence) / 2]) - bias
    return (max(0.0, float(lo)), float(hi))


def delong_interval(y_true: np.ndarray, scores: np.ndarray, confidence: float) -> Interval:
    """DeLong's interval of the AUROC (module docstring), clipped to [0, 1]; None with fewer than two
    positives or negatives."""
    pos, neg = scores[y_true == 1], scores[y_true == 0]
    m, k = pos.size, neg.size
    if m < 2 or k < 2:
        return None
    both = rankdata(np.concatenate([pos, neg]))
    v10 = (both[:m] - rankdata(pos)) / k            # per positive: share of negatives it outranks (ties ½)
    v01 = 1.0 - (both[m:] - rankdata(neg)) / m      # per negative: share of positives that outrank it
    auc = float(v10.mean())
    se = math.sqrt(v10.var(ddof=1) / m + v01.var(ddof=1) / k)
    z = float(norm.ppf((1 + confidence) / 2))
    return (max(0.0, auc - z * se), min(1.0, auc + z * se))


def perf_row(group: str, y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray, *, min_n: int,
             confidence: float, n_boot: int, rng: np.random.Generator) -> PerfRow:
    """The :class:`PerfRow` of one group's records (``y_true``/``y_pred`` 0/1 arrays, ``scores`` in [0, 1])."""
    n = int(y_true.size)
    (tn, fp), (fn, tp) = skm.confusion_matrix(y_true, y_pred, labels=[0, 1]) if n else ((0, 0), (0, 0))
    positives = int(y_true.sum())
    row = PerfRow(group=group, n=n, positives=positives, negatives=n - positives,
                  tp=int(tp), fp=int(fp), tn=int(tn), fn=int(fn))
    if n < min_n:
        row.insufficient = {name: n for name in ("prevalence", "accuracy", "ece", "reliability")}
    else:
        row.prevalence, row.prevalence_ci = positives / n, wilson_interval(positives, n, confidence)
        row.accuracy, row.accuracy_ci = (int(tp) + int(tn)) / n, wilson_interval(int(tp) + int(tn), n, confidence)
        row.ece = expected_calibration_error(y_true, scores)
        row.ece_ci = ece_bootstrap(y_true, scores, n_boot=n_boot, confidence=confidence, rng=rng)
        row.reliability = reliability_bins(y_true, scores)
    smaller = min(positives, n - positives)
    if smaller < min_n:
        row.insufficient["auroc"] = smaller
    else:
        row.auroc = float(skm.roc_auc_score(y_true, scores))
        row.auroc_ci = delong_interval(y_true, scores, confidence)
    return row


def performance(y_true, y_pred, scores, *, groups: pd.DataFrame, tables: Sequence[GroupTable], min_n: int,
                confidence: float = 0.95, n_boot: int = 1000, seed: int | None = 0,
                n_classes: int = 2) -> Performance:
    """Performance and calibration overall and for every group of ``tables`` (the fairness audit's group tables,
    in their order): ``y_true``/``y_pred`` booleans meaning the favourable outcome (happened / predicted),
    ``scores`` the predicted probability of the favourable class, ``groups`` the sensitive columns of the same
    records. The bootstrap of row ``i`` (0: overall, then the tables' rows in order) draws from
    ``numpy.random.default_rng([seed, i])`` (the plugin passes the fairness bootstrap's seed: these streams are
    not the disparities' ``default_rng(seed)``)."""
    yt = as_binary("y_true", y_true)
    yp = as_binary("y_pred", y_pred, yt.size)
    s = as_float("scores", scores, yt.size)
    counter = itertools.count()

    def row(name: str, mask: np.ndarray) -> PerfRow:
        rng = np.random.default_rng([seed or 0, next(counter)])
        return perf_row(name, yt[mask], yp[mask], s[mask], min_n=min_n, confidence=confidence, n_boot=n_boot,
                        rng=rng)

    overall = row(OVERALL, np.ones(yt.size, dtype=bool))
    out = []
    for table in tables:
        labels = record_groups(groups, table.columns)
        out.append((table.attribute, [row(g.group, labels == g.group) for g in table.groups]))
    return Performance(threshold=0.5 if n_classes == 2 else None, n_classes=int(n_classes), overall=overall,
                       groups=out, min_n=int(min_n), confidence=float(confidence), n_boot=int(n_boot), seed=seed)
