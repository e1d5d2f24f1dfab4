"""The L2 term of the training objective, one coefficient per parameter tensor.

``l2`` is either a number λ, the same for every parameter: ``(λ/2)·‖θ‖²``, or a mapping
``{parameter name or name prefix: λ_k}``: ``½ Σ_k λ_k ‖θ_k‖²`` where θ_k are the parameter tensors the key
names. A key matches a parameter when it equals its name or is a dotted prefix of it (``"0"`` matches
``"0.weight"`` and ``"0.bias"``); when several keys match, the longest (most specific) wins; parameters that
no key matches get 0 (unpenalised, as scikit-learn leaves intercepts). As a vector over the flat θ, the
term's Hessian is ``diag(λ)`` with λ repeated over each tensor's entries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ..errors import InputError

#: a number, or {parameter name or prefix: number}
L2 = float | Mapping[str, float]


def _finite_nonnegative(value) -> bool:
    return (not isinstance(value, bool) and isinstance(value, (int, float, np.floating, np.integer))
            and bool(np.isfinite(value)) and value >= 0)


def check_l2(l2) -> float | dict[str, float]:
    """``l2`` validated: a float, or a plain dict of floats (a copy); InputError otherwise."""
    if isinstance(l2, Mapping):
        out = {}
        for key, value in l2.items():
            if not isinstance(key, str) or not key:
                raise InputError(f"l2 key {key!r} is not allowed: keys are parameter names or name prefixes "
                                 "(non-empty strings)")
            if not _finite_nonnegative(value):
                raise InputError(f"l2[{key!r}]={value!r} is not allowed: it must be a finite number ≥ 0")
            out[key] = float(value)
        return out
    if isinstance(l2, (int, float, np.floating, np.integer)) and not isinstance(l2, bool):
        if not _finite_nonnegative(l2):
            raise InputError(f"l2={l2!r} is not allowed: it must be a finite number ≥ 0")
        return float(l2)
    raise InputError(f"l2={l2!r} is not allowed: it must be a finite number ≥ 0 or a mapping "
                     "{parameter name or prefix: number ≥ 0}")


def _matches(name: str, key: str) -> bool:
    return name == key or name.startswith(key.rstrip(".") + ".")


def l2_of_parameters(l2, names: Sequence[str], *, known: Sequence[str] | None = None) -> list[float]:
    """The coefficient λ_k of each parameter in ``names``.

    Keys of a mapping must match at least one of ``known`` (default: ``names``), the model's trainable
    parameters, so that a misspelt key is refused instead of silently leaving parameters unpenalised.
    """
    l2 = check_l2(l2)
    if not isinstance(l2, dict):
        return [l2] * len(names)
    known = list(names if known is None else known)
    for key in l2:
        if not any(_matches(n, key) for n in known):
            raise InputError(f"l2 key {key!r} matches no trainable parameter of the model: use parameter names "
                             f"or name prefixes among {known!r}")
    out = []
    for name in names:
        keys = [k for k in l2 if _matches(name, k)]
        out.append(l2[max(keys, key=len)] if keys else 0.0)
    return out


def l2_vector(l2, names: Sequence[str], sizes: Sequence[int], *, known: Sequence[str] | None = None,
              dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    """λ over the flat θ (length Σ sizes): each parameter's coefficient repeated over its entries."""
    values = l2_of_parameters(l2, names, known=known)
    parts = [torch.full((int(s),), v, dtype=dtype, device=device) for v, s in zip(values, sizes, strict=True)]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=dtype, device=device)


def describe_l2(l2) -> str:
    """``l2`` for messages: ``0.01`` or ``{'weight': 0.0016}``."""
    return f"{l2:g}" if isinstance(l2, (int, float)) else repr(dict(l2))
