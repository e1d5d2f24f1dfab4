"""Confidence intervals for a proportion, and for the difference and the ratio of two independent proportions,
that stay valid at 0 % and 100 % (no bootstrap, no normal approximation of the estimate itself).

Pure statistics (SciPy for the Wilson limits); ``confidence`` is the two-sided level, ``z = Φ⁻¹((1 + c)/2)``.

- **A proportion** ``p̂ = k/m``: the Wilson score interval (Wilson 1927)::

      (p̂ + z²/2m ± z·√(p̂(1−p̂)/m + z²/4m²)) / (1 + z²/m)

- **A difference** ``p̂₁ − p̂₂`` of two independent proportions: Newcombe's hybrid score interval (Newcombe 1998,
  Stat Med 17:873, method 10), i.e. the MOVER-D combination (Zou & Donner 2008, Stat Med 27:1693) of the two
  Wilson intervals ``(l₁, u₁)``, ``(l₂, u₂)``::

      L = (p̂₁ − p̂₂) − √((p̂₁ − l₁)² + (u₂ − p̂₂)²)
      U = (p̂₁ − p̂₂) + √((u₁ − p̂₁)² + (p̂₂ − l₂)²)

- **A ratio** ``p̂₁ / p̂₂``: the MOVER-R interval with Wilson limits (Donner & Zou 2012, Stat Methods Med Res
  21:347; Newcombe 2012, *Confidence Intervals for Proportions and Related Measures of Effect Size*, ch. 10).
  ``L`` and ``U`` are the values ``θ`` at which the MOVER-D interval of ``p̂₁ − θ·p̂₂`` just reaches 0::

      L = (p̂₁p̂₂ − √((p̂₁p̂₂)² − l₁u₂(2p̂₁ − l₁)(2p̂₂ − u₂))) / (u₂(2p̂₂ − u₂))
      U = (p̂₁p̂₂ + √((p̂₁p̂₂)² − u₁l₂(2p̂₁ − u₁)(2p̂₂ − l₂))) / (l₂(2p̂₂ − l₂))

  At ``p̂₁ = 0`` this gives ``L = 0`` and ``U = u₁/√(l₂(2p̂₂ − l₂))``; at ``p̂₁ = p̂₂ = 1``, ``L = l₁`` and
  ``U = 1/l₂``. Undefined (NaN) when ``p̂₂ = 0``. No continuity correction is needed at 0, unlike Katz's log
  interval.

- **Any two independent estimates** with their own intervals: :func:`mover_difference` (MOVER-D), used e.g. for a
  gap in calibration error between two groups.
"""

from __future__ import annotations

import math

Interval = tuple[float, float]
NO_CI: Interval = (math.nan, math.nan)


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval of a proportion ``successes / trials`` at ``confidence`` (SciPy's
    ``binomtest(k, n).proportion_ci(method="wilson")``); NaNs when ``trials`` is 0 (SciPy needs n ≥ 1)."""
    if trials <= 0:
        return NO_CI
    from scipy.stats import binomtest  # imported here: the policy reads the MOVER combinations without SciPy

    ci = binomtest(int(successes), int(trials)).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))


def mover_difference(est1: float, ci1: Interval, est2: float, ci2: Interval) -> Interval:
    """MOVER-D interval of ``est1 − est2`` for two independent estimates with intervals ``ci1``, ``ci2``::

        (est1 − est2) − √((est1 − l₁)² + (u₂ − est2)²),  (est1 − est2) + √((u₁ − est1)² + (est2 − l₂)²)

    NaNs if any input is NaN."""
    (l1, u1), (l2, u2) = ci1, ci2
    d = est1 - est2
    lo = d - math.sqrt((est1 - l1) ** 2 + (u2 - est2) ** 2)
    hi = d + math.sqrt((u1 - est1) ** 2 + (est2 - l2) ** 2)
    return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) else NO_CI


def newcombe_difference(k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95) -> Interval:
    """Newcombe's hybrid score interval (1998, method 10) of ``k1/n1 − k2/n2``: :func:`mover_difference` of the
    two Wilson intervals. NaNs when either denominator is 0."""
    if n1 <= 0 or n2 <= 0:
        return NO_CI
    return mover_difference(k1 / n1, wilson_interval(k1, n1, confidence),
                            k2 / n2, wilson_interval(k2, n2, confidence))


def _root(a: float, b: float, c: float, sign: int) -> float:
    """``(b + sign·√(b² − a·c)) / a`` (a root of ``a·θ² − 2b·θ + c = 0``); as a → 0 the lower root tends to
    ``c / 2b`` and the upper one to infinity."""
    disc = math.sqrt(max(b * b - a * c, 0.0))
    if abs(a) < 1e-15:
        return (c / (2 * b) if b else math.nan) if sign < 0 else math.inf
    return (b + sign * disc) / a


def mover_ratio(est1: float, ci1: Interval, est2: float, ci2: Interval) -> Interval:
    """MOVER-R interval of ``est1 / est2`` for two independent positive estimates with intervals ``ci1``, ``ci2``
    (module docstring). NaNs when ``est2`` is 0 or any input is NaN."""
    (l1, u1), (l2, u2) = ci1, ci2
    if not all(math.isfinite(x) for x in (est1, l1, u1, est2, l2, u2)) or est2 <= 0:
        return NO_CI
    b = est1 * est2
    lo = _root(u2 * (2 * est2 - u2), b, l1 * (2 * est1 - l1), -1)
    hi = _root(l2 * (2 * est2 - l2), b, u1 * (2 * est1 - u1), +1) if l2 > 0 else math.inf
    return (max(lo, 0.0), hi)


def ratio_interval(k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95) -> Interval:
    """MOVER-R interval with Wilson limits of ``(k1/n1) / (k2/n2)``; NaNs when ``k2`` or a denominator is 0."""
    if n1 <= 0 or n2 <= 0 or k2 <= 0:
        return NO_CI
    return mover_ratio(k1 / n1, wilson_interval(k1, n1, confidence), k2 / n2, wilson_interval(k2, n2, confidence))
