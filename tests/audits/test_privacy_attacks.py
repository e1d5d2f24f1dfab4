"""Membership-inference statistics and calibrated flags: exact hand-made numbers, brute force with ties,
null and Gaussian simulations against theory, flag calibration on fresh non-members, groups, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import sklearn.metrics as skm
from scipy import stats

from auditkit.audits.privacy.attacks import (
    AttackMetrics,
    attack_metrics,
    attack_metrics_by_group,
    flag_false_alarm_rate,
    flag_threshold,
    realised_fpr,
)
from auditkit.errors import AuditkitWarning, InputError


def brute_force(pos, neg, fprs):
    """Every threshold tried one by one: AUC by pair counting, TPR@FPR and advantage from the ROC points."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    thresholds = np.concatenate([np.unique(np.concatenate([pos, neg])), [np.inf]])
    points = [(np.mean(neg >= t), np.mean(pos >= t)) for t in thresholds]
    diff = pos[:, None] - neg[None, :]
    auc = np.mean(diff > 0) + 0.5 * np.mean(diff == 0)
    tpr_at = {f: max(tp for fp, tp in points if fp <= f) for f in fprs}
    return auc, tpr_at, max(tp - fp for fp, tp in points)


# ---- (1) hand-made example ----

def test_hand_made_example_exact_numbers():
    # Members 4,3,3,2,1 and non-members 3,2,1,1,0 (ties at 3, 2 and 1). "Member" when score ≥ τ:
    #   τ = 4: FPR 0/5, TPR 1/5;  τ = 3: 1/5, 3/5;  τ = 2: 2/5, 4/5;  τ = 1: 4/5, 5/5;  τ = 0: 1, 1.
    # AUC by pairs: member 4 beats 5; each 3 beats 4 and ties 1 (4.5 twice); 2 beats 3, ties 1 (3.5);
    # 1 beats 1, ties 2 (2): (5 + 9 + 3.5 + 2)/25 = 0.78.
    m = attack_metrics([4, 3, 3, 2, 1], [3, 2, 1, 1, 0], fprs=(0.5, 0.2, 0.1), name="hand")
    assert isinstance(m, AttackMetrics)
    assert (m.name, m.n_members, m.n_nonmembers) == ("hand", 5, 5)
    assert m.auc == pytest.approx(0.78, abs=1e-12)
    # FPR ≤ 0.5 reaches the point (0.4, 0.8): not interpolated toward (0.8, 1.0), which would give 0.85.
    assert m.tpr_at_fpr[0.5] == pytest.approx(0.8)
    assert m.tpr_at_fpr[0.2] == pytest.approx(0.6)
    # One false positive is 1/5 = 0.2 > 0.1: the rate 0.1 cannot be resolved with 5 non-members.
    assert math.isnan(m.tpr_at_fpr[0.1])
    assert m.unresolved_fprs == [0.1]
    assert m.advantage == pytest.approx(0.4)
    assert m.random_baseline == {"auc": 0.5, "tpr_at_fpr": {0.5: 0.5, 0.2: 0.2, 0.1: 0.1}}
    assert m.roc == {"fpr": pytest.approx([0, 0, .2, .4, .8, 1]), "tpr": pytest.approx([0, .2, .6, .8, 1, 1])}
    d = m.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["tpr_at_fpr"] == {"0.5": pytest.approx(0.8), "0.2": pytest.approx(0.6), "0.1": None}
    assert d["random_baseline"]["tpr_at_fpr"] == {"0.5": 0.5, "0.2": 0.2, "0.1": 0.1}
    assert d["unresolved_fprs"] == [0.1]


def test_resolution_boundary_is_one_false_positive():
    # 1,000 non-members resolve FPR 0.001 (one false positive is exactly 0.1%); 999 do not.
    rng = np.random.default_rng(3)
    assert attack_metrics(rng.normal(size=50), rng.normal(size=1000)).unresolved_fprs == []
    assert attack_metrics(rng.normal(size=50), rng.normal(size=999)).unresolved_fprs == [0.001]
    assert attack_metrics(rng.normal(size=50), rng.normal(size=99)).unresolved_fprs == [0.01, 0.001]


@pytest.mark.parametrize("seed", range(6))
def test_ties_agree_with_brute_force(seed):
    rng = np.random.default_rng(seed)
    pos = rng.integers(0, 8, size=rng.integers(20, 60)) + (seed % 2)   # heavy ties
    neg = rng.integers(0, 8, size=rng.integers(20, 60))
    fprs = (0.05, 0.1, 0.25, 0.5)
    auc, tpr_at, adv = brute_force(pos, neg, fprs)
    m = attack_metrics(pos, neg, fprs=fprs)
    assert m.auc == pytest.approx(auc, abs=1e-12)
    assert m.advantage == pytest.approx(adv, abs=1e-12)
    for f in fprs:
        assert m.tpr_at_fpr[f] == pytest.approx(tpr_at[f], abs=1e-12), f


def test_all_scores_equal():
    m = attack_metrics([1.0] * 40, [1.0] * 200)
    assert m.auc == 0.5 and m.advantage == 0.0
    assert m.tpr_at_fpr[0.01] == 0.0 and math.isnan(m.tpr_at_fpr[0.001])
    assert m.roc == {"fpr": [0.0, 1.0], "tpr": [0.0, 1.0]}


# ---- (2) members and non-members from one distribution ----

def test_identical_distributions_are_random_guessing():
    rng = np.random.default_rng(0)
    n = 50_000
    m = attack_metrics(rng.normal(size=n), rng.normal(size=n))
    se_auc = math.sqrt((2 * n + 1) / (12 * n * n))                     # Mann-Whitney null
    assert abs(m.auc - 0.5) < 4 * se_auc
    for f in (0.01, 0.001):
        se = math.sqrt(2 * f * (1 - f) / n)                            # member TPR + threshold noise
        assert abs(m.tpr_at_fpr[f] - f) < 4 * se, (f, m.tpr_at_fpr[f])
    assert m.advantage < 1.95 * math.sqrt(2 / n)                       # two-sample KS statistic, 0.1% level


# ---- (3) separated Gaussians against theory ----

def test_gaussian_shift_matches_theory():
    rng = np.random.default_rng(1)
    n, delta = 20_000, 1.0
    m = attack_metrics(rng.normal(delta, 1, size=n), rng.normal(0, 1, size=n))
    auc = stats.norm.cdf(delta / math.sqrt(2))
    q1, q2 = auc / (2 - auc), 2 * auc ** 2 / (1 + auc)                # Hanley-McNeil standard error
    se_auc = math.sqrt((auc * (1 - auc) + (n - 1) * (q1 - auc ** 2) + (n - 1) * (q2 - auc ** 2)) / n ** 2)
    assert abs(m.auc - auc) < 4 * se_auc, (m.auc, auc)
    for f in (0.01, 0.001):
        z = stats.norm.ppf(1 - f)
        tpr = 1 - stats.norm.cdf(z - delta)
        lr = math.exp(delta * z - delta ** 2 / 2)                      # member/non-member density at threshold
        se = math.sqrt(tpr * (1 - tpr) / n + lr ** 2 * f * (1 - f) / n)
        assert abs(m.tpr_at_fpr[f] - tpr) < 4 * se, (f, m.tpr_at_fpr[f], tpr)
    # Advantage of two unit Gaussians: 2Φ(Δ/2) − 1.
    assert m.advantage == pytest.approx(2 * stats.norm.cdf(delta / 2) - 1, abs=0.03)


def test_roc_is_downsampled_on_a_log_scale():
    rng = np.random.default_rng(2)
    pos, neg = rng.normal(0.5, 1, size=30_000), rng.normal(size=30_000)
    m = attack_metrics(pos, neg)
    fpr, tpr = np.array(m.roc["fpr"]), np.array(m.roc["tpr"])
    assert 50 <= len(fpr) <= 200
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    # Every kept point is a point of the exact ROC.
    y = np.r_[np.ones(pos.size), np.zeros(neg.size)]
    full_fpr, full_tpr, _ = skm.roc_curve(y, np.r_[pos, neg], drop_intermediate=False)
    exact = set(zip(full_fpr.tolist(), full_tpr.tolist(), strict=True))
    assert all((a, b) in exact for a, b in zip(fpr.tolist(), tpr.tolist(), strict=True))
    # Log spacing: every decade of FPR from 1e-4 to 1 gets a comparable share of the points.
    per_decade = [np.sum((fpr >= 10.0 ** -k) & (fpr < 10.0 ** (1 - k))) for k in (1, 2, 3)]
    assert min(per_decade) >= 25, per_decade
    # The conservative TPR@1% is the kept point at the largest FPR ≤ 1%.
    assert m.tpr_at_fpr[0.01] == tpr[fpr <= 0.01].max()


# ---- (4) flag calibration on fresh non-members ----

@pytest.mark.parametrize("seed", range(10))
def test_flag_rate_on_fresh_nonmembers_budget_1pct(seed):
    rng = np.random.default_rng(seed)
    t = flag_threshold(rng.normal(size=2_000), 0.01)
    fpr = realised_fpr(t, rng.normal(size=20_000))
    assert 0.005 <= fpr <= 0.02, fpr


@pytest.mark.parametrize("seed", range(10))
def test_flag_rate_on_fresh_nonmembers_budget_01pct(seed):
    # At 0.1% the realised rate of one calibration is Beta(⌊bm⌋+1, …): with m = 2,000 only 3 calibration
    # values lie above the threshold and about 1 calibration in 3 lands outside a factor of two (see the
    # next test). m = 20,000 (21 above) keeps it within a factor of two; 200,000 fresh non-members
    # measure a 0.1% rate to ±7%.
    rng = np.random.default_rng(seed)
    t = flag_threshold(rng.exponential(size=20_000), 0.001)
    fpr = realised_fpr(t, rng.exponential(size=200_000))
    assert 0.0005 <= fpr <= 0.002, fpr


@pytest.mark.parametrize(("m", "budget"), [(2_000, 0.01), (2_000, 0.001), (500, 0.01)])
def test_flag_rate_distribution_matches_theory(m, budget):
    # Over many calibration sets the exact false-alarm rate 1 − Φ(t) of a threshold is Beta(j+1, m−j)
    # with j = ⌊budget·m⌋; its mean (j+1)/(m+1) is flag_false_alarm_rate, above budget by up to 1/(m+1).
    rng = np.random.default_rng(12345)
    rates = np.array([stats.norm.sf(flag_threshold(rng.normal(size=m), budget)) for _ in range(400)])
    j = math.floor(budget * m + 1e-9)
    bound = flag_false_alarm_rate(m, budget)
    assert bound == pytest.approx((j + 1) / (m + 1))
    assert bound <= budget + (1 - budget) / (m + 1) + 1e-15
    assert abs(rates.mean() - bound) < 4 * rates.std(ddof=1) / math.sqrt(rates.size)
    assert stats.kstest(rates, stats.beta(j + 1, m - j).cdf).pvalue > 0.001


def test_flag_threshold_order_statistic_exact():
    risk = np.arange(1, 101, dtype=float)[::-1]
    t = flag_threshold(risk, 0.05)                                    # k = 95th smallest
    assert t == 95.0
    assert realised_fpr(t, risk) == 0.05
    assert t == np.quantile(risk, 0.95, method="inverted_cdf")
    assert flag_threshold(np.arange(1, 2001, dtype=float), 0.01) == 1980.0   # ⌈0.99·2000⌉, no float drift
    # Ties at the threshold are not flagged: the realised rate may fall below the budget, never above.
    tied = np.r_[np.ones(90), np.full(10, 2.0)]
    assert flag_threshold(tied, 0.05) == 2.0 and realised_fpr(2.0, tied) == 0.0
    assert flag_threshold(tied, 0.15) == 1.0 and realised_fpr(1.0, tied) == 0.1


def test_flag_budget_below_one_over_m_warns():
    with pytest.warns(AuditkitWarning, match=r"budget=0.01 is below 1/m = 1/50: the threshold is the largest"):
        t = flag_threshold(np.arange(50, dtype=float), 0.01)
    assert t == 49.0
    assert realised_fpr(t, np.arange(50, dtype=float)) == 0.0
    assert flag_false_alarm_rate(50, 0.01) == pytest.approx(1 / 51)


# ---- (5) groups ----

def test_by_group_small_groups_are_none_with_reason():
    rng = np.random.default_rng(4)
    sizes = {"a": (200, 300), "b": (20, 300), "c": (200, 10), "d": (5, 0)}
    pos, neg, gpos, gneg = [], [], [], []
    for g, (k1, k0) in sizes.items():
        pos.append(rng.normal(1, 1, size=k1))
        neg.append(rng.normal(0, 1, size=k0))
        gpos += [g] * k1
        gneg += [g] * k0
    pos, neg = np.concatenate(pos), np.concatenate(neg)
    gpos[0] = None                                                    # missing label → "unknown" (too small)
    out = attack_metrics_by_group(pos, neg, gpos, gneg, min_group_size=30, name="loss")
    assert list(out) == ["a", "b", "c", "d", "unknown"]
    assert out["b"] is None and out["c"] is None and out["d"] is None and out["unknown"] is None
    assert out.reasons == {
        "b": "20 member(s) and 300 non-member(s): each side needs at least min_group_size=30",
        "c": "200 member(s) and 10 non-member(s): each side needs at least min_group_size=30",
        "d": "5 member(s) and 0 non-member(s): each side needs at least min_group_size=30",
        "unknown": "1 member(s) and 0 non-member(s): each side needs at least min_group_size=30",
    }
    a = out["a"]
    gp, gn = np.array(gpos, dtype=object), np.array(gneg, dtype=object)
    ref = attack_metrics(pos[gp == "a"], neg[gn == "a"])
    assert a.name == "loss [a]" and (a.n_members, a.n_nonmembers) == (199, 300)
    assert a.auc == ref.auc and a.tpr_at_fpr[0.01] == ref.tpr_at_fpr[0.01]
    assert a.unresolved_fprs == [0.001]
    d = out.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["min_group_size"] == 30
    assert d["groups"]["b"] == {"name": "b", "skipped": out.reasons["b"]}
    assert d["groups"]["a"]["auc"] == pytest.approx(a.auc)


# ---- (6) bad input, word for word ----

@pytest.mark.parametrize(("call", "message"), [
    (lambda: attack_metrics([], [0.1, 0.2]), "member_scores has no records: pass at least one"),
    (lambda: attack_metrics([0.1], np.array([])), "nonmember_scores has no records: pass at least one"),
    (lambda: attack_metrics([0.1, math.nan, 0.3], [0.2]),
     "member_scores contains NaN or infinite values in 1 record(s): pass finite numbers"),
    (lambda: attack_metrics([0.1], [math.inf, math.nan]),
     "nonmember_scores contains NaN or infinite values in 2 record(s): pass finite numbers"),
    (lambda: attack_metrics(np.zeros((2, 3)), [0.2]),
     "member_scores must be 1-D (one score per record), got shape (2, 3)"),
    (lambda: attack_metrics(["a"], [0.2]),
     "member_scores must be numbers (one score per record), got list that cannot be read as floats"),
    (lambda: attack_metrics([0.1], [0.2], fprs=(0.01, 0)),
     "fprs=(0.01, 0) is not allowed: pass false-positive rates in (0, 1), e.g. (0.01, 0.001)"),
    (lambda: attack_metrics([0.1], [0.2], max_roc_points=2),
     "max_roc_points=2 is not allowed: it must be an integer ≥ 3"),
    (lambda: attack_metrics_by_group([0.1, 0.2], [0.3], ["a"], ["a"]),
     "member_groups has 1 labels but member_scores has 2: pass one label per record"),
    (lambda: attack_metrics_by_group([0.1], [0.3], ["a"], ["a"], min_group_size=0),
     "min_group_size=0 is not allowed: it must be an integer ≥ 1"),
    (lambda: flag_threshold([0.1, 0.2], 1.5),
     "budget=1.5 is not allowed: it must be a fraction in (0, 1), e.g. 0.01 to flag at most 1% of non-members"),
    (lambda: flag_threshold([0.1, 0.2], 0),
     "budget=0 is not allowed: it must be a fraction in (0, 1), e.g. 0.01 to flag at most 1% of non-members"),
    (lambda: flag_threshold([0.1, 0.2], 1.0),
     "budget=1.0 is not allowed: it must be a fraction in (0, 1), e.g. 0.01 to flag at most 1% of non-members"),
    (lambda: flag_threshold([0.1, 0.2], "1%"),
     "budget='1%' is not allowed: it must be a fraction in (0, 1), e.g. 0.01 to flag at most 1% of non-members"),
    (lambda: flag_threshold([], 0.01), "nonmember_risk has no records: pass at least one"),
    (lambda: flag_threshold([0.1, math.nan], 0.01),
     "nonmember_risk contains NaN or infinite values in 1 record(s): pass finite numbers"),
    (lambda: flag_false_alarm_rate(0, 0.01),
     "m=0 is not allowed: it must be the number of calibration non-members, an integer ≥ 1"),
    (lambda: realised_fpr(math.nan, [0.1]),
     "threshold=nan is not allowed: pass a number, e.g. from flag_threshold"),
    (lambda: realised_fpr(0.5, [math.nan]), "risk contains NaN or infinite values in 1 record(s): pass finite numbers"),
])
def test_bad_input_messages(call, message):
    with pytest.raises(InputError) as info:
        call()
    assert str(info.value) == message
