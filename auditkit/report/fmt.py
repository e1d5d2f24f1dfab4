"""Number formatting for the report: every number leaves here as a string a non-specialist can read.

Rules: rates (selection rate, TPR, FPR, accuracy, ...) are shown as whole percentages ("38 %", one decimal
below 1 %), differences of rates as percentage points ("41 pp"), ratios
and AUCs with two decimals, influence effects in scientific notation when small. A missing value is an
em dash; an interval is "(95 % CI lo–hi)". Units are joined by a narrow no-break space so that "42 %" never
breaks across lines. Nothing here knows about HTML: escaping is the template's job.
"""

from __future__ import annotations

import math

DASH = "—"
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


def interval(lo, hi, *, as_pct: bool = False, as_pp: bool = False, digits: int = 2) -> str:
    """"(95 % CI 17–59 %)"; a dash when either end is missing."""
    if missing(lo) or missing(hi):
        return ""
    if as_pct:
        return f"(95\u202f% CI {100 * float(lo):.0f}–{100 * float(hi):.0f}\u202f%)"
    if as_pp:
        a, b = (f"{100 * float(v):.0f}".replace("-", "−") for v in (lo, hi))
        sep = " to " if float(lo) < 0 else "–"
        return f"(95\u202f% CI {a}{sep}{b}\u202fpp)"
    return f"(95\u202f% CI {float(lo):.{digits}f}–{float(hi):.{digits}f})"


def with_interval(name: str, value, ci) -> str:
    """A group metric followed by its interval when the run carries one."""
    text = metric(name, value)
    if ci and len(ci) == 2 and not missing(value):
        text += " " + interval(ci[0], ci[1], as_pct=name in RATES)
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
