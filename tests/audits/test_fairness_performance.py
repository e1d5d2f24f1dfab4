"""Performance and calibration (auditkit.audits.fairness.performance) on the heart example's test split, against
scikit-learn (confusion_matrix, accuracy_score, roc_auc_score, calibration_curve), numpy, a hand computation of
the ECE, the Wilson closed form and DeLong's variance computed pair by pair."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sklearn.metrics as skm
import torch
from conftest import ROOT
from scipy.stats import norm
from sklearn.calibration import calibration_curve

from auditkit.audits.base import probabilities
from auditkit.audits.fairness.metrics import group_metrics, record_groups
from auditkit.audits.fairness.performance import (
    delong_interval,
    ece_bootstrap,
    expected_calibration_error,
    performance,
)
from auditkit.config import load_config
from auditkit.inputs import load_data, load_model

MIN_N = 30


@pytest.fixture(scope="module")
def heart():
    """The heart example's test split as ``auditkit run`` has it: labels, decisions, scores, groups and the
    performance part computed from them (the fairness audit's attributes and intersection, its min size)."""
    torch.set_num_threads(1)
    config = load_config(ROOT / "examples/heart_disease/audit.yaml")
    data = load_data(config)
    model = load_model(config, data.splits)
    test = data.splits["test"]
    with torch.no_grad():
        proba = probabilities(model(torch.tensor(test.X)), "cross_entropy").double().numpy()
    fav = test.favourable_index
    yt, yp, s = test.y == fav, proba.argmax(1) == fav, proba[:, fav]
    tables = group_metrics(yt, yp, scores=s, losses=None, groups=test.groups, attributes=["sex", "age_band"],
                           intersections=[["sex", "age_band"]], min_group_size=MIN_N)
    perf = performance(yt, yp, s, groups=test.groups, tables=tables, min_n=MIN_N, n_boot=200, seed=7)
    masks = {("all", "all records"): np.ones(yt.size, dtype=bool)}
    for t in tables:
        labels = record_groups(test.groups, t.columns)
        masks.update({(t.attribute, g.group): labels == g.group for g in t.groups})
    rows = {("all", "all records"): perf.overall}
    rows.update({(a, r.group): r for a, rs in perf.groups for r in rs})
    return {"y": yt.astype(int), "pred": yp.astype(int), "s": s, "perf": perf, "rows": rows, "masks": masks,
            "proba": proba}


def test_every_row_against_scikit_learn(heart):
    """n, positives, confusion counts, prevalence, accuracy and AUROC of every row, and which are withheld."""
    assert set(heart["rows"]) == set(heart["masks"]) and len(heart["rows"]) == 9
    assert heart["perf"].threshold == 0.5
    # the threshold is what the decision is: argmax of two probabilities = probability of "yes" above 0.5
    assert np.array_equal(heart["pred"], (heart["s"] > 0.5).astype(int))
    checked_auroc = 0
    for key, row in heart["rows"].items():
        m = heart["masks"][key]
        y, p, s = heart["y"][m], heart["pred"][m], heart["s"][m]
        (tn, fp), (fn, tp) = skm.confusion_matrix(y, p, labels=[0, 1])
        assert (row.group, row.n, row.positives, row.negatives) == (key[1], m.sum(), y.sum(), (1 - y).sum())
        assert (row.tp, row.fp, row.tn, row.fn) == (tp, fp, tn, fn)
        if row.n >= MIN_N:
            assert row.prevalence == pytest.approx(np.mean(y), abs=1e-15)
            assert row.accuracy == pytest.approx(skm.accuracy_score(y, p), abs=1e-15)
            assert row.ece == pytest.approx(hand_ece(y, s), abs=1e-12)
        else:
            assert row.prevalence is row.accuracy is row.ece is None and row.reliability == []
            assert {k: row.insufficient[k] for k in ("prevalence", "accuracy", "ece")} == dict.fromkeys(
                ("prevalence", "accuracy", "ece"), row.n)
        if min(row.positives, row.negatives) >= MIN_N:
            assert row.auroc == pytest.approx(skm.roc_auc_score(y, s), abs=1e-15)
            checked_auroc += 1
        else:
            assert row.auroc is None and row.auroc_ci is None
            assert row.insufficient["auroc"] == min(row.positives, row.negatives)
    assert checked_auroc >= 3       # all records, Male, <55 at least
    # the numbers the example gives (test split of 230 patients, seed 0): a regression anchor, checked above
    overall = heart["perf"].overall
    assert (overall.n, overall.positives, overall.tp, overall.fp, overall.tn, overall.fn) == (230, 123, 107, 14, 93, 16)


def hand_ece(y, s) -> float:
    """ECE by a plain loop: bin 0 = [0, 0.1], bin b = (b/10, (b+1)/10] (scikit-learn's calibration_curve)."""
    total = 0.0
    for b in range(10):
        lo, hi = b / 10, (b + 1) / 10
        inside = [(yi, si) for yi, si in zip(y, s, strict=True) if (si > lo or b == 0) and si <= hi]
        if inside:
            observed = sum(yi for yi, _ in inside) / len(inside)
            predicted = sum(si for _, si in inside) / len(inside)
            total += len(inside) * abs(observed - predicted)
    return total / len(y)


def test_ece_of_a_worked_example():
    """Five records: bin (0.1, 0.2] holds 0.15, 0.2 (one positive), bin (0.8, 0.9] holds 0.85, 0.9 (both positive),
    bin (0.5, 0.6] holds 0.55 (negative): ECE = (2·|0.5−0.175| + 2·|1−0.875| + |0−0.55|)/5 = 1.45/5 = 0.29."""
    y = np.array([0, 1, 1, 1, 0])
    s = np.array([0.15, 0.2, 0.85, 0.9, 0.55])
    assert expected_calibration_error(y, s) == pytest.approx(0.29, abs=1e-12)
    assert hand_ece(y, s) == pytest.approx(0.29, abs=1e-12)


def test_reliability_bins_match_calibration_curve(heart):
    for key, row in heart["rows"].items():
        if not row.reliability:
            continue
        m = heart["masks"][key]
        y, s = heart["y"][m], heart["s"][m]
        prob_true, prob_pred = calibration_curve(y, s, n_bins=10, strategy="uniform")
        filled = [b for b in row.reliability if b.n]
        assert [b.observed_rate for b in filled] == pytest.approx(prob_true, abs=1e-12)
        assert [b.mean_predicted for b in filled] == pytest.approx(prob_pred, abs=1e-12)
        assert sum(b.n for b in row.reliability) == row.n and len(row.reliability) == 10
        assert [(b.bin_lower, b.bin_upper) for b in row.reliability] == [(i / 10, (i + 1) / 10) for i in range(10)]
        # ECE from the bins equals the module's and the hand computation's
        assert sum(b.n * abs(b.observed_rate - b.mean_predicted) for b in filled) / row.n == pytest.approx(row.ece)


def test_prevalence_and_accuracy_intervals_are_wilson_closed_forms(heart):
    z = norm.ppf(0.975)

    def wilson(k, n):
        p = k / n
        centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        return ((centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n))

    for row in heart["rows"].values():
        if row.prevalence is None:
            continue
        assert row.prevalence_ci == pytest.approx(wilson(row.positives, row.n), abs=1e-12)
        assert row.accuracy_ci == pytest.approx(wilson(row.tp + row.tn, row.n), abs=1e-12)
        assert row.prevalence_ci[0] < row.prevalence < row.prevalence_ci[1]


def test_auroc_interval_is_delong_computed_pair_by_pair(heart):
    """DeLong's variance S10/m + S01/k from the placement values of every (positive, negative) pair, ties ½."""
    checked = 0
    for key, row in heart["rows"].items():
        if row.auroc is None:
            continue
        m = heart["masks"][key]
        y, s = heart["y"][m], heart["s"][m]
        pos, neg = s[y == 1], s[y == 0]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        v10, v01 = psi.mean(1), psi.mean(0)
        assert v10.mean() == pytest.approx(row.auroc, abs=1e-12)
        se = math.sqrt(v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size)
        z = norm.ppf(0.975)
        assert row.auroc_ci == pytest.approx([max(0, row.auroc - z * se), min(1, row.auroc + z * se)], abs=1e-12)
        checked += 1
    assert checked >= 3
    # with ties: midranks give the same placements as the pairwise kernel
    y = np.array([1, 1, 1, 0, 0, 0, 1, 0])
    s = np.array([0.9, 0.5, 0.5, 0.5, 0.2, 0.9, 0.3, 0.1])
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    se = math.sqrt(psi.mean(1).var(ddof=1) / 4 + psi.mean(0).var(ddof=1) / 4)
    auc = skm.roc_auc_score(y, s)
    assert auc + norm.ppf(0.95) * se > 1     # the upper end is clipped to 1
    assert delong_interval(y, s, 0.9) == pytest.approx((auc - norm.ppf(0.95) * se, 1.0), abs=1e-12)


def test_ece_interval_is_a_seeded_bias_shifted_bootstrap(heart):
    """The vectorised bootstrap equals ECE recomputed on each resample drawn with the same generator, its
    percentile interval shifted by the replicates' mean minus the estimate; the run's seed fixes it; every
    row's estimate lies inside its interval."""
    y, s = heart["y"], heart["s"]
    got = ece_bootstrap(y, s, n_boot=50, confidence=0.9, rng=np.random.default_rng(3))
    idx = np.random.default_rng(3).integers(0, y.size, size=(50, y.size))
    reps = [expected_calibration_error(y[i], s[i]) for i in idx]
    bias = np.mean(reps) - hand_ece(y, s)
    assert bias > 0                                  # resampling noise inflates the ECE
    assert got == pytest.approx(tuple(np.quantile(reps, [0.05, 0.95]) - bias), abs=1e-12)
    for row in heart["rows"].values():
        if row.ece is not None:
            assert 0 <= row.ece_ci[0] < row.ece < row.ece_ci[1]
    row = heart["perf"].overall
    again = performance(heart["y"], heart["pred"], s, groups=None, tables=[], min_n=MIN_N, n_boot=200, seed=7)
    assert again.overall.ece_ci == row.ece_ci and row.ece_ci[0] < row.ece_ci[1]
    other = performance(heart["y"], heart["pred"], s, groups=None, tables=[], min_n=MIN_N, n_boot=200, seed=8)
    assert other.overall.ece_ci != row.ece_ci


def test_a_multiclass_model_is_read_one_vs_rest(heart):
    """Three classes: no single threshold; the favourable class's probability and arg-max decision are used."""
    y = heart["y"]
    perf = performance(y, heart["pred"], heart["s"], groups=None, tables=[], min_n=MIN_N, n_boot=0, seed=0,
                       n_classes=3)
    assert perf.threshold is None and perf.overall.ece_ci is None
    assert perf.overall.auroc == pytest.approx(skm.roc_auc_score(y, heart["s"]))
