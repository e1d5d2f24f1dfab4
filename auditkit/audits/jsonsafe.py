"""Findings become JSON: NaN and ±inf become ``None``, numpy values plain Python (recursively)."""

from __future__ import annotations

import math

import numpy as np


def json_safe(value):
    """``value`` with NaN and ±inf replaced by ``None`` and numpy scalars and arrays made plain Python."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [json_safe(v) for v in value]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        value = float(value)
        return value if math.isfinite(value) else None
    return value
