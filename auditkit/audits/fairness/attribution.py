"""Which training records drive a fairness gap: one influence solve per differentiable surrogate.

For a disadvantaged group D and an advantaged group A of the test set (masks over its rows), with
``p_i`` the predicted probability of the favourable outcome and ``ℓ_i`` the loss of test record i:

- ``selection_rate``:    gap = mean_{i∈A} p_i − mean_{i∈D} p_i            (demographic parity)
- ``equal_opportunity``: gap = mean_{i∈A, y_i fav} p_i − mean_{i∈D, y_i fav} p_i   (TPR parity)
- ``false_positive``:    gap = mean_{i∈D, y_i unfav} p_i − mean_{i∈A, y_i unfav} p_i (FPR parity)
- ``mean_loss``:         gap = mean_{i∈D} ℓ_i − mean_{i∈A} ℓ_i            (accuracy parity)

Each gap is oriented so that a positive value means D is worse off. ``engine.influence_on(gap)`` gives,
for every training record j, ``e_j ≈ gap(after removing j and retraining) − gap(now)``: negative ``e_j``
means removing j would shrink the gap (j *drives* it). Removing a set R is predicted to change the gap
by ``Σ_{j∈R} e_j`` (first order), which is what the removal curve and the cell totals report. A cell's
``share_of_gap = −Σ_{j∈cell} e_j / gap`` is the fraction of the gap that removing all its records would
close, to first order: cells push both ways, so shares can be negative or exceed 1, and for large cells
the first-order prediction is rough (the removal curve is verified by retraining; cells are not). The report
does not print shares; it shows the gap before and after removing the drivers.

:func:`attribute_pair` attributes the gap between two given groups (the groups a policy check compares, see
:mod:`auditkit.audits.fairness.flagged`); :func:`attribute_gap` picks the groups itself (worst against the
reference). :func:`metric_gap` is the gap of the metric a surrogate stands for, on hard decisions, oriented the
same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ...influence.losses import resolve_loss
from ..base import AuditContext, probabilities
from .metrics import record_groups

#: every differentiable surrogate gap
SURROGATES = ("selection_rate", "equal_opportunity", "false_positive", "mean_loss")
#: the surrogates the plugin attributes on its own by default (the largest gaps it picks itself)
DEFAULT_SURROGATES = ("selection_rate", "equal_opportunity", "mean_loss")
#: the group metric that picks D and A for each surrogate, and whether higher values are better
SELECTOR = {"selection_rate": ("selection_rate", True), "equal_opportunity": ("tpr", True),
            "false_positive": ("fpr", False), "mean_loss": ("mean_loss", False)}
#: the surrogate of each group metric a policy rule may check (precision and AUC have none)
METRIC_SURROGATE = {"tpr": "equal_opportunity", "fnr": "equal_opportunity", "fpr": "false_positive",
                    "selection_rate": "selection_rate", "accuracy": "mean_loss", "mean_loss": "mean_loss"}
#: whether a higher value of a group metric is better (orients a gap so that positive = D worse off)
HIGHER_IS_BETTER = {"tpr": True, "fnr": False, "fpr": False, "selection_rate": True, "accuracy": True,
                    "mean_loss": False}


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
        if kind == "false_positive":            # higher is worse: D's false alarms minus A's
            negative = y.long() != favourable
            return p[dis & negative].mean() - p[adv & negative].mean()
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
    if kind == "false_positive":
        negative = y != favourable
        return float(chosen[dis & negative].mean() - chosen[adv & negative].mean())
    return float(chosen[adv].mean() - chosen[dis].mean())


def metric_gap(metric: str, proba: np.ndarray, y: np.ndarray, losses: np.ndarray, dis: np.ndarray, adv: np.ndarray,
               favourable: int) -> float:
    """The gap in the group metric ``metric`` (tpr, fnr, fpr, selection_rate, accuracy, mean_loss) between the
    rows ``dis`` and ``adv`` on hard decisions (argmax), oriented so that positive means ``dis`` is worse off:
    ``value(adv) − value(dis)`` when higher is better, else ``value(dis) − value(adv)``; NaN when a group has no
    record in the metric's denominator."""
    chosen = proba.argmax(axis=1) == favourable
    truth = y == favourable
    values = {"tpr": chosen, "fnr": ~chosen, "fpr": chosen, "selection_rate": chosen, "accuracy": chosen == truth,
              "mean_loss": losses}[metric]
    denominator = {"tpr": truth, "fnr": truth, "fpr": ~truth}.get(metric, np.ones_like(truth))
    d, a = dis & denominator, adv & denominator
    if not d.any() or not a.any():
        return float("nan")
    gap = float(np.mean(values[a]) - np.mean(values[d]))
    return gap if HIGHER_IS_BETTER[metric] else -gap


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


def pair_request(context: AuditContext, attribute: str, columns: list[str], kind: str, dis_name: str,
                 adv_name: str):
    """``(key, measure, dis mask, adv mask)`` of the surrogate gap ``kind`` between the test groups ``dis_name`` and
    ``adv_name`` of ``attribute`` (made of ``columns``), or None when a group has no record the surrogate
    averages over (no positives for ``equal_opportunity``, no negatives for ``false_positive``)."""
    test = context.test
    labels = record_groups(test.groups, columns)
    dis, adv = labels == dis_name, labels == adv_name
    among = {"equal_opportunity": test.y == context.favourable,
             "false_positive": test.y != context.favourable}.get(kind, np.ones(len(labels), dtype=bool))
    if not (dis & among).any() or not (adv & among).any():
        return None
    measure = gap_measure(kind, dis, adv, loss=context.loss, favourable=context.favourable)
    return gap_key(attribute, kind, dis_name, adv_name), measure, dis, adv


def gap_request(context: AuditContext, table, kind: str, *, reference: str | None):
    """``(key, measure, disadvantaged, advantaged, dis mask, adv mask)`` of the gap ``kind`` over the groups of
    ``table``, or None when there is no gap to attribute; computes no influence (used by plans too)."""
    chosen = pick_groups(table, kind, reference)
    if chosen is None:
        return None
    dis_name, adv_name = chosen
    request = pair_request(context, table.attribute, table.columns, kind, dis_name, adv_name)
    if request is None:
        return None
    key, measure, dis, adv = request
    return key, measure, dis_name, adv_name, dis, adv


def attribute_gap(context: AuditContext, table, kind: str, *, reference: str | None, n_drivers: int,
                  top_k: list[int], verify_k: list[int]) -> Attribution | None:
    """Influence of every training record on one surrogate gap, summarised for the report (the groups: the
    worst on the surrogate's metric against the reference, :func:`pick_groups`)."""
    chosen = pick_groups(table, kind, reference)
    if chosen is None:
        return None
    return attribute_pair(context, table.attribute, table.columns, kind, *chosen, n_drivers=n_drivers,
                          top_k=top_k, verify_k=verify_k)


def attribute_pair(context: AuditContext, attribute: str, columns: list[str], kind: str, dis_name: str,
                   adv_name: str, *, n_drivers: int, top_k: list[int], verify_k: list[int],
                   metric: str | None = None) -> Attribution | None:
    """Influence of every training record on the surrogate gap ``kind`` between the test groups ``dis_name``
    (disadvantaged) and ``adv_name`` of ``attribute``; the top ``verify_k`` removals retrained when the context
    has a training function. ``metric``: the group metric the surrogate stands for, whose gap after retraining
    is recorded too (``actual_metric_gap``). None when the surrogate is undefined for these groups."""
    request = pair_request(context, attribute, columns, kind, dis_name, adv_name)
    if request is None:
        return None
    key, measure, dis, adv = request
    test, train = context.test, context.train
    X, y = context.tensor("test")
    gap = float(measure(context.outputs("test"), y))
    effects = context.influence_on(key, measure, X, y)
    context.record_scores[f"driver_score {attribute} {kind} ({dis_name} vs {adv_name})"] = effects
    order = np.argsort(effects, kind="stable")

    train_labels = record_groups(train.groups, columns)
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
    result = Attribution(attribute, kind, dis_name, adv_name, gap, hard, drivers, wideners, cells, curve)
    if context.train_fn is not None:
        for k in verify_k:
            if 0 < k <= len(order):
                model = context.retrain_without(order[:k], purpose="fairness verification")
                proba, losses = context.proba("test", model), context.losses("test", model)
                check = {"k": int(k), "predicted_gap": gap + float(cumulative[k - 1]),
                         "actual_gap": float(measure(context.outputs("test", model), y)),
                         "actual_hard_gap": hard_gap(kind, proba, test.y, losses, dis, adv, context.favourable)}
                if metric is not None:
                    check["actual_metric_gap"] = metric_gap(metric, proba, test.y, losses, dis, adv,
                                                            context.favourable)
                result.verification.append(check)
        result.verified = bool(result.verification)
    return result
