"""Explanations of single predictions: the training records that pushed each one toward or away from it.

For explained record i with true label y_i, ``S[i, j] = (1/n) ∇ℓ(z_i)ᵀ H⁻¹ g_j`` is the change of i's loss
on its true label if training record j were removed and the model retrained. ``S[i, j] < 0``: j pushed
the prediction toward the wrong answer (removing j would help i); ``S[i, j] > 0``: j pushed it toward
the right answer.
"""

from __future__ import annotations

import numpy as np

from .base import AuditContext


def explain(context: AuditContext, split: str, positions, *, top: int = 5) -> list[dict]:
    """For each record of ``split`` at ``positions``: its outcome and the ``top`` training records each way."""
    positions = np.asarray(positions, dtype=int)
    if positions.size == 0:
        return []
    data, train = context.splits[split], context.train
    S = context.influence(split, positions)
    proba = context.proba(split)
    classes = [str(c) for c in train.classes]

    def entry(j: int, value: float) -> dict:
        return {"token": context.token("train", j), "effect": float(value), "label": classes[train.y[j]],
                "groups": {c: str(train.groups[c].iat[j]) for c in train.groups.columns}}

    out = []
    for row, i in enumerate(positions):
        order = np.argsort(S[row], kind="stable")
        out.append({
            "token": context.token(split, int(i)),
            "true_label": classes[data.y[i]],
            "predicted_label": classes[int(proba[i].argmax())],
            "probability_of_true_label": float(proba[i, data.y[i]]),
            "groups": {c: str(data.groups[c].iat[i]) for c in data.groups.columns},
            "toward_wrong": [entry(j, S[row, j]) for j in order[:top] if S[row, j] < 0],
            "toward_right": [entry(j, S[row, j]) for j in order[::-1][:top] if S[row, j] > 0],
        })
    return out
