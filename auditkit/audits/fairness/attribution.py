"""Which training records drive a fairness gap: one influence solve per differentiable surrogate.

For a disadvantaged group D and an advantaged group A of the test set (masks over its rows), with
``p_i`` the predicted probability of the favourable outcome and ``ℓ_i`` the loss of test record i:

- ``selection_rate``:    gap = mean_{i∈A} p_i − mean_{i∈D} p_i            (demographic parity)
- ``equal_opportunity``: gap = mean_{i∈A, y_i fav} p_i − mean_{i∈D, y_i fav} p_i   (TPR parity)
- ``mean_loss``:         gap = mean_{i∈D} ℓ_i − mean_{i∈A} ℓ_i            (accuracy parity)

Each gap is oriented so that a positive value means D is worse off. ``engine.influence_on(gap)`` gives,
for every training record j, ``e_j ≈ gap(after removing j and retraining) − gap(now)``: negative ``e_j``
means removing j would shrink the gap (j *drives* it). Removing a set R is predicted to change the gap
by ``Σ_{j∈R} e_j`` (first order), which is what the removal curve and the cell totals report. A cell's
``share_of_gap = −Σ_{j∈cell} e_j / gap`` is the fraction of the gap that removing all its records would
close, to first order: cells push both ways, so shares can be negative or exceed 1, and for large cells
the first-order prediction is rough (the removal curve is verified by retraining; cells are not).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ...influence.losses import resolve_loss
from ..base import AuditContext, probabilities
from .metrics import record_groups

SURROGATES = ("selection_rate", "equal_opportunity", "mean_loss")
#: the group metric that picks D and A for each surrogate, and whether higher values are better
SELECTOR = {"selection_rate": ("selection_rate", True), "equal_opportunity": ("tpr", True),
            "mean_loss": ("mean_loss", False)}


def gap_measure(kind: str, disadvantaged: np.ndarray, advantaged: np.ndarray, *, loss: str, favourable: int):
    """``measure(outputs, y) -> gap`` for the surrogate ``kind`` and boolean masks over the rows."""
    dis, adv = torch.as_tensor(disadvantaged), torch.as_tensor(advantaged)
    loss_fn = resolve_loss(loss)

    def measure(outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if kind == "mean_loss":
            target = y.to(outputs.dtype) if loss == "bce" else y
            per_record = loss_fn(outputs, target)
            return per_record[dis].mean() - per_record[adv].mean()
        p = probabilities(outputs, loss)[:, favourable]
        d, a = dis, adv
        if kind == "equal_opportunity":
            positive = y.long() == favourable
            d, a = dis & positive, adv & positive
        return p[a].mean() - p[d].mean()

    return measure


def hard_gap(kind: str, proba: np.ndarray, y: np.ndarray, losses: np.ndarray, dis: np.ndarray, adv: np.ndarray,
             favourable: int) -> float:
    """The metric the surrogate stands for, on hard predictions: selection-rate, TPR or mean-loss gap."""
    if kind == "mean_loss":
        return float(losses[dis].mean() - losses[adv].mean())
    chosen = proba.argmax(axis=1) == favourable
    if kind == "equal_opportunity":
        positive = y == favourable
        dis, adv = dis & positive, adv & positive
    return float(chosen[adv].mean() - chosen[dis].mean())


def pick_groups(table, kind: str, reference: str | None) -> tuple[str, str] | None:
    """(disadvantaged, advantaged) among groups with enough records: the worst group on the surrogate's
    metric, against the reference group (or, if the worst is the reference, the best group)."""
    metric, higher_better = SELECTOR[kind]
    rows = [r for r in table.groups if r.sufficient and not r.unknown and np.isfinite(r.metrics.get(metric, np.nan))]
    if len(rows) < 2:
        return None
    ranked = sorted(rows, key=lambda r: r.metrics[metric], reverse=not higher_better)  # worst first
    worst, best = ranked[0].group, ranked[-1].group
    names = {r.group for r in rows}
    if reference is None:
        reference = max(rows, key=lambda r: r.count).group
    advantaged = reference if reference in names and reference != worst else best
    if advantaged == worst:
        return None
    return worst, advantaged


@dataclass
class RecordEffect:
    """One training record's predicted effect of removal on the gap (token, never the identifier)."""

    token: str
    effect: float
    label: str
    groups: dict[str, str]


@dataclass
class Attribution:
    """The drivers of one gap, in the units of the gap (probability or loss)."""

    attribute: str
    surrogate: str
    disadvantaged: str
    advantaged: str
    gap: float
    hard_gap: float
    drivers: list[RecordEffect]
    wideners: list[RecordEffect]
    cells: list[dict]
    removal_curve: list[dict]
    verification: list[dict] = field(default_factory=list)
    verified: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def gap_key(attribute: str, kind: str, disadvantaged: str, advantaged: str) -> tuple:
    """The key under which the context memoises the influence on one gap (it identifies the measure)."""
    return ("gap", attribute, kind, disadvantaged, advantaged)


def gap_request(context: AuditContext, table, kind: str, *, reference: str | None):
    """``(key, measure, disadvantaged, advantaged, dis mask, adv mask)`` of the gap ``kind`` over the groups of
    ``table``, or None when there is no gap to attribute; computes no influence (used by plans too)."""
    chosen = pick_groups(table, kind, reference)
    if chosen is None:
        return None
    dis_name, adv_name = chosen
    test = context.test
    labels = record_groups(test.groups, table.columns)
    dis, adv = labels == dis_name, labels == adv_name
    if kind == "equal_opportunity":
        positive = test.y == context.favourable
        if not (dis & positive).any() or not (adv & positive).any():
            return None
    measure = gap_measure(kind, dis, adv, loss=context.loss, favourable=context.favourable)
    return gap_key(table.attribute, kind, dis_name, adv_name), measure, dis_name, adv_name, dis, adv


def attribute_gap(context: AuditContext, table, kind: str, *, reference: str | None, n_drivers: int,
                  top_k: list[int], verify_k: list[int]) -> Attribution | None:
    """Influence of every training record on one surrogate gap, summarised for the report."""
    request = gap_request(context, table, kind, reference=reference)
    if request is None:
        return None
    key, measure, dis_name, adv_name, dis, adv = request
    test, train = context.test, context.train
    X, y = context.tensor("test")
    gap = float(measure(context.outputs("test"), y))
    effects = context.influence_on(key, measure, X, y)
    context.record_scores[f"driver_score {table.attribute} {kind} ({dis_name} vs {adv_name})"] = effects
    order = np.argsort(effects, kind="stable")

    train_labels = record_groups(train.groups, table.columns)
    classes = [str(c) for c in train.classes]

    def record(j: int) -> RecordEffect:
        return RecordEffect(context.token("train", j), float(effects[j]), classes[train.y[j]],
                            {c: str(train.groups[c].iat[j]) for c in train.groups.columns})

    drivers = [record(j) for j in order[:n_drivers] if effects[j] < 0]
    wideners = [record(j) for j in order[::-1][:n_drivers] if effects[j] > 0]
    cells = []
    for group in sorted(set(train_labels)):
        for c, label in enumerate(classes):
            mask = (train_labels == group) & (train.y == c)
            if mask.any():
                total = float(effects[mask].sum())
                cells.append({"group": group, "label": label, "count": int(mask.sum()), "effect": total,
                              "share_of_gap": -total / gap if gap else None})
    cells.sort(key=lambda cell: cell["effect"])
    cumulative = np.cumsum(effects[order])
    curve = [{"k": int(k), "predicted_gap": gap + float(cumulative[k - 1])} for k in top_k if 0 < k <= len(order)]
    hard = hard_gap(kind, context.proba("test"), test.y, context.losses("test"), dis, adv, context.favourable)
    result = Attribution(table.attribute, kind, dis_name, adv_name, gap, hard, drivers, wideners, cells, curve)
    if context.train_fn is not None:
        for k in verify_k:
            if 0 < k <= len(order):
                model = context.retrain_without(order[:k], purpose="fairness verification")
                actual = float(measure(context.outputs("test", model), y))
                result.verification.append({
                    "k": int(k), "predicted_gap": gap + float(cumulative[k - 1]), "actual_gap": actual,
                    "actual_hard_gap": hard_gap(kind, context.proba("test", model), test.y,
                                                context.losses("test", model), dis, adv, context.favourable)})
        result.verified = bool(result.verification)
    return result
