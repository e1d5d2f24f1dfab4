"""Intervals of rates, differences and ratios (auditkit.audits.fairness.intervals) against literature values,
statsmodels and closed forms, including 0/n and n/n."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from auditkit.audits.fairness.intervals import (
    mover_difference,
    mover_ratio,
    newcombe_difference,
    ratio_interval,
    wilson_interval,
)

# Newcombe RG (1998) Interval estimation for the difference between independent proportions: comparison of
# eleven methods. Stat Med 17:873-890, Table II, method 10 (score, no continuity correction), 95 %.
NEWCOMBE_1998_TABLE_II = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((0, 10, 0, 10), (-0.2775, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0000)),
    ((10, 10, 0, 10), (0.6075, 1.0000)),
]

# statsmodels 0.15.0, statsmodels.stats.proportion.confint_proportions_2indep(k1, n1, k2, n2,
# method="newcomb", compare="diff"), computed once (statsmodels is not a dependency of the test run)
STATSMODELS_NEWCOMB = [
    ((56, 70, 48, 80), (0.05243147240236498, 0.33387265403690614)),
    ((9, 10, 3, 10), (0.1705227239345029, 0.809017973535488)),
    ((5, 56, 0, 29), (-0.038137147903536936, 0.19256001385511165)),
    ((0, 10, 0, 20), (-0.1611251580528194, 0.27753279986288926)),
    ((10, 10, 0, 20), (0.6790860371419145, 1.0)),
    ((3, 3, 20, 30), (-0.2456035482674367, 0.5121994835545616)),
    ((0, 40, 12, 40), (-0.45430018818144946, -0.15201866122437513)),
]


@pytest.mark.parametrize("counts, expected", NEWCOMBE_1998_TABLE_II)
def test_newcombe_difference_equals_the_published_table(counts, expected):
    k1, n1, k2, n2 = counts
    lo, hi = newcombe_difference(k1, n1, k2, n2)
    assert (round(lo, 4), round(hi, 4)) == expected
    assert lo <= k1 / n1 - k2 / n2 <= hi


@pytest.mark.parametrize("counts, expected", STATSMODELS_NEWCOMB)
def test_newcombe_difference_equals_statsmodels(counts, expected):
    assert newcombe_difference(*counts) == pytest.approx(expected, abs=1e-9)


def test_difference_interval_at_zero_and_one_is_not_degenerate():
    # 0/30 vs 0/30 and 30/30 vs 30/30: the difference is 0 and the interval has width, symmetric about 0
    for k in (0, 30):
        lo, hi = newcombe_difference(k, 30, k, 30)
        assert lo < 0 < hi and lo == pytest.approx(-hi)
        # its half-width is the Wilson upper limit of 0/30 (the closed form of method 10 at the boundary)
        assert hi == pytest.approx(math.hypot(wilson_interval(0, 30)[1], 0.0))
    assert all(math.isnan(x) for x in newcombe_difference(1, 0, 1, 10))


def test_mover_difference_of_wilson_limits_is_newcombe():
    p1, p2 = 7 / 31, 19 / 44
    assert mover_difference(p1, wilson_interval(7, 31), p2, wilson_interval(19, 44)) == \
        pytest.approx(newcombe_difference(7, 31, 19, 44), abs=1e-15)


def _reaches_zero(theta, p1, ci1, p2, ci2, side):
    """The MOVER-D limit of p1 − θ·p2 (lower for side=-1, upper for +1): the ratio limit is where it is 0."""
    (l1, u1), (l2, u2) = ci1, ci2
    d = p1 - theta * p2
    if side < 0:
        return d - math.sqrt((p1 - l1) ** 2 + theta ** 2 * (u2 - p2) ** 2)
    return d + math.sqrt((u1 - p1) ** 2 + theta ** 2 * (p2 - l2) ** 2)


@pytest.mark.parametrize("k1, n1, k2, n2", [(20, 40, 30, 50), (3, 40, 20, 40), (12, 35, 13, 31), (2, 60, 3, 90),
                                            (39, 40, 30, 30)])
def test_mover_ratio_limits_solve_their_defining_equation(k1, n1, k2, n2):
    """Donner & Zou (2012): L and U are the θ where the MOVER-D interval of p1 − θ·p2 has 0 as its end."""
    p1, p2 = k1 / n1, k2 / n2
    ci1, ci2 = wilson_interval(k1, n1), wilson_interval(k2, n2)
    lo, hi = ratio_interval(k1, n1, k2, n2)
    est = p1 / p2
    assert lo < est < hi
    assert lo == pytest.approx(brentq(_reaches_zero, 1e-12, est, args=(p1, ci1, p2, ci2, -1)), rel=1e-9)
    assert hi == pytest.approx(brentq(_reaches_zero, est, 1e6, args=(p1, ci1, p2, ci2, +1)), rel=1e-9)


def test_ratio_interval_at_zero_and_one_has_its_closed_form():
    # 0/40 against 10/40: L = 0 and U = u1 / sqrt(l2 (2 p2 - l2))
    l2 = wilson_interval(10, 40)[0]
    lo, hi = ratio_interval(0, 40, 10, 40)
    assert lo == 0 and hi == pytest.approx(wilson_interval(0, 40)[1] / math.sqrt(l2 * (0.5 - l2)), rel=1e-12)
    # 40/40 against 40/40: L = l1, U = 1 / l2 (not the point 1 a bootstrap would give)
    lo, hi = ratio_interval(40, 40, 40, 40)
    w = wilson_interval(40, 40)[0]
    assert (lo, hi) == pytest.approx((w, 1 / w), rel=1e-12) and lo < 1 < hi
    # the denominator's rate is 0: undefined
    assert all(math.isnan(x) for x in ratio_interval(3, 40, 0, 40))
    assert all(math.isnan(x) for x in mover_ratio(0.5, (0.3, 0.7), 0.0, (0.0, 0.1)))


def test_ratio_interval_covers_at_the_nominal_rate():
    """Coverage of the MOVER-R interval of p1/p2 = 0.35/0.5 for groups of 60 and 200 (2,000 draws)."""
    rng = np.random.default_rng(11)
    k1, k2 = rng.binomial(60, 0.35, 2000), rng.binomial(200, 0.5, 2000)
    hits = [lo <= 0.7 <= hi for lo, hi in (ratio_interval(a, 60, b, 200) for a, b in zip(k1, k2, strict=True))]
    assert 0.93 <= np.mean(hits) <= 0.97
