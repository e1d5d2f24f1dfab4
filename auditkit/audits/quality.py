"""The data-quality audit: training records that are likely mislabelled or anomalous.

A record is suspicious when the model would not give it its own label had it not been trained on it: its
**held-out loss** is high. Two ways to get it:

**With a training function** (``model.train_fn``; the default then, ``out_of_fold: true``): measured by
K-fold cross-fitting, as confident learning (Northcutt et al. 2021, Cleanlab) gets out-of-sample
probabilities. The training records are split into ``folds`` = K label-stratified folds (seeded); for each
fold k, ``train_fn(deepcopy(model), X[fold ≠ k], y[fold ≠ k])``, and each record's **out-of-fold loss**
``o_j`` is its loss under the model trained without its fold (:func:`out_of_fold_losses`). Cost: K extra
trainings on (1 − 1/K)·n records. Ranking (:func:`out_of_fold_order`): first the records the model misfits,
ℓ_j > log 2, by ℓ_j (highest first); then the others by the mean of their two ranks among all training
records,

    key_j = rank_ℓ(j) + rank_o(j)        (rank 0 = highest; smallest key first, ties by rank_ℓ).

The score reported per record (``score``; ``held_out_probability_of_label`` = exp(−score)) is
``score_j = o_j``.

**Without one** (engine only): the held-out loss is estimated,

    score_j = ℓ_j(θ̂) + s̃_j  ≈  ℓ_j(θ̂_{−j}),    s̃_j = (1/n) g_jᵀ (H − A_jᵀA_j/n)⁻¹ g_j,

(s̃ the leverage-corrected self-influence: record j's own curvature removed from H), and the ranking is
``suspicion_order``: the records with ℓ_j > log 2 by ℓ_j, then the others by ℓ_j + s̃_j.

In both, a record is "worth inspecting" when exp(−score) < ½. Reasons: ``misfit`` (the trained model
already disagrees with the label, ℓ > log 2) or ``fit only because seen`` (ℓ ≤ log 2). The findings say which
score was used (``out_of_fold``, ``score``, and ``notes``, which the report lists under its limitations).

Why this shape. Among records the model already gets wrong, the current loss ranks mislabels as well as
anything (on the bundled tabular data even actual leave-one-out retraining does no better). Among the
records it fits, the in-sample loss is precise but lowered by memorisation, while the out-of-fold loss
sees memorised labels but is noisy (one model per record, trained on 1 − 1/K of the data); taking the mean of
the two ranks combines them on a common scale without a fitted weight.

Measured (``benchmarks/privacy_detection.py``; 10% of labels flipped; heart disease and German credit;
logistic regression and MLPs): see ``benchmarks/results/privacy_detection.md`` for the pre-registered
results of both rules on fresh seeds (the engine-only rule: 3 of 6 configurations pass, seeds 5-14; the
out-of-fold rule: seeds 20-29).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from pydantic import Field

from ..errors import InputError
from .base import AuditContext, AuditPlugin, InfluenceRequests, PluginOptions, Ranking
from .jsonsafe import json_safe
from .quality_findings import DataQualityFindings

EVEN_ODDS = float(np.log(2.0))


def suspicion_order(loss: np.ndarray, self_influence: np.ndarray) -> np.ndarray:
    """Training positions, most suspicious first: the records with ``loss > log 2`` by ``loss`` (highest
    first), then the others by ``loss + self_influence`` (highest first; pass the leverage-corrected
    self-influence s̃, so that this is the estimated held-out loss). Ties keep the training order."""
    misfit = loss > EVEN_ODDS
    key = np.where(misfit, loss, loss + self_influence)
    return np.lexsort((-key, ~misfit))


def misfit_first_order(loss: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Training positions, most suspicious first: the records with ``loss > log 2`` by ``loss`` (highest
    first), then the others by ``key`` (highest first). Ties keep the training order."""
    misfit = loss > EVEN_ODDS
    return np.lexsort((-np.where(misfit, loss, key), ~misfit))


def rank_of(values: np.ndarray) -> np.ndarray:
    """Rank of every record when sorted by ``values``, highest first (0 = highest; ties by training order)."""
    order = np.argsort(-np.asarray(values), kind="stable")
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    return rank


def out_of_fold_order(loss: np.ndarray, out_of_fold: np.ndarray) -> np.ndarray:
    """Training positions, most suspicious first, with measured out-of-fold losses: the records with
    ``loss > log 2`` by ``loss`` (highest first); then the others by the mean of their two ranks among all
    training records, by in-sample loss and by out-of-fold loss (smallest sum first); ties by the loss rank,
    then training order."""
    misfit = loss > EVEN_ODDS
    by_loss = rank_of(loss)
    both = by_loss + rank_of(out_of_fold)
    return np.lexsort((by_loss, np.where(misfit, -loss, both), ~misfit))


def fold_assignment(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold (0..folds-1) of every training record: stratified by label (each label's records shuffled with
    ``default_rng([seed, label])`` and dealt round-robin, the next label continuing where the last stopped),
    so every fold holds about n/folds records and about the same label shares."""
    y = np.asarray(y)
    fold = np.empty(len(y), dtype=int)
    start = 0
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        rows = rows[np.random.default_rng([int(seed), int(label)]).permutation(len(rows))]
        fold[rows] = (start + np.arange(len(rows))) % folds
        start = (start + len(rows)) % folds
    return fold


def out_of_fold_losses(context: AuditContext, *, folds: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Each training record's loss under a model trained WITHOUT it: K-fold cross-fitting (as confident
    learning does with out-of-sample probabilities). For every fold k, ``context.train_fn(deepcopy(model),
    X[fold ≠ k], y[fold ≠ k])`` (torch seeded from ``(seed, k)``), then the loss of the fold's records under
    that model. Returns (losses, fold of each record). Costs ``folds`` trainings on (1 − 1/folds)·n records."""
    if context.train_fn is None:
        raise InputError("out-of-fold losses need a training function: pass train_fn to the AuditContext "
                         "(model.train_fn in audit.yaml)")
    train = context.train
    if folds < 2 or folds > train.n:
        raise InputError(f"folds={folds!r} is not allowed: it must be between 2 and the number of training "
                         f"records ({train.n})")
    fold = fold_assignment(train.y, folds, seed)
    out = np.full(train.n, np.nan)
    for k in range(folds):
        held = fold == k
        net = context.trained_on(~held, seed=(int(seed), k), purpose="out-of-fold model")
        out[held] = context.losses("train", net)[held]
    return out, fold


class QualityOptions(PluginOptions):
    """Options of the data-quality audit (the ``data_quality:`` block of audit.yaml)."""

    top: int = Field(20, ge=1, description="records listed, highest score first")
    out_of_fold: bool = Field(True, description="with a training function: rank by out-of-fold loss "
                              "(``folds`` extra trainings); False keeps the engine-only ranking")
    folds: int = Field(5, ge=2, le=50, description="K of the K-fold cross-fitting (out-of-fold losses)")
    seed: int | None = Field(None, ge=0, le=2**64 - 1, description="seed of the folds and of the fold models "
                             "(unset: derived from the run's seed)")


def default_order(loss: np.ndarray, self_influence: np.ndarray, out_of_fold: np.ndarray | None = None) -> np.ndarray:
    """The plugin's ranking: with out-of-fold losses (a training function was given)
    ``out_of_fold_order(loss, out_of_fold)``; without, the engine-only ``suspicion_order(loss, self_influence)``."""
    if out_of_fold is None:
        return suspicion_order(loss, self_influence)
    return out_of_fold_order(loss, out_of_fold)


@dataclass
class QualityFindings:
    """Ranked suspects (tokens, never ids) and how many records are worth inspecting, by group and label.
    ``out_of_fold`` says whether the score is the measured out-of-fold loss (training function given) or the
    engine's estimate ℓ + s̃."""

    score: str
    n_records: int
    worth_inspecting: int
    share_worth_inspecting: float
    suspects: list[dict]
    by_group: list[dict]
    score_quantiles: dict[str, float]
    out_of_fold: bool = False
    folds: int | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return json_safe(asdict(self))


ENGINE_SCORE = ("misfit records by loss, then the others by estimated held-out loss "
                "(loss + leverage-corrected self-influence)")
OUT_OF_FOLD_SCORE = ("misfit records by loss, then the others by the mean of their ranks by loss and by "
                     "out-of-fold loss (measured: {k}-fold cross-fitting with the training function, {k} extra "
                     "trainings); score: the out-of-fold loss")


class DataQualityAudit(AuditPlugin):
    """Likely mislabelled or anomalous training records: misfit records by loss, then the others by held-out
    loss, measured out of fold when a training function is given, else estimated (``default_order``)."""

    name = "data_quality"
    Options = QualityOptions
    findings_model = DataQualityFindings

    def plan(self, context: AuditContext, options: QualityOptions) -> InfluenceRequests:
        """The leverage-corrected self-influence of every training record."""
        return InfluenceRequests(self_influence={True})

    def rankings(self, findings: dict, context: AuditContext) -> list[Ranking]:
        """The most suspicious records when the ranking is estimated from influence (``suspicion_order``); none
        when it is measured by out-of-fold losses (with a training function): no engine setting changes that."""
        if findings.get("out_of_fold"):
            return []
        loss = context.losses("train")

        def rank(_, influence: np.ndarray) -> np.ndarray:
            order = suspicion_order(loss, influence)
            position = np.empty(order.size)
            position[order] = np.arange(order.size)
            return position

        return [Ranking("most suspicious training records (data quality)", "quality_top", rank, self_influence=True)]

    def run(self, context: AuditContext, options: QualityOptions) -> QualityFindings:
        train = context.train
        loss = context.losses("train")
        influence = context.self_influence(leverage=True)
        measured = context.train_fn is not None and options.out_of_fold
        if measured:
            score, _ = out_of_fold_losses(context, folds=options.folds,
                                          seed=context.seed_for("quality", options.seed))
            label = OUT_OF_FOLD_SCORE.format(k=options.folds)
            note = (f"Data quality: the held-out loss was measured by {options.folds}-fold cross-fitting (each "
                    "record's loss under a model retrained without its fold by the training function). A fold "
                    "model warm-started from the audited weights of a non-convex model can keep labels the "
                    "network memorised, so their out-of-fold loss may be understated.")
        else:
            score = loss + influence
            label = ENGINE_SCORE
            note = ("Data quality: the held-out loss was estimated from the trained model (loss + "
                    "leverage-corrected self-influence), not measured by retraining: "
                    + ("out-of-fold scoring was switched off (out_of_fold: false)." if context.train_fn is not None
                       else "no training function was given.")
                    + " On the benchmark MLPs this ranking found fewer flipped labels than the out-of-fold one "
                      "(benchmarks/results/privacy_detection.md).")
        order = default_order(loss, influence, score if measured else None)
        context.record_scores["data_quality_score"] = score       # every record's, for the private ranking
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
                for c, label_name in enumerate(classes):
                    cell = (values == group) & (train.y == c)
                    if cell.any():
                        by_group.append({"attribute": column, "group": group, "label": label_name,
                                         "count": int(cell.sum()), "worth_inspecting": int(inspect[cell].sum())})
        quantiles = {f"q{int(q * 100)}": float(np.quantile(score, q)) for q in (0.5, 0.9, 0.99)}
        return QualityFindings(label, train.n, int(inspect.sum()), float(inspect.mean()), suspects, by_group,
                               quantiles, out_of_fold=bool(measured), folds=options.folds if measured else None,
                               notes=[note])
