"""Number formatting for the report: every number leaves here as a string a non-specialist can read.

Rules: rates (selection rate, TPR, FPR, accuracy, ...) are shown as whole percentages ("38 %", one decimal
below 1 %), differences of rates as percentage points ("41 pp"), ratios and AUCs with two decimals, influence
effects in scientific notation when small. A missing value is an em dash; an interval is "(95 % CI lo–hi)",
labelled with the confidence it was computed at (:data:`WILSON_CONFIDENCE` for a single group's rate, the
disparity's ``confidence`` for a bootstrap interval). Units are joined by a narrow no-break space so that
"42 %" never breaks across lines. Nothing here knows about HTML: escaping is the template's job.
"""

from __future__ import annotations

import math

DASH = "—"
#: confidence of the Wilson score intervals the fairness plugin gives every single-group rate
#: (``auditkit.audits.fairness.metrics.rate_intervals``: ``wilson_interval``'s default; the run does not record it)
WILSON_CONFIDENCE = 0.95
RATES = {"accuracy", "selection_rate", "tpr", "fpr", "fnr", "precision", "flag_rate"}


def missing(x) -> bool:
    """True for None and NaN (what the plugins write when a value could not be computed)."""
    return x is None or (isinstance(x, float) and math.isnan(x))


def pct(x, digits: int = 0) -> str:
    """0.3809 → "38 %"; keeps one decimal for values under 1 % so that 0.4 % does not read as 0 %."""
    if missing(x):
        return DASH
    v = 100.0 * float(x)
    if digits == 0 and 0 < abs(v) < 1:
        digits = 1
    return f"{v:.{digits}f}\u202f%".replace("-", "−")


def pp(x) -> str:
    """A difference of two rates in percentage points: 0.4137 → "41 pp"."""
    if missing(x):
        return DASH
    v = 100.0 * float(x)
    text = f"{v:.1f}\u202fpp" if 0 < abs(v) < 10 else f"{v:.0f}\u202fpp"
    return text.replace("-", "−")


def num(x, digits: int = 2) -> str:
    """A plain number with ``digits`` decimals; small magnitudes switch to scientific notation."""
    if missing(x):
        return DASH
    v = float(x)
    if v != 0 and abs(v) < 10 ** (-digits):
        return f"{v:.1e}"
    return f"{v:.{digits}f}"


def signed(x, digits: int = 3) -> str:
    """An effect with its sign always shown ("+0.006", "−0.005"); a true minus sign, not a hyphen."""
    if missing(x):
        return DASH
    v = float(x)
    text = f"{abs(v):.1e}" if v != 0 and abs(v) < 10 ** (-digits) else f"{abs(v):.{digits}f}"
    return ("+" if v > 0 else "−" if v < 0 else "") + text


def count(n) -> str:
    """An integer with thin thousands separators: 12345 → "12 345"."""
    if missing(n):
        return DASH
    return f"{int(n):,}".replace(",", "\u2009")


def metric(name: str, x) -> str:
    """A group metric in its natural unit: rates as percentages, everything else with two decimals."""
    return pct(x) if name in RATES else num(x)


def ci_label(confidence: float | None) -> str:
    """"95 % CI" for ``confidence`` 0.95, "90 % CI" for 0.9; plain "CI" when the level is not known."""
    if missing(confidence):
        return "CI"
    return f"{100 * float(confidence):.6g}\u202f% CI"


def interval(lo, hi, *, confidence: float | None, as_pct: bool = False, as_pp: bool = False,
             digits: int = 2) -> str:
    """"(90 % CI 17–59 %)" at ``confidence`` 0.9 (the level the interval was computed at, as the findings
    record it; None: "CI" without a level); an empty string when either end is missing."""
    if missing(lo) or missing(hi):
        return ""
    label = ci_label(confidence)
    if as_pct:
        return f"({label} {100 * float(lo):.0f}–{100 * float(hi):.0f}\u202f%)"
    if as_pp:
        a, b = (f"{100 * float(v):.0f}".replace("-", "−") for v in (lo, hi))
        sep = " to " if float(lo) < 0 else "–"
        return f"({label} {a}{sep}{b}\u202fpp)"
    return f"({label} {float(lo):.{digits}f}–{float(hi):.{digits}f})"


def with_interval(name: str, value, ci, *, confidence: float | None) -> str:
    """A group metric followed by its interval (computed at ``confidence``) when the run carries one."""
    text = metric(name, value)
    if ci and len(ci) == 2 and not missing(value):
        text += " " + interval(ci[0], ci[1], confidence=confidence, as_pct=name in RATES)
    return text


def short_hash(h: str | None) -> str:
    """A SHA-256 split into groups of 16 so that it wraps in a narrow table cell."""
    if not h:
        return DASH
    return " ".join(h[i:i + 16] for i in range(0, len(h), 16))


def when(utc: str | None) -> str:
    """"2026-11-28T22:50:00Z" → "2026-11-28 22:50 UTC"."""
    if not utc:
        return DASH
    text = str(utc).replace("T", " ").rstrip("Z")
    return (text[:16] if len(text) >= 16 else text) + " UTC"


def seconds(x) -> str:
    if missing(x):
        return DASH
    v = float(x)
    return f"{v:.1f} s" if v < 120 else f"{v / 60:.1f} min"
