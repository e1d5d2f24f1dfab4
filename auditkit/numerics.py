"""Numerical conditions of a run that its report must name, because they change what its numbers mean.

- **Values that could not be computed.** A plugin writes NaN where a figure is undefined (a true-positive rate
  in a group without positives) or where the arithmetic broke down (±inf); the findings carry ``None`` in
  their place (:func:`auditkit.audits.jsonsafe.json_safe`) and the report prints "—", never ``nan``.
  :func:`nonfinite_paths` lists where they were, so the report can say how many and which.
- **Saturated predictions.** When the training data are separable or the weights very large, the model gives
  some records a probability of exactly 0 or 1 for their own label in its floating-point type: their loss,
  gradient and share of the Hessian vanish (``p(1-p) = 0``), so their influence estimates are zero whatever
  their real effect, and extreme logits can overflow float32. :func:`saturation` counts such records with one
  forward pass.
- A singular Hessian is recorded by the runner itself (``influence.fitting`` of the run document).

The runner records both in the run document (``numerics``); the report's limitations section turns them into
sentences (:func:`auditkit.report.limitations.numerical_limitations`).
"""

from __future__ import annotations

import math

import numpy as np
import torch


def nonfinite_paths(value, path: str = "") -> list[str]:
    """Dotted paths (``fairness.groups[0].metrics.tpr``) of every NaN or ±inf number inside ``value``
    (dicts, lists, tuples, numpy arrays and scalars, objects with ``to_dict``)."""
    if hasattr(value, "to_dict") and not isinstance(value, dict):
        value = value.to_dict()
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in nonfinite_paths(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list | tuple | np.ndarray):
        return [p for i, v in enumerate(value) for p in nonfinite_paths(v, f"{path}[{i}]")]
    if isinstance(value, float | np.floating) and not math.isfinite(float(value)):
        return [path]
    return []


def saturation(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, *, loss: str,
               chunk: int = 4096) -> dict:
    """Records whose predicted probability of their own label is exactly 1 (or 0) in the model's dtype.

    Returns ``{"n", "certain_right", "certain_wrong", "max_abs_logit", "dtype"}``: ``certain_right`` counts
    records with ``1 - p(label) < eps`` (loss below the dtype's resolution: gradient zero), ``certain_wrong``
    those with ``p(label) < eps``; ``eps`` is the machine epsilon of the model's floating-point type.
    """
    dtype = X.dtype
    eps = torch.finfo(dtype).eps
    right = wrong = 0
    top = 0.0
    with torch.no_grad():
        for start in range(0, len(X), chunk):
            out = model(X[start:start + chunk])
            labels = y[start:start + chunk]
            if loss == "bce":
                z = out.reshape(len(out))
                log_p = -torch.nn.functional.binary_cross_entropy_with_logits(z, labels.to(z.dtype),
                                                                               reduction="none")
            else:
                log_p = torch.log_softmax(out, dim=-1).gather(1, labels.long().reshape(-1, 1)).reshape(-1)
            right += int((-log_p < eps).sum())
            wrong += int((log_p < math.log(eps)).sum())
            top = max(top, float(out.abs().max()) if out.numel() else 0.0)
    return {"n": int(len(X)), "certain_right": right, "certain_wrong": wrong, "max_abs_logit": top,
            "dtype": str(dtype).removeprefix("torch.")}
