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
- A singular Hessian and a float32 overflow are recorded by the engine factory (``influence.fitting``).

The run document carries both as the fact ``numerics`` (``{"nonfinite": {part: [paths]}, "saturation": ...}``);
:func:`numerical_limitations` turns them into sentences for the report's limitations section.
"""

from __future__ import annotations

import math
from collections import Counter

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


def _leaf(path: str) -> str:
    """The metric name of a path: its last key, without list positions."""
    return path.rsplit(".", 1)[-1].split("[", 1)[0] or path


def numerical_limitations(nonfinite: dict[str, list[str]], saturated: dict | None) -> list[str]:
    """Sentences for the report's limitations: values that could not be computed (per part of the findings,
    with the metrics concerned) and saturated predictions."""
    out = []
    parts = []
    for part, paths in nonfinite.items():
        if paths:
            counts = Counter(_leaf(p) for p in paths)
            names = ", ".join(f"{name} ×{n}" if n > 1 else name for name, n in counts.most_common(6))
            more = ", …" if len(counts) > 6 else ""
            parts.append(f"{part.replace('_', ' ')}: {len(paths)} ({names}{more})")
    if parts:
        out.append("Some figures could not be computed (undefined, e.g. a true-positive rate in a group without "
                   "positives, or not finite) and are shown as “—”, never as numbers; policy rules on them report "
                   f"insufficient data. Values per part: {'; '.join(parts)}.")
    if saturated and (saturated["certain_right"] or saturated["certain_wrong"]):
        n = saturated["n"]
        k = saturated["certain_right"] + saturated["certain_wrong"]
        out.append(f"The model predicts {k} of its {n} training records ({100 * k / n:.1f} %) with certainty: "
                   f"the probability of the record's own label is exactly 1 ({saturated['certain_right']}) or 0 "
                   f"({saturated['certain_wrong']}) in {saturated['dtype']}; the largest logit is "
                   f"{saturated['max_abs_logit']:.3g} in absolute value. This happens when the training data are "
                   "separable or the weights very large. The loss gradients of these records vanish, so their "
                   "influence estimates and privacy risk scores are about zero whatever their real effect, and the "
                   "Hessian rests on the other records and the L2 term: read their low scores with caution, or "
                   "audit a model trained with more L2 regularisation.")
    return out
