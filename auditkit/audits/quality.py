"""The data-quality audit: training records that are likely mislabelled or anomalous.

Each record's **estimated held-out loss** is

    score_j = ℓ_j(θ̂) + s̃_j  ≈  ℓ_j(θ̂_{−j}),    s̃_j = (1/n) g_jᵀ (H − A_jᵀA_j/n)⁻¹ g_j,

the loss the model would have on record j had it not been trained on it (s̃ is the leverage-corrected
self-influence: record j's own curvature removed from H). ``exp(−score_j)`` estimates the probability
the model would give the record's own label without having seen it; below one half the record is
"worth inspecting". Reasons: ``misfit`` (the trained model already disagrees with the label, ℓ > log 2)
or ``fit only because seen`` (ℓ ≤ log 2 but ℓ + s̃ > log 2: an outlier or a memorised label).

**Default ranking (loss-aware)**, ``suspicion_order``: first the records with ℓ_j > log 2, ordered by
ℓ_j, highest first; then the others ordered by score_j = ℓ_j + s̃_j, highest first. Among records the
model already gets wrong, the current loss ranks mislabels as well as anything (on the bundled tabular
data even actual leave-one-out retraining does no better); among records it gets right, the loss says
little while self-influence finds those it fits only because it saw them.

Measured (``benchmarks/privacy_detection.py``, pre-registered, flip seeds 5-14 never used to design the
rule; 10% of labels flipped; heart disease and German credit; logistic regression and MLPs): where the
model misfits more records than the top 10% holds, the default's top 10% is the loss's (logistic
regressions; MLP l2 = 0.01 on heart disease), with 2.8-5.8 more flipped records than either
self-influence. It does **not** meet "at least as good as the better of loss and self-influence"
everywhere: in 3 of 6 configurations it finds on average under one flipped record fewer (of 56-60; 95%
intervals include zero): behind the loss where ℓ + s̃ fills part of the top 10% (German credit, MLP
l2 = 0.01), and behind s̃ alone where the model fits every record (MLPs at l2 = 0.001). See
``benchmarks/results/privacy_detection.md``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from pydantic import Field

from .base import AuditContext, AuditPlugin, InfluenceRequests, PluginOptions
from .jsonsafe import json_safe

EVEN_ODDS = float(np.log(2.0))


def suspicion_order(loss: np.ndarray, self_influence: np.ndarray) -> np.ndarray:
    """Training positions, most suspicious first: the records with ``loss > log 2`` by ``loss`` (highest
    first), then the others by ``loss + self_influence`` (highest first; pass the leverage-corrected
    self-influence s̃, so that this is the estimated held-out loss). Ties keep the training order."""
    misfit = loss > EVEN_ODDS
    key = np.where(misfit, loss, loss + self_influence)
    return np.lexsort((-key, ~misfit))


class QualityOptions(PluginOptions):
    """Options of the data-quality audit (the ``data_quality:`` block of audit.yaml)."""

    top: int = Field(20, ge=1, description="records listed, highest score first")


@dataclass
class QualityFindings:
    """Ranked suspects (tokens, never ids) and how many records are worth inspecting, by group and label."""

    score: str
    n_records: int
    worth_inspecting: int
    share_worth_inspecting: float
    suspects: list[dict]
    by_group: list[dict]
    score_quantiles: dict[str, float]

    def to_dict(self) -> dict:
        return json_safe(asdict(self))


class DataQualityAudit(AuditPlugin):
    """Likely mislabelled or anomalous training records: misfit records by loss, then the others by estimated
    leave-one-out loss (``suspicion_order``)."""

    name = "data_quality"
    Options = QualityOptions

    def plan(self, context: AuditContext, options: QualityOptions) -> InfluenceRequests:
        """The leverage-corrected self-influence of every training record."""
        return InfluenceRequests(self_influence={True})

    def run(self, context: AuditContext, options: QualityOptions) -> QualityFindings:
        train = context.train
        loss = context.losses("train")
        influence = context.self_influence(leverage=True)
        score = loss + influence
        order = suspicion_order(loss, influence)
        inspect = score > EVEN_ODDS
        classes = [str(c) for c in train.classes]
        suspects = [{"token": context.token("train", int(j)), "label": classes[train.y[j]],
                     "groups": {c: str(train.groups[c].iat[j]) for c in train.groups.columns},
                     "loss": float(loss[j]), "self_influence": float(influence[j]), "score": float(score[j]),
                     "held_out_probability_of_label": float(np.exp(-score[j])),
                     "reason": "misfit" if loss[j] > EVEN_ODDS else "fit only because seen"}
                    for j in order[: options.top]]
        by_group = []
        for column in train.groups.columns:
            values = train.groups[column].astype(str).to_numpy()
            for group in sorted(set(values)):
                for c, label in enumerate(classes):
                    cell = (values == group) & (train.y == c)
                    if cell.any():
                        by_group.append({"attribute": column, "group": group, "label": label,
                                         "count": int(cell.sum()), "worth_inspecting": int(inspect[cell].sum())})
        quantiles = {f"q{int(q * 100)}": float(np.quantile(score, q)) for q in (0.5, 0.9, 0.99)}
        return QualityFindings("misfit records by loss, then the others by estimated held-out loss "
                               "(loss + leverage-corrected self-influence)", train.n,
                               int(inspect.sum()), float(inspect.mean()), suspects, by_group, quantiles)
