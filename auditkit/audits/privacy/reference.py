"""Reference-model membership attacks (LiRA, Carlini et al. 2022): online when the budget allows, else offline.

They measure memorisation directly: how much more confident the audited (target) model is on a record than
models that never saw it.

**Reference models never saw the record and do not start from the audited weights.** Each one is
``train_fn(model₀, X_half, y_half)`` where ``model₀`` is a fresh model from the builder (``train_fn.build()``,
which :func:`auditkit.inputs.training_function` attaches when the configuration names ``model.builder``) under a
torch seed drawn from ``SeedSequence([seed, k])``; without a builder (a model object given in memory), a copy of
the audited model whose every layer was re-initialised with ``reset_parameters()`` (what its layers do when
built). A cold start: no memorised record carries over from the audited weights (a warm start could stay in
the basin where the target memorised it). A model with parameters held by a module without
``reset_parameters`` and no builder cannot be cold-started: the attack refuses it with a clear error.
(``initialisation="warm"`` keeps the old behaviour, for comparison only.)
When ``train_fn`` is the built-in ``warm_start`` trainer, the reference models stop early at
``‖∇R‖∞ ≤ REFERENCE_TOLERANCE`` (1e-5) instead of its 1e-9; a user's training function decides for itself.

**Design.** ``K`` models in complementary pairs of random halves (half A, then the other half B), so with
K even every record of the pool is in exactly K/2 of them (K odd: the last model takes one more random half).

- *online* (the pool is the training split **and** the scored non-member splits, e.g. the holdout): every
  record, member or not, has IN models (trained with it) and OUT models (without it). Per record, Gaussian
  fits of the logit-scaled confidence φ (below) of the IN and of the OUT models, ``N(μ_in, σ_in²)`` and
  ``N(μ_out, σ_out²)``, and the score is LiRA's likelihood ratio, made non-decreasing in φ_target:

      ``Λ(x) = log N(x; μ_in, σ_in²) − log N(x; μ_out, σ_out²)``,   score ``= Λ(clip(φ_target))``.

  The means are per record; the standard deviations are pooled over the records (LiRA's fixed-variance
  variant). Per-record standard deviations were dropped (they were used from 32 IN and 32 OUT models on): on
  the canary benchmark's development seeds (10, 11; ``benchmarks/privacy_mlp_canaries.py``), far outside the
  data the OUT models of a memorised record split between predicting its label and not, so its own σ_out is
  several logits wide and Λ stays near the non-members' tail (64 models: 20, 19 and 18 of 20 canaries flagged
  on three development runs); pooled, 20 of 20 on each. ``Λ`` is a quadratic in x; with ``σ_in ≠ σ_out`` it turns at
  ``x* = (μ_in/σ_in² − μ_out/σ_out²) / (1/σ_in² − 1/σ_out²)``, beyond which a *more* confident target would
  score *lower* (a record the audited model, trained to a tighter tolerance than the reference models, fits
  better than they do looked less exposed). ``clip`` keeps x on the rising side: ``min(x, x*)`` when
  ``σ_in < σ_out``, ``max(x, x*)`` when ``σ_in > σ_out``, x itself when they are equal. Members and
  non-members are scored by the same rule against models drawn the same way, so a threshold calibrated on
  non-members holds for members that are not memorised.
- *offline* (the pool is the training split only): a member's OUT models are those not trained on it; a record
  outside the training set was seen by none, but its OUT models are drawn the way a training record's are (one
  model of each complementary pair, chosen at random per record, and the unpaired model with probability ½):
  averaging all K would be unfair to the members (the two halves of a pair average to about the full-data
  model). The score is ``z = (φ_target − μ_out) / σ`` with σ pooled over the training records' OUT values
  (``Σ_i Σ_{k∈OUT_i} (φ_ik − μ_out,i)² / Σ_i (|OUT_i| − 1)``), floored at ``SIGMA_FLOOR``.

``attack="auto"`` runs online when ``K ≥ ONLINE_MIN_MODELS`` (8: about 4 IN and 4 OUT models per record), else
offline.

**How many models.** ``n_models=None``: the first reference model is trained and timed (``t₁``, seconds), and
``K = 1 + ⌊(budget_s − t₁) · workers / t₁⌋``, rounded down to even, clipped to [``MIN_MODELS``, ``MAX_MODELS``]
(4, 64);
``workers`` is the number of processes that train them (``min(K, CPUs available)``, each with one torch thread,
started with "spawn"; 1 = one after the other in this process, also when the models left would take under
``PARALLEL_MIN_S`` (10 s) that way, or when the training function cannot be sent to another process). An explicit
``n_models`` is taken as given.

**φ**, the logit-scaled confidence of the true label: ``φ = log(p_y / (1 − p_y))``, p clipped to
[1e-12, 1 − 1e-12] (so |φ| ≤ 27.63), where ``p_y`` is the softmax probability of the true class (the sigmoid's
for ``loss="bce"``), computed as ``o_y − logsumexp_{k≠y} o_k`` (or ``±o`` for one logit), without the
cancellation of ``1 − p_y`` when the model is confident.

Higher score = the target is more confident on the record than models without it = more member-like = more
memorised. Neither z nor Λ is calibrated on its own: read them against non-members scored the same way (the
privacy plugin's flags do).

Cost: K trainings (on half the pool each; in parallel where the machine allows) plus K + 1 forward passes per
split.
"""

from __future__ import annotations

import copy
import time
import zlib
from dataclasses import dataclass, field

import numpy as np
import torch

from ...errors import InputError
from ..base import AuditContext
from .parallel import _JOB, PARALLEL_MIN_S, _train_all, available_workers, cold_start  # noqa: F401 (re-exported)

#: p is clipped to [P_CLIP, 1 − P_CLIP] before φ = log(p / (1 − p)).
P_CLIP = 1e-12
PHI_MAX = float(np.log((1 - P_CLIP) / P_CLIP))
#: Smallest σ used (logit units), so near-identical reference models do not blow up a score.
SIGMA_FLOOR = 1e-3
#: Early stopping of the reference models trained by the built-in trainer: ‖∇R‖∞ at most this.
REFERENCE_TOLERANCE = 1e-5
#: A reference model counts as converged when its relative gradient norm (``stationarity``) is at most this: it
#: measures memorisation (changes of the confidence of order 1), not a leave-one-out change of order 1/n.
REFERENCE_RELATIVE = 1e-4
#: Fewest / most reference models chosen from a time budget; online LiRA from this many models on.
MIN_MODELS, MAX_MODELS, ONLINE_MIN_MODELS = 4, 64, 16
ATTACKS = ("auto", "online", "offline")


@dataclass(eq=False)
class ReferenceScores:
    """Per-record membership scores of the reference-model attack, for each split scored.

    ``scores[split]``: Λ (online) or z (offline); ``phi_target[split]``: φ of the audited model;
    ``mu_out[split]`` / ``mu_in[split]``: mean φ of the record's OUT / IN models (``mu_in`` online only);
    ``n_out[split]``: how many OUT models each record has; ``sigma`` (offline: the pooled σ; online: the pooled
    σ_out) and ``sigma_in`` (online); ``in_model[k, j]``: whether reference model k was trained on training
    record j. ``attack``: "online" or "offline"; ``run``: how the models were made (initialisation, budget,
    time per model, workers, early-stopping tolerance, convergence), JSON-safe, for the findings.
    """

    scores: dict[str, np.ndarray]
    phi_target: dict[str, np.ndarray]
    mu_out: dict[str, np.ndarray]
    n_out: dict[str, np.ndarray]
    n_models: int
    sigma: float
    seed: int
    in_model: np.ndarray = field(repr=False)
    attack: str = "offline"
    mu_in: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    sigma_in: float | None = None
    run: dict = field(default_factory=dict)
    #: how the Gaussians' standard deviations were estimated: "per record" or "pooled" over the records
    variance: str = "pooled"


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


def _check(context: AuditContext, n_models, seed, splits, attack, budget_s, initialisation) -> tuple[str, ...]:
    if not isinstance(context, AuditContext):
        raise InputError(f"context must be an AuditContext, got {type(context).__name__}")
    if context.train_fn is None:
        raise InputError("the reference-model attack needs a training function: pass train_fn to the "
                         "AuditContext (e.g. warm_start_trainer(loss=..., l2=...) from auditkit.audits.base)")
    if n_models is not None and (isinstance(n_models, bool) or not isinstance(n_models, (int, np.integer))
                                 or n_models < 3):
        raise InputError(f"n_models={n_models!r} is not allowed: it must be an integer ≥ 3 (4 or more, even, "
                         "recommended) so that every training record is out of some reference models and "
                         "their spread can be estimated")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"seed={seed!r} is not allowed: it must be an integer")
    if attack not in ATTACKS:
        raise InputError(f"attack={attack!r} is not allowed: choose one of {list(ATTACKS)}")
    if initialisation not in ("cold", "warm"):
        raise InputError(f"initialisation={initialisation!r} is not allowed: choose 'cold' or 'warm'")
    if isinstance(budget_s, bool) or not isinstance(budget_s, (int, float)) or not budget_s > 0:
        raise InputError(f"budget_s={budget_s!r} is not allowed: give the seconds the reference models may take, "
                         "a positive number")
    names = (splits,) if isinstance(splits, str) else tuple(splits)
    unknown = [s for s in names if s not in context.splits]
    if not names or unknown:
        raise InputError(f"splits={list(names)!r} is not allowed: choose one or more of "
                         f"{sorted(context.splits)!r}")
    if context.train.n < 4:
        raise InputError(f"the training split has {context.train.n} records: the reference-model attack "
                         "needs at least 4 to train reference models on halves of it")
    return names


def _model_count(n_models, budget_s: float, first_s: float, workers: int) -> int:
    """``n_models`` if given, else the first model plus as many as the rest of the budget allows on ``workers``
    processes at ``first_s`` seconds each, rounded down to even, within [MIN_MODELS, MAX_MODELS]."""
    if n_models is not None:
        return int(n_models)
    k = 1 + int(max(budget_s - first_s, 0.0) * workers / max(first_s, 1e-9))
    return int(min(max(k - k % 2, MIN_MODELS), MAX_MODELS))


def _pooled(phi: np.ndarray, mask: np.ndarray, mu: np.ndarray) -> float:
    """Pooled standard deviation of ``phi`` (K, n) where ``mask`` around per-record means ``mu``."""
    resid = np.where(mask, phi - mu, 0.0)
    dof = int((mask.sum(axis=0) - 1).clip(min=0).sum())
    return max(float(np.sqrt((resid ** 2).sum() / dof)) if dof > 0 else 0.0, SIGMA_FLOOR)


def _mean(phi: np.ndarray, mask: np.ndarray) -> np.ndarray:
    count = mask.sum(axis=0)
    return np.where(mask, phi, 0.0).sum(axis=0) / np.maximum(count, 1)


def _log_normal(x, mu, sigma):
    return -0.5 * ((x - mu) / sigma) ** 2 - np.log(sigma)


def reference_attack(context: AuditContext, *, n_models: int | None = 4, seed: int = 0,
                     splits=("train", "holdout"), attack: str = "auto", budget_s: float = 30.0,
                     initialisation: str = "cold", workers: int | None = None) -> ReferenceScores:
    """Membership scores of the records of ``splits`` by reference models trained with ``context.train_fn``
    (see the module docstring): online LiRA's likelihood ratio Λ, or offline LiRA's z.

    ``n_models``: how many reference models (None: as many as ``budget_s`` seconds allow, measured on the
    first); ``attack``: "online", "offline" or "auto" (online from ``ONLINE_MIN_MODELS`` models);
    ``initialisation``: "cold" (re-initialised, seeded) or "warm" (from the audited weights; comparison
    only); ``workers``: processes training them (None: the CPUs available)."""
    names = _check(context, n_models, seed, splits, attack, budget_s, initialisation)
    seed = int(seed)
    started = time.perf_counter()
    train = context.train
    scored = tuple(dict.fromkeys(("train", *names)))           # train always: σ is pooled over it
    nonmembers = [s for s in scored if s != "train"]
    trainer = context.train_fn
    tolerance = None
    if callable(getattr(trainer, "with_tolerance", None)):
        tolerance = max(REFERENCE_TOLERANCE, float(getattr(trainer, "tol", 0.0)))
        trainer = trainer.with_tolerance(tolerance)
    online_possible = attack != "offline" and bool(nonmembers)
    if attack == "online" and not nonmembers:
        raise InputError("attack='online' needs a non-member split among splits (e.g. 'holdout'): online LiRA "
                         "trains reference models with and without non-members too")
    # the pool the models are trained on: online, the members and the scored non-members; offline, members only
    sizes = {s: context.splits[s].n for s in scored}
    online_pool = {s: context.tensor(s) for s in scored} if online_possible else None
    largest = int(n_models) if n_models is not None else MAX_MODELS

    def design(online: bool):
        n = sum(sizes.values()) if online else train.n
        return _halves(n, max(largest, 3), seed)

    forced = workers is not None
    workers = available_workers() if workers is None else max(1, int(workers))
    # the first model (timed) decides K; train it on the online pool when online is possible at all
    online = online_possible and (attack == "online" or (n_models is not None and n_models >= ONLINE_MIN_MODELS)
                                  or n_models is None)
    members = design(online)
    X_pool, y_pool = _pool(context, scored if online else ("train",), online_pool)
    _JOB.clear()
    _JOB.update(model=context.model, train_fn=trainer, X=X_pool.numpy(), y=y_pool.numpy(), members=members,
                seed=seed, cold=initialisation == "cold", build=getattr(context.train_fn, "build", None))
    try:
        first, _ = _train_all([0], 1)
        K = _model_count(n_models, budget_s, first[0][1], workers)
        if online and attack == "auto" and K < ONLINE_MIN_MODELS:
            online = False                                        # budget too small: offline, on members only
            members = design(False)
            X_pool, y_pool = _pool(context, ("train",), None)
            _JOB.update(X=X_pool.numpy(), y=y_pool.numpy(), members=members)
            first = {}
        rest = [k for k in range(K) if k not in first]
        if not forced and first and first[0][1] * len(rest) < PARALLEL_MIN_S:
            workers = 1                                           # quicker here than starting processes
        trained, used = _train_all(rest, min(workers, max(1, len(rest))))
        states = {**first, **trained}
    finally:
        _JOB.clear()
    members = members[:K]
    phi_ref = {s: np.empty((K, sizes[s])) for s in scored}
    converged = 0
    for k in range(K):
        net = copy.deepcopy(context.model)
        net.load_state_dict(states[k][0])
        rows = np.flatnonzero(members[k])
        context._record_refit(net, X_pool[rows].numpy(), y_pool[rows].numpy(), "reference model",
                              tolerance=REFERENCE_RELATIVE)
        converged += int(context.refits[-1]["converged"])
        for s in scored:
            phi_ref[s][k] = logit_confidence(context.outputs(s, net), context.tensor(s)[1], context.loss)
    phi_target = {s: logit_confidence(context.outputs(s), context.tensor(s)[1], context.loss) for s in names}
    seconds = [float(states[k][1]) for k in range(K)]
    build = getattr(context.train_fn, "build", None) is not None
    start = ("warm" if initialisation == "warm" else "cold (builder)" if build else "cold (reset_parameters)")
    run = {"attack": "online" if online else "offline", "n_models": K, "initialisation": start,
           "chosen_from_budget": n_models is None, "budget_s": float(budget_s),
           "seconds_first_model": seconds[0], "seconds_per_model_mean": float(np.mean(seconds)),
           "workers": used, "early_stopping_tolerance": tolerance, "converged": converged,
           "converged_tolerance": REFERENCE_RELATIVE,
           "largest_relative": max(r["relative"] for r in context.refits[-K:]),
           "pool": list(scored) if online else ["train"], "seconds": 0.0}
    if online:
        out = _online(phi_ref, phi_target, members, sizes, scored, names, K, seed)
    else:
        out = _offline(phi_ref, phi_target, members, sizes, scored, names, K, seed)
    out.run = {**run, "variance": out.variance, "seconds": time.perf_counter() - started}
    return out


def _pool(context: AuditContext, splits, cache) -> tuple[torch.Tensor, torch.Tensor]:
    parts = [cache[s] if cache else context.tensor(s) for s in splits]
    return torch.cat([X for X, _ in parts]), torch.cat([y for _, y in parts])


def _offline(phi_ref, phi_target, members, sizes, scored, names, K, seed) -> ReferenceScores:
    in_model = members[:, :sizes["train"]]
    out_mask = {s: (~in_model if s == "train" else _matched_out(sizes[s], K, seed, s)) for s in scored}
    n_out = {s: out_mask[s].sum(axis=0) for s in scored}
    mu_out = {s: _mean(phi_ref[s], out_mask[s]) for s in scored}
    sigma = _pooled(phi_ref["train"], out_mask["train"], mu_out["train"])
    return ReferenceScores(scores={s: (phi_target[s] - mu_out[s]) / sigma for s in names},
                           phi_target=phi_target, mu_out={s: mu_out[s] for s in names},
                           n_out={s: n_out[s] for s in names}, n_models=K, sigma=sigma, seed=seed,
                           in_model=in_model, attack="offline")


def monotone_ratio(x: np.ndarray, mu_in, sigma_in: float, mu_out, sigma_out: float) -> np.ndarray:
    """LiRA's ``Λ(x) = log N(x; μ_in, σ_in²) − log N(x; μ_out, σ_out²)`` at x clipped to the side of its turning
    point ``x* = (μ_in/σ_in² − μ_out/σ_out²) / (1/σ_in² − 1/σ_out²)`` where it rises (module docstring):
    non-decreasing in x, equal to Λ(x) there."""
    a, b = 1.0 / sigma_in ** 2, 1.0 / sigma_out ** 2
    if a == b:
        clipped = x
    else:
        turn = (np.asarray(mu_in) * a - np.asarray(mu_out) * b) / (a - b)
        clipped = np.minimum(x, turn) if sigma_in < sigma_out else np.maximum(x, turn)
    return _log_normal(clipped, mu_in, sigma_in) - _log_normal(clipped, mu_out, sigma_out)


def _online(phi_ref, phi_target, members, sizes, scored, names, K, seed) -> ReferenceScores:
    offsets = np.cumsum([0] + [sizes[s] for s in scored])
    in_mask = {s: members[:, offsets[i]:offsets[i + 1]] for i, s in enumerate(scored)}
    mu_in = {s: _mean(phi_ref[s], in_mask[s]) for s in scored}
    mu_out = {s: _mean(phi_ref[s], ~in_mask[s]) for s in scored}
    everything = np.concatenate([phi_ref[s] for s in scored], axis=1)
    inside = np.concatenate([in_mask[s] for s in scored], axis=1)
    sigma_in = _pooled(everything, inside, np.concatenate([mu_in[s] for s in scored]))
    sigma_out = _pooled(everything, ~inside, np.concatenate([mu_out[s] for s in scored]))
    scores = {s: monotone_ratio(phi_target[s], mu_in[s], sigma_in, mu_out[s], sigma_out) for s in names}
    return ReferenceScores(scores=scores, phi_target=phi_target, mu_out={s: mu_out[s] for s in names},
                           n_out={s: (~in_mask[s]).sum(axis=0) for s in names}, n_models=K, sigma=sigma_out,
                           seed=seed, in_model=in_mask["train"], attack="online",
                           mu_in={s: mu_in[s] for s in names}, sigma_in=sigma_in, variance="pooled")
