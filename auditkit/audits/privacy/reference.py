"""Offline reference-model membership attack (LiRA-offline style, Carlini et al. 2022).

It measures memorisation directly: how much more confident the audited (target) model is on a record
than models that never saw it.

1. Train ``K = n_models`` reference models, each on a seeded random half of the training records, in
   complementary pairs (half A, then the other half B), so with K even every training record is out of
   exactly K/2 of them (with K odd, the last model takes one more random half: out of at least (K−1)/2).
   Each one is ``context.train_fn(deepcopy(context.model), X_half, y_half)``.
2. For each record and model, the logit-scaled confidence of its true label

       ``φ = log(p_y / (1 − p_y))``,  p clipped to [1e-12, 1 − 1e-12] (so |φ| ≤ 27.63),

   where ``p_y`` is the softmax probability of the true class (the sigmoid's for ``loss="bce"``). It is
   computed from the outputs as ``o_y − logsumexp_{k≠y} o_k`` (or ``±o`` for one logit), the same number
   without the cancellation of ``1 − p_y`` when the model is confident.
3. A training record's OUT models are those not trained on it. A record outside the training set
   (holdout, test) was seen by none, but its OUT models are drawn the way a training record's are: one
   model of each complementary pair, chosen at random per record (and the unpaired model with
   probability ½). Averaging all K would be unfair to the members: the two halves of a pair average to
   about the full-data model, so a non-member's ``μ_out`` would sit much closer to ``φ_target`` than any
   member's (measured: non-member z spread 0.2 against 0.75 for members of a logistic regression,
   flagging members on noise alone). Drawn alike, a member that is not memorised and a non-member have
   the same distribution of z, so thresholds calibrated on non-members hold for members.
   ``μ_out`` is the mean of the record's OUT φ's, and the score is

       ``z = (φ_target − μ_out) / σ``,

   with ``σ`` one global (pooled) standard deviation of the OUT φ's around their per-record means,
   ``σ² = Σ_i Σ_{k ∈ OUT_i} (φ_ik − μ_out,i)² / Σ_i (|OUT_i| − 1)`` over the training records, floored at
   ``SIGMA_FLOOR``. This is LiRA's fixed-variance variant, the one its authors recommend with few
   reference models: a per-record variance from 2 to 4 values is too noisy to divide by. It is computed
   on the training records only, so the scores do not depend on which other splits are scored.

Higher z = the target is more confident on the record than models without it = more member-like = more
memorised. z is not N(0, 1) for a non-member: a convex target, trained on all n records, behaves like the
mean of many half-data models, so the spread of z is about ``sqrt(2/K)`` (measured 0.65 for K = 4 on a
logistic regression), wider for a non-convex one (1.07 for an MLP), with a small offset (the target saw
twice the data; measured −0.1). Read z against non-members scored the same way (a held-out split), not
against the normal distribution.

Cost: K trainings (on n/2 records each) plus K + 1 forward passes per split; nothing else.

Caveat (warm start): the reference models start from the trained parameters, as ``train_fn`` does (see
``auditkit.audits.base.warm_start_trainer``). For a convex model (logistic regression) the minimum is
unique and the start does not matter. For a non-convex model (an MLP) the optimiser may stay in the basin
where the target memorised a record it then no longer sees, so ``μ_out`` keeps some of the memorisation,
z shrinks, and the attack is conservative: it under-states memorisation, it does not invent it.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ...errors import InputError
from ..base import AuditContext

#: p is clipped to [P_CLIP, 1 − P_CLIP] before φ = log(p / (1 − p)).
P_CLIP = 1e-12
PHI_MAX = float(np.log((1 - P_CLIP) / P_CLIP))
#: Smallest σ used (logit units), so near-identical reference models do not blow up z.
SIGMA_FLOOR = 1e-3


@dataclass(eq=False)
class ReferenceScores:
    """Per-record membership scores of the reference-model attack, for each split scored.

    ``scores[split]`` = z, ``phi_target[split]`` = φ of the audited model, ``mu_out[split]`` = mean φ of
    the record's OUT models, ``n_out[split]`` = how many OUT models each record has; ``sigma`` is the
    pooled standard deviation; ``in_model[k, j]`` says whether reference model k was trained on
    training record j.
    """

    scores: dict[str, np.ndarray]
    phi_target: dict[str, np.ndarray]
    mu_out: dict[str, np.ndarray]
    n_out: dict[str, np.ndarray]
    n_models: int
    sigma: float
    seed: int
    in_model: np.ndarray = field(repr=False)


def logit_confidence(outputs: torch.Tensor, y: torch.Tensor, loss: str) -> np.ndarray:
    """``φ = log(p_y / (1 − p_y))`` per record from a classifier's outputs, with p clipped to
    [1e-12, 1 − 1e-12]; computed stably as ``o_y − logsumexp_{k≠y} o_k`` (softmax) or ``±o`` (sigmoid)."""
    out = outputs.detach().double()
    if loss == "cross_entropy":
        labels = y.long().reshape(-1, 1)
        own = out.gather(1, labels)[:, 0]
        others = out.scatter(1, labels, float("-inf")).logsumexp(dim=1)
        phi = own - others
    elif loss == "bce":
        logit = out.reshape(out.shape[0])
        phi = torch.where(y.reshape(logit.shape).double() > 0.5, logit, -logit)
    else:
        raise InputError(f"loss={loss!r} is not a classification loss: the reference-model attack needs "
                         "loss='cross_entropy' or loss='bce'")
    return phi.clamp(-PHI_MAX, PHI_MAX).numpy()


def _halves(n: int, n_models: int, seed: int) -> np.ndarray:
    """``in_model`` (n_models, n): complementary pairs of random halves, then one extra half if K is odd."""
    rng = np.random.default_rng(seed)
    members = np.zeros((n_models, n), dtype=bool)
    for k in range(0, n_models - 1, 2):
        perm = rng.permutation(n)
        members[k, perm[:n // 2]] = True
        members[k + 1, perm[n // 2:]] = True
    if n_models % 2:
        members[-1, rng.permutation(n)[:n // 2]] = True
    return members


def _matched_out(n: int, n_models: int, seed: int, split: str) -> np.ndarray:
    """OUT models of records outside the training set, drawn as a training record's are: one model of each
    complementary pair (chosen at random per record), and the unpaired last model with probability ½."""
    rng = np.random.default_rng([seed, 1, zlib.crc32(split.encode())])
    out = np.zeros((n_models, n), dtype=bool)
    for k in range(0, n_models - 1, 2):
        first = rng.random(n) < 0.5
        out[k], out[k + 1] = first, ~first
    if n_models % 2:
        out[-1] = rng.random(n) < 0.5
    return out


def _check(context: AuditContext, n_models, seed, splits) -> tuple[str, ...]:
    if not isinstance(context, AuditContext):
        raise InputError(f"context must be an AuditContext, got {type(context).__name__}")
    if context.train_fn is None:
        raise InputError("the reference-model attack needs a training function: pass train_fn to the "
                         "AuditContext (e.g. warm_start_trainer(loss=..., l2=...) from auditkit.audits.base)")
    if isinstance(n_models, bool) or not isinstance(n_models, (int, np.integer)) or n_models < 3:
        raise InputError(f"n_models={n_models!r} is not allowed: it must be an integer ≥ 3 (4 or more, even, "
                         "recommended) so that every training record is out of some reference models and "
                         "their spread can be estimated")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"seed={seed!r} is not allowed: it must be an integer")
    names = (splits,) if isinstance(splits, str) else tuple(splits)
    unknown = [s for s in names if s not in context.splits]
    if not names or unknown:
        raise InputError(f"splits={list(names)!r} is not allowed: choose one or more of "
                         f"{sorted(context.splits)!r}")
    if context.train.n < 4:
        raise InputError(f"the training split has {context.train.n} records: the reference-model attack "
                         "needs at least 4 to train reference models on halves of it")
    return names


def reference_attack(context: AuditContext, *, n_models: int = 4, seed: int = 0,
                     splits=("train", "holdout")) -> ReferenceScores:
    """Membership scores ``z = (φ_target − μ_out) / σ`` of the records of ``splits`` (see the module
    docstring); trains ``n_models`` reference models with ``context.train_fn``."""
    names = _check(context, n_models, seed, splits)
    n_models, seed = int(n_models), int(seed)
    train = context.train
    in_model = _halves(train.n, n_models, seed)
    scored = tuple(dict.fromkeys(("train", *names)))           # train always: σ is pooled over it

    def phi(split: str, model: nn.Module | None) -> np.ndarray:
        return logit_confidence(context.outputs(split, model), context.tensor(split)[1], context.loss)

    phi_ref = {s: np.empty((n_models, context.splits[s].n)) for s in scored}
    for k in range(n_models):
        net = context.trained_on(np.flatnonzero(in_model[k]), seed=(seed, k), purpose="reference model")
        for s in scored:
            phi_ref[s][k] = phi(s, net)

    out_mask = {s: (~in_model if s == "train" else _matched_out(context.splits[s].n, n_models, seed, s))
                for s in scored}
    n_out = {s: out_mask[s].sum(axis=0) for s in scored}
    mu_out = {s: np.where(out_mask[s], phi_ref[s], 0.0).sum(axis=0) / n_out[s] for s in scored}

    resid = np.where(out_mask["train"], phi_ref["train"] - mu_out["train"], 0.0)
    dof = int((n_out["train"] - 1).sum())
    sigma = max(float(np.sqrt((resid ** 2).sum() / dof)) if dof > 0 else 0.0, SIGMA_FLOOR)

    phi_target = {s: phi(s, None) for s in names}
    return ReferenceScores(scores={s: (phi_target[s] - mu_out[s]) / sigma for s in names},
                           phi_target=phi_target, mu_out={s: mu_out[s] for s in names},
                           n_out={s: n_out[s] for s in names}, n_models=n_models, sigma=sigma, seed=seed,
                           in_model=in_model)
