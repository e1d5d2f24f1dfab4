"""The privacy audit: membership-inference risk, calibrated flags of exposed records, exposure by group.

Members are the training records, non-members a held-out split never used in training.

**Signals** (per record, members and non-members alike, each oriented "higher = more exposed"):

- ``self_influence``: ``(1/n) gᵀ (H ∓ AᵀA/n)⁻¹ g`` at the trained parameters, with the record's own
  curvature taken out of H for a member (≈ how much its own loss would rise if it were removed and the
  model retrained) and put into H for a non-member (how much its loss would drop if it were added):
  the leverage-corrected self-influence, which does not miss records whose fit rests on themselves alone;
- ``tracin`` (when checkpoints are given): ``Σ_c ‖∇ℓ(z; θ_c)‖²`` over training checkpoints, which sees a
  record while it was being memorised;
- ``reference`` (when a training function is given): the LiRA-offline z-score of the model's confidence
  on the record against reference models trained without it: memorisation measured directly.

**Risk score.** Each signal x is put on the scale of the non-members' upper tail,
``r = (x − median_nm) / (q_nm − median_nm)`` with ``q_nm`` the non-members' ``(1 − budget)`` quantile, so
that on every signal "as extreme as the top budget-fraction of non-members" reads 1 whatever the signal's
units or tail (self-influence of a neural network is very heavy-tailed; a z-score is not), and
``risk = max`` over the available signals. **Flags**: a member is flagged when its
risk exceeds the ``(1 − budget)`` quantile of the non-members' risk, so a record that is not exposed
(exchangeable with the non-members) is flagged with probability at most about ``budget``: the false-alarm
rate is known. The record's loss is not part of the risk (a low loss marks easy records as much as
exposed ones); it is the LOSS-attack baseline.

**Membership-inference evaluation** (members vs non-members, overall and per group): the LOSS attack
(score −loss), the self-influence attack (score −self-influence: members have been fitted, so their
gradients are smaller), TracIn (−tracin) and the reference-model attack (+z) when available; AUC, TPR at
low FPR and advantage against a random baseline, with ROC data for a log-scale plot.

**Trust.** Self-influence at the final parameters misses records a non-convex model has memorised (their
gradient vanishes). The top-ranked members are therefore checked by actual leave-one-out retraining when a
training function is given; otherwise the findings say plainly that memorisation may be underestimated.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import torch
from pydantic import Field, field_validator
from scipy.stats import spearmanr

from ...errors import InputError
from ...influence.tracin import tracin_self_influence
from ...influence.training import fit_model
from ..base import AuditContext, AuditPlugin, InfluenceRequests, PluginOptions, Ranking
from ..jsonsafe import json_safe
from .attacks import attack_metrics, attack_metrics_by_group, flag_threshold
from .findings import PrivacyFindings as FindingsModel
from .parallel import train_job
from .reference import reference_attack


class PrivacyOptions(PluginOptions):
    """Options of the privacy audit (the ``privacy:`` block of audit.yaml)."""

    holdout: str = Field("holdout", description="the split of non-members (never trained on)")
    budget: float = Field(0.01, gt=0, lt=1, description="false-positive budget of a flag")
    fprs: list[float] = [0.01, 0.001]
    reference_models: int | Literal["auto"] = Field(
        "auto", description="reference models when a training function is given (0: none; otherwise at least 3; "
                            "auto: as many as reference_budget_s allows, measured on the first)")
    reference_budget_s: float = Field(30.0, gt=0, le=86_400, description="seconds the reference models may take "
                                                                         "when reference_models is auto")
    reference_attack: Literal["auto", "online", "offline"] = Field(
        "auto", description="online LiRA (models with and without every record) or offline (without only); "
                            "auto: online from 8 models on")
    min_group_size: int = Field(30, ge=1)
    trust_top: int = Field(10, ge=0, description="top-ranked members checked by retraining")
    seed: int | None = Field(None, ge=0, le=2**64 - 1, description="seed of the reference models (unset: derived "
                             "from the run's seed)")

    @field_validator("reference_models", mode="before")
    @classmethod
    def _zero_three_or_auto(cls, value):
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool)
                               and (value == 0 or 3 <= value <= 1000)):
            return value
        raise ValueError("use 0 (no reference-model attack), 3 to 1000 reference models, or auto (as many as "
                         "reference_budget_s allows)")


@dataclass
class PrivacyFindings:
    """What the privacy audit found (tokens, never record ids); ``to_dict()`` is JSON-safe."""

    signals: list[str]
    risk_score: str
    budget: float
    threshold: float
    n_members: int
    n_nonmembers: int
    flags: list[dict]
    realised_fpr_on_calibration: float
    attacks: dict[str, dict]
    attacks_by_group: dict[str, dict]
    exposure: list[dict]
    trust: dict
    distribution: dict
    notes: list[str] = field(default_factory=list)
    #: the reference-model attack that ran (None: none): attack ("online" / "offline"), n_models,
    #: initialisation ("cold (builder)", "cold (reset_parameters)" or "warm"), chosen_from_budget, budget_s,
    #: seconds (all of it), seconds_first_model, seconds_per_model_mean, workers, early_stopping_tolerance
    #: (‖∇R‖∞ where the built-in trainer stops; None: the training function's own), converged (models whose
    #: relative gradient norm is at most converged_tolerance), largest_relative, pool (splits trained on)
    reference: dict | None = None

    @property
    def n_flagged(self) -> int:
        return len(self.flags)

    def to_dict(self) -> dict:
        return json_safe({**asdict(self), "n_flagged": self.n_flagged})


def reference_note(run: dict) -> str:
    """One sentence for the report: which reference-model attack ran, with how many models, in what time."""
    spread = "standard deviations pooled over the records"
    kind = (f"online LiRA (each record in about half of the models, out of the others; Gaussian fits with per-record "
            f"means, {spread}; the likelihood ratio made non-decreasing in the model's confidence)"
            if run["attack"] == "online"
            else f"offline LiRA (models trained without the record only; {spread})")
    how = (f"chosen from a time budget of {run['budget_s']:g} s after the first took "
           f"{run['seconds_first_model']:.1f} s" if run["chosen_from_budget"] else f"{run['n_models']} as configured")
    start = {"cold (builder)": "cold-started from the builder's initialisation (seeded)",
             "cold (reset_parameters)": "cold-started from PyTorch's initialisation of the layers (seeded)",
             }.get(run["initialisation"], "warm-started from the audited weights")
    stop = (f", stopped at a gradient norm of {run['early_stopping_tolerance']:g}"
            if run["early_stopping_tolerance"] is not None else "")
    return (f"Reference-model attack: {kind} with {run['n_models']} reference models ({how}), {start}{stop}; "
            f"{run['workers']} worker process(es), {run['seconds']:.0f} s in all; {run['converged']} of "
            f"{run['n_models']} reached a relative gradient norm of {run['converged_tolerance']:g}.")


def tail_scale(values: np.ndarray, reference: np.ndarray, budget: float) -> np.ndarray:
    """``(values − median(ref)) / (q_{1−budget}(ref) − median(ref))``: 1 at the reference's upper tail."""
    median = np.median(reference)
    spread = np.quantile(reference, 1 - budget) - median
    floor = 1e-12 * max(1.0, float(np.abs(reference).max(initial=0.0)))
    return (values - median) / max(spread, floor)


def audited_grad_norm(context: AuditContext, trainer) -> float:
    """``‖∇R(θ̂)‖∞`` of the audited model on its training records, for the built-in trainer's objective
    ``R(θ) = mean loss + (l2/2)‖θ‖²`` (``trainer.loss``, ``trainer.l2``); the model is not changed."""
    X, y = context.tensor("train")
    y = y.to(X.dtype) if trainer.loss == "bce" else y
    return float(fit_model(copy.deepcopy(context.model), X, y, loss=trainer.loss, l2=trainer.l2,
                           tol=math.inf)["grad_norm"])


def risk_histogram(members: np.ndarray, nonmembers: np.ndarray, threshold: float, bins: int = 40) -> dict:
    """Counts of the risk score of members and non-members on shared bins (for the report's figure).

    Bins span the smallest score to ``max(2 × threshold, 99th percentile of members)``; scores above the
    last edge are counted in the last bin and reported in ``above_last_edge``. Aggregates only: no record.
    """
    low = float(min(members.min(initial=0.0), nonmembers.min(initial=0.0)))
    high = float(max(2 * threshold, np.quantile(members, 0.99) if members.size else threshold, low + 1e-9))
    edges = np.linspace(low, high, bins + 1)
    count = lambda x: np.histogram(np.clip(x, low, high), edges)[0].tolist()  # noqa: E731
    return {"edges": edges.tolist(), "members": count(members), "nonmembers": count(nonmembers),
            "threshold": float(threshold),
            "above_last_edge": {"members": int((members > high).sum()), "nonmembers": int((nonmembers > high).sum())}}


class PrivacyAudit(AuditPlugin):
    """Membership-inference risk with calibrated flags, exposure by group, and a retraining check."""

    name = "privacy"
    Options = PrivacyOptions
    findings_model = FindingsModel

    def plan(self, context: AuditContext, options: PrivacyOptions) -> InfluenceRequests:
        """The leverage-corrected self-influence of every training record."""
        return InfluenceRequests(self_influence={True})

    def rankings(self, findings: dict, context: AuditContext) -> list[Ranking]:
        """The members of highest (leverage-corrected) self-influence, with the retraining check if it ran."""
        trust = findings.get("trust") or {}
        evidence = ({"spearman": trust.get("spearman"), "median_ratio": trust.get("median_ratio_actual_to_predicted")}
                    if trust.get("checked") else None)
        return [Ranking("training records of highest self-influence (privacy risk)", "privacy_top",
                        lambda _, influence: -influence, self_influence=True, retraining=evidence)]

    def run(self, context: AuditContext, options: PrivacyOptions) -> PrivacyFindings:
        if options.holdout not in context.splits:
            raise InputError(f"privacy: the non-member split {options.holdout!r} is missing: give a held-out "
                             f"split never used in training (splits present: {sorted(context.splits)})")
        train, holdout = context.train, context.splits[options.holdout]
        X_h, y_h = context.tensor(options.holdout)
        signals = {"self_influence": (context.self_influence(leverage=True),
                                      context.engine.self_influence_of(X_h, y_h, leverage=True))}
        notes = []
        if context.checkpoints:
            X_t, y_t = context.tensor("train")
            run = {"loss": context.loss, "dtype": context.engine.dtype}
            signals["tracin"] = (tracin_self_influence(context.model, context.checkpoints, X_t, y_t, **run),
                                 tracin_self_influence(context.model, context.checkpoints, X_h, y_h, **run))
        reference = None
        if context.train_fn is not None and options.reference_models != 0:
            auto = options.reference_models == "auto"
            ref = reference_attack(context, n_models=None if auto else options.reference_models,
                                   seed=context.seed_for("privacy", options.seed),
                                   splits=("train", options.holdout), attack=options.reference_attack,
                                   budget_s=options.reference_budget_s)
            signals["reference"] = (ref.scores["train"], ref.scores[options.holdout])
            reference = json_safe(ref.run)
            notes.append(reference_note(ref.run))
        scaled = {k: (tail_scale(m, h, options.budget), tail_scale(h, h, options.budget))
                  for k, (m, h) in signals.items()}
        risk_m = np.max([m for m, _ in scaled.values()], axis=0)
        risk_h = np.max([h for _, h in scaled.values()], axis=0)
        threshold = flag_threshold(risk_h, options.budget)
        flags = self._flags(context, risk_m, threshold, scaled, options.budget)
        context.record_scores["privacy_risk"] = risk_m           # every member's, for the private ranking

        loss_m, loss_h = context.losses("train"), context.losses(options.holdout)
        attack_scores = {"loss": (-loss_m, -loss_h),
                         "self_influence": tuple(-s for s in signals["self_influence"])}
        if "tracin" in signals:
            attack_scores["tracin"] = tuple(-s for s in signals["tracin"])
        if "reference" in signals:
            attack_scores["reference"] = signals["reference"]
        attacks = {k: attack_metrics(m, h, fprs=tuple(options.fprs), name=k).to_dict()
                   for k, (m, h) in attack_scores.items()}
        by_group = {}
        for column in train.groups.columns:
            g_m, g_h = train.groups[column].astype(str).to_numpy(), holdout.groups[column].astype(str).to_numpy()
            by_group[column] = {k: {g: (r.to_dict() if r is not None else None) for g, r in
                                    attack_metrics_by_group(m, h, g_m, g_h, min_group_size=options.min_group_size,
                                                            fprs=tuple(options.fprs), name=k).items()}
                                for k, (m, h) in attack_scores.items()}
        if not flags:
            notes.append(f"No training record was flagged: every member's risk stays within the top "
                         f"{100 * options.budget:g}% of the non-members' (signals: {', '.join(sorted(signals))}).")
        trust = self._trust(context, risk_m, options, notes)
        return PrivacyFindings(sorted(signals), "max over signals of (x − median) / (upper-tail quantile − median) "
                               "of the non-members",
                               options.budget, float(threshold), train.n, holdout.n, flags,
                               float(np.mean(risk_h > threshold)), attacks, by_group,
                               self._exposure(train, risk_m, threshold, options.min_group_size), trust,
                               risk_histogram(risk_m, risk_h, threshold), notes, reference)

    @staticmethod
    def _flags(context: AuditContext, risk: np.ndarray, threshold: float, scaled: dict, budget: float) -> list[dict]:
        train = context.train
        classes = [str(c) for c in train.classes]
        out = []
        for j in np.argsort(-risk, kind="stable"):
            if risk[j] <= threshold:
                break
            name, value = max(((k, float(m[j])) for k, (m, _) in scaled.items()), key=lambda kv: kv[1])
            out.append({"token": context.token("train", int(j)), "risk": float(risk[j]),
                        "label": classes[train.y[j]],
                        "groups": {c: str(train.groups[c].iat[j]) for c in train.groups.columns},
                        "reason": f"{name} {value:.1f}× as far above the non-members' median as their top "
                                  f"{100 * budget:g}%"})
        return out

    @staticmethod
    def _exposure(train, risk: np.ndarray, threshold: float, min_group_size: int) -> list[dict]:
        """Per attribute and group: mean and 95th-percentile risk, flag rate; the gap across groups."""
        out = []
        for column in train.groups.columns:
            values = train.groups[column].astype(str).to_numpy()
            rows = []
            for group in sorted(set(values)):
                r = risk[values == group]
                rows.append({"group": group, "count": int(r.size), "sufficient": bool(r.size >= min_group_size),
                             "mean_risk": float(r.mean()), "p95_risk": float(np.quantile(r, 0.95)),
                             "flag_rate": float(np.mean(r > threshold))})
            usable = [r for r in rows if r["sufficient"] and r["group"] != "unknown"]
            gap = {k: (max(r[k] for r in usable) - min(r[k] for r in usable)) if len(usable) >= 2 else None
                   for k in ("mean_risk", "p95_risk", "flag_rate")}
            out.append({"attribute": column, "groups": rows, "gap": gap})
        return out

    @staticmethod
    def _trust(context: AuditContext, risk: np.ndarray, options: PrivacyOptions, notes: list[str]) -> dict:
        """Actual leave-one-out retraining of the top-ranked members against their self-influence."""
        top = np.argsort(-risk, kind="stable")[: options.trust_top]
        if context.train_fn is None or top.size == 0:
            why = ("no training function was given to check the top-ranked records by retraining" if
                   context.train_fn is None else "the check of the top-ranked records by retraining was switched "
                                                 "off (trust_top: 0)")
            notes.append("Memorisation may be underestimated: self-influence at the final parameters misses "
                         f"records a non-convex model has memorised, and {why}.")
            return {"checked": False, "records": []}
        predicted = context.self_influence(leverage=True)[top]
        before = context.losses("train")
        X, y = (t.numpy() for t in context.tensor("train"))
        keep = np.ones((top.size, context.train.n), dtype=bool)
        keep[np.arange(top.size), top] = False                 # model k: every training record but top[k]
        trainer = context.train_fn
        if callable(getattr(trainer, "with_tolerance", None)):    # the built-in trainer: stop as stationary as θ̂
            trainer = trainer.with_tolerance(max(float(trainer.tol), audited_grad_norm(context, trainer)))
        job = {"model": context.model, "train_fn": trainer, "X": X, "y": y, "members": keep,
               "seed": context.seed_for("privacy", options.seed), "cold": False, "build": None}
        started = time.perf_counter()
        states, workers = train_job(job, range(top.size))
        actual, unmoved = [], 0
        audited = context.model.state_dict()
        for k, j in enumerate(top):
            net = copy.deepcopy(context.model)
            net.load_state_dict(states[k][0])
            unmoved += all(torch.equal(states[k][0][n], t) for n, t in audited.items())
            context._record_refit(net, X[keep[k]], y[keep[k]], "privacy trust check")
            actual.append(float(context.losses("train", net)[j] - before[j]))
        seconds = time.perf_counter() - started
        actual = np.array(actual)
        under = int(np.sum(actual > 2 * np.maximum(predicted, 0)))
        if under:
            notes.append(f"{under} of the {top.size} top-ranked records moved more than twice as much on actual "
                         "retraining as self-influence predicted: self-influence underestimates memorisation here.")
        if unmoved:
            notes.append(f"{unmoved} of the {top.size} leave-one-out models of the trust check did not move from the "
                         "audited weights: removing the record changes the gradient of the objective by less than the "
                         f"audited model's own ‖∇R‖∞ ({trainer.tol:.2g}), where retraining stops; train the model "
                         "closer to a minimum for a finer check.")
        return {"checked": True,
                "spearman": float(spearmanr(predicted, actual)[0]) if top.size > 2 else None,
                "median_ratio_actual_to_predicted": float(np.median(actual / np.maximum(predicted, 1e-12))),
                "underestimated": under,
                "records": [{"token": context.token("train", int(j)), "predicted": float(p), "actual": float(a)}
                            for j, p, a in zip(top, predicted, actual, strict=True)],
                "workers": workers, "seconds": seconds, "unmoved": unmoved,
                "early_stopping_tolerance": None if trainer is context.train_fn else trainer.tol}
