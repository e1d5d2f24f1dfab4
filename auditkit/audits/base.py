"""What an audit plugin receives and returns.

A plugin is a class with a registered ``name``, a pydantic ``Options`` model (unknown keys refused) and
``run(context, options) -> findings``. It reads the :class:`AuditContext` (the model, the fitted
influence engine, the data splits, the training function if any) and returns findings: a typed,
serialisable object with ``to_dict()``. A plugin never renders and never reads the policy.

**One pass over the training gradients.** Influence questions go through the context, which memoises
them: ``context.influence_on(key, measure, X, y)``, ``context.influence(split, positions)`` and
``context.self_influence(leverage=...)``. A plugin may also declare, before any plugin runs, what it will
ask, in ``plan(context, options) -> InfluenceRequests``; ``auditkit.audits.registry.prefetch`` collects the
plans of all configured plugins and answers them with ONE ``engine.batch`` call (one streamed pass over
the training records' gradients), so the plugins' later requests are served from memory. A request no
plan announced is still answered, by a pass of its own; results are the same either way.

Records never appear in findings by identifier: ``context.token(split, i)`` gives a token per record, keyed
by ``token_key``: by default 32 random bytes drawn for the run (``secrets``) and kept nowhere, so tokens differ
between runs and cannot be reversed from anything the report prints; a data owner who wants tokens stable across
runs gives the key (``AUDITKIT_TOKEN_KEY``). The token → record-id map stays in ``context.tokens`` for the private
outputs (flagged_records.csv, record_scores.csv).

**Seeds.** Every random choice of a plugin takes its seed from ``context.seed_for(purpose, explicit)``: an
explicit option wins, else the seed derived from the run's ``seed`` (:mod:`auditkit.seeds`); both are recorded.

**Following up the policy.** ``follow_up(context, options, findings, flagged_checks) -> findings`` is called
once the policy's checks are known (the checks that warn or fail), before the stability check; by default it
returns the findings unchanged (the fairness plugin attributes each flagged gap there).

**Rankings for the stability check.** ``rankings(findings, context) -> list[Ranking]`` says which of the
plugin's rankings of training records the stability check recomputes with other influence engines, and how
(:class:`Ranking`); none by default.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from ..errors import InputError
from ..influence import InfluenceEngine, fit_model
from ..influence.losses import resolve_loss
from ..influence.stationarity import stationarity
from ..seeds import Seeds

#: a retrained model counts as converged when its relative gradient norm (``stationarity``) is at most this, or
#: at most the audited model's own: a leave-one-out change is of order 1/n, so a refit must get much closer to its
#: minimum than the audit's own check asks of the audited model (``warm_start`` reaches 1e-8 and less when it
#: converges)
REFIT_TOLERANCE = 1e-5

#: ``train(model, X, y) -> model``: retrains a copy of the trained model (warm start) on X, y.
TrainFn = Callable[[nn.Module, np.ndarray, np.ndarray], nn.Module]


class PluginOptions(BaseModel):
    """Base of every plugin's options: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def probabilities(outputs: torch.Tensor, loss: str) -> torch.Tensor:
    """Class probabilities (n, C) from model outputs: softmax for ``cross_entropy``, sigmoid for ``bce``."""
    if loss == "cross_entropy":
        return torch.softmax(outputs, dim=-1)
    if loss == "bce":
        p = torch.sigmoid(outputs.reshape(outputs.shape[0]))
        return torch.stack([1 - p, p], dim=1)
    raise InputError(f"loss={loss!r} is not a classification loss: audits of classifiers need "
                     "loss='cross_entropy' or loss='bce'")


class RecordTokens:
    """Tokens for records: ``R-`` + 8 base-32 characters of ``blake2b(split:position, key=key)``.

    A token is derived from the record's split and position, never from its identifier, so it reveals
    nothing about the person; ``key`` (bytes, at most 64) is secret: 32 random bytes per run unless the data
    owner gives one. ``mapping()`` lists token → (split, record id) for the data owner only.
    """

    def __init__(self, key: bytes, ids: dict[str, np.ndarray]):
        if not isinstance(key, bytes) or not 1 <= len(key) <= 64:
            raise InputError("token key: give 1 to 64 bytes (the secret that keys the record tokens)")
        self._key = key
        self._ids = ids
        self._issued: dict[str, tuple[str, int]] = {}

    def __call__(self, split: str, position: int) -> str:
        digest = hashlib.blake2b(f"{split}:{int(position)}".encode(), key=self._key, digest_size=5).digest()
        token = "R-" + base64.b32encode(digest).decode()[:8]
        self._issued[token] = (split, int(position))
        return token

    def mapping(self) -> list[dict]:
        """Every token issued so far with its split and record id (private: never in a report)."""
        return [{"token": t, "split": s, "record_id": str(self._ids[s][p])}
                for t, (s, p) in sorted(self._issued.items())]


@dataclass
class InfluenceRequests:
    """What a plugin will ask of the influence engine: measurements {key: (measure, X, y)}, test records to
    explain {split: positions}, and self-influence of the training records (the set of ``leverage`` values)."""

    measures: dict = field(default_factory=dict)
    explain: dict = field(default_factory=dict)
    self_influence: set = field(default_factory=set)

    def merge(self, other: InfluenceRequests) -> InfluenceRequests:
        self.measures.update(other.measures)
        for split, positions in other.explain.items():
            joined = np.concatenate([self.explain.get(split, np.zeros(0, dtype=int)), np.asarray(positions, int)])
            self.explain[split] = np.unique(joined)
        self.self_influence |= set(other.self_influence)
        return self


class AuditContext:
    """Everything a plugin may read. ``splits`` maps "train" (and "test", "holdout") to AuditData;
    ``train_fn`` retrains a copy of the model (verification, reference models); ``checkpoints`` are state
    dicts saved during training (TracIn-style signals).

    Every retraining made through ``trained_on`` is recorded in ``refits``: its purpose, records, final gradient
    norm of the objective on its records (``auditkit.influence.stationarity``) and whether it converged (relative
    gradient norm at most ``REFIT_TOLERANCE`` or at most the audited model's own, ``relative``). Plugins may put
    one score per training record in ``record_scores`` (name → (n,) array): the private full ranking."""

    def __init__(self, model: nn.Module, engine: InfluenceEngine, splits: dict, *, loss: str = "cross_entropy",
                 l2: float = 0.0, train_fn: TrainFn | None = None, checkpoints: list[dict] | None = None,
                 seed: int = 0, relative: float = 0.0, token_key: bytes | None = None,
                 seeds: Seeds | None = None):
        if "train" not in splits:
            raise InputError(f"an audit needs a 'train' split, got {sorted(splits)}")
        self.model = model
        self.engine = engine
        self.splits = splits
        self.loss = loss
        self.l2 = l2
        self.train_fn = train_fn
        self.checkpoints = list(checkpoints) if checkpoints else []
        self.seed = seed
        self.seeds = seeds if seeds is not None else Seeds(seed)
        key = token_key if token_key is not None else secrets.token_bytes(32)
        self.tokens = RecordTokens(key, {name: data.ids for name, data in splits.items()})
        self._outputs: dict[str, torch.Tensor] = {}
        self._self_influence: dict[bool, np.ndarray] = {}
        self._measures: dict = {}
        self._explained: dict[str, dict[int, np.ndarray]] = {}
        self.passes = 0  # streamed passes over the training gradients made through this context
        self.relative = float(relative)
        self.refits: list[dict] = []
        self.record_scores: dict[str, np.ndarray] = {}

    @property
    def train(self):
        return self.splits["train"]

    @property
    def test(self):
        if "test" not in self.splits:
            raise InputError(f"this audit needs a test split (data.test, or data.split.test > 0), got "
                             f"{sorted(self.splits)}")
        return self.splits["test"]

    def use_engine(self, engine: InfluenceEngine) -> None:
        """Answer from now on with ``engine`` (e.g. refitted with damping); answers memoised so far are dropped."""
        self.engine = engine
        self._self_influence.clear()
        self._measures.clear()
        self._explained.clear()

    def seed_for(self, purpose: str, explicit: int | None = None) -> int:
        """The seed of a random choice: ``explicit`` when given (an option set by the user), else the seed derived
        from the run's seed for ``purpose`` (:func:`auditkit.seeds.derived_seed`); recorded in ``seeds.used``."""
        return self.seeds(purpose) if explicit is None else self.seeds.record(purpose, explicit)

    def token(self, split: str, position: int) -> str:
        """The random token of record ``position`` of ``split``."""
        return self.tokens(split, position)

    def tensor(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Features and labels of a split as tensors in the engine's dtype."""
        data = self.splits[split]
        return torch.tensor(data.X, dtype=self.engine.dtype), torch.tensor(data.y)

    def outputs(self, split: str, model: nn.Module | None = None) -> torch.Tensor:
        """Model outputs for a split (cached for the audited model)."""
        if model is None and split in self._outputs:
            return self._outputs[split]
        net = model if model is not None else self.model
        was_training = net.training
        net.eval()
        with torch.no_grad():
            out = net(self.tensor(split)[0])
        net.train(was_training)
        if model is None:
            self._outputs[split] = out
        return out

    def proba(self, split: str, model: nn.Module | None = None) -> np.ndarray:
        """Class probabilities (n, C) for a split."""
        return probabilities(self.outputs(split, model), self.loss).double().numpy()

    def losses(self, split: str, model: nn.Module | None = None) -> np.ndarray:
        """Per-record loss on the true label."""
        y = self.tensor(split)[1]
        if self.loss == "bce":
            y = y.to(self.engine.dtype)
        return resolve_loss(self.loss)(self.outputs(split, model), y).double().numpy()

    def self_influence(self, *, leverage: bool = False) -> np.ndarray:
        """Self-influence of every training record (``leverage``: with its own curvature removed from H),
        computed once and shared by the plugins."""
        if leverage not in self._self_influence:
            self._self_influence[leverage] = self.engine.self_influence(leverage=leverage)
            self.passes += 1
        return self._self_influence[leverage]

    def influence_on(self, key, measure, X, y=None) -> np.ndarray:
        """``engine.influence_on(measure, X, y)``, memoised under ``key`` (which must identify the measurement:
        the same key always stands for the same measure and records)."""
        if key not in self._measures:
            self._measures[key] = self.engine.influence_on(measure, X, y)
            self.passes += 1
        return self._measures[key]

    def influence(self, split: str, positions) -> np.ndarray:
        """``engine.influence`` of the records of ``split`` at ``positions`` on every training record's removal,
        (len(positions), n); rows already computed (by ``prefetch``) are reused."""
        positions = np.asarray(positions, dtype=int).reshape(-1)
        known = self._explained.setdefault(split, {})
        missing = np.array(sorted({int(i) for i in positions} - set(known)), dtype=int)
        if missing.size:
            X, y = self.tensor(split)
            for i, row in zip(missing, self.engine.influence(X[missing], y[missing]), strict=True):
                known[int(i)] = row
            self.passes += 1
        return np.stack([known[int(i)] for i in positions]) if positions.size else \
            np.zeros((0, self.train.n))

    def prefetch(self, requests: InfluenceRequests) -> None:
        """Answer every request not yet answered with ONE streamed pass over the training gradients
        (``engine.batch``); the plugins' later calls then read the results from memory."""
        measures = {k: v for k, v in requests.measures.items() if k not in self._measures}
        wanted = sorted(set(requests.self_influence) - set(self._self_influence))
        explain = {}
        for split, positions in requests.explain.items():
            known = self._explained.get(split, {})
            new = np.array(sorted({int(i) for i in np.asarray(positions, int).reshape(-1)} - set(known)), dtype=int)
            if new.size:
                explain[split] = new
        # the batch takes one test set: several splits would go in as one stacked tensor
        tests = [(split, pos, *self.tensor(split)) for split, pos in explain.items()]
        test = None
        if tests:
            test = (torch.cat([X[pos] for _, pos, X, _ in tests]), torch.cat([y[pos] for _, pos, _, y in tests]))
        if not (measures or test is not None or wanted):
            return
        leverage = wanted[-1] if wanted else False            # True first: the one the built-in plugins use
        batch = self.engine.batch(measures=measures, test=test, self_influence=bool(wanted), leverage=leverage)
        self.passes += batch.passes
        self._measures.update(batch.measures)
        if wanted:
            self._self_influence[leverage] = batch.self_influence
        row = 0
        for split, pos, _, _ in tests:
            known = self._explained.setdefault(split, {})
            for i in pos:
                known[int(i)] = batch.test[row]
                row += 1
        for other in wanted[:-1]:                              # both leverage settings asked: a second pass
            self.self_influence(leverage=other)

    def nonfinite_answers(self) -> int:
        """How many of the influence values answered so far (self-influence, measurements, explained test
        records) are NaN or ±inf: a sign that the engine's arithmetic overflowed (e.g. in float32)."""
        arrays = list(self._self_influence.values()) + list(self._measures.values())
        arrays += [row for rows in self._explained.values() for row in rows.values()]
        return int(sum(np.count_nonzero(~np.isfinite(np.asarray(a, dtype=np.float64))) for a in arrays))

    def trained_on(self, rows, *, seed: tuple[int, int] | None = None, purpose: str = "retraining") -> nn.Module:
        """``train_fn(deepcopy(model), X[rows], y[rows])`` on the training records ``rows`` (positions or a mask):
        the model it returns, or the copy it trained in place (None returned). With ``seed``, torch's generator
        is seeded from ``SeedSequence(seed)`` during the call and restored after. Recorded in ``refits`` under
        ``purpose`` with its final gradient norm."""
        if self.train_fn is None:
            raise InputError("no training function was given: pass train_fn to verify by retraining")
        net = copy.deepcopy(self.model)
        X, y = self.train.X[rows], self.train.y[rows]
        if seed is None:
            trained = self.train_fn(net, X, y)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(np.random.SeedSequence(list(seed)).generate_state(1)[0]))
                trained = self.train_fn(net, X, y)
        net = trained if trained is not None else net
        if not isinstance(net, nn.Module):
            raise InputError(f"train_fn returned {type(net).__name__}: it must return the trained model "
                             "(a torch.nn.Module) or None after training the copy it receives in place")
        self._record_refit(net, X, y, purpose)
        return net

    def _record_refit(self, net: nn.Module, X: np.ndarray, y: np.ndarray, purpose: str,
                      tolerance: float | None = None) -> None:
        """Add the retrained model's stationarity on its own records to ``refits``; converged when its relative
        gradient norm is at most ``tolerance`` (default: ``REFIT_TOLERANCE`` or the audited model's own)."""
        measured = stationarity(net, X, y, loss=self.loss, l2=self.l2, seed=self.seed_for("stationarity"),
                                dtype=self.engine.dtype)
        limit = max(REFIT_TOLERANCE, self.relative) if tolerance is None else tolerance
        self.refits.append({"purpose": purpose, "records": int(len(y)), "grad_norm": measured["grad_norm"],
                            "relative": measured["relative"], "converged": bool(measured["relative"] <= limit)})

    def refit_summary(self) -> dict:
        """The retrainings so far: how many, how many did not converge, the largest relative gradient norm, and
        per purpose the counts."""
        purposes = {}
        for r in self.refits:
            entry = purposes.setdefault(r["purpose"], {"count": 0, "not_converged": 0})
            entry["count"] += 1
            entry["not_converged"] += int(not r["converged"])
        return {"count": len(self.refits), "not_converged": sum(not r["converged"] for r in self.refits),
                "tolerance": max(REFIT_TOLERANCE, self.relative),
                "largest_relative": max((r["relative"] for r in self.refits), default=None),
                "largest_grad_norm": max((r["grad_norm"] for r in self.refits), default=None),
                "by_purpose": purposes}

    def retrain_without(self, remove, *, purpose: str = "leave-out retraining") -> nn.Module:
        """The model retrained without training records at positions ``remove`` (needs ``train_fn``)."""
        keep = np.ones(self.train.n, dtype=bool)
        keep[np.asarray(remove, dtype=int)] = False
        return self.trained_on(keep, purpose=purpose)

    @cached_property
    def favourable(self) -> int:
        """Index of the favourable class."""
        return int(self.train.favourable_index)


class BuiltTrainer:
    """A training function together with the model's builder: ``build()`` returns a fresh, untrained model (the
    builder's own initialisation under torch's current seed), which reference models start from (cold start).
    Calls and other attributes (``tol``, ``with_tolerance``) go to the training function."""

    def __init__(self, train: TrainFn, build: Callable[[], nn.Module]):
        self.train, self.build = train, build

    def __call__(self, model: nn.Module, X: np.ndarray, y: np.ndarray):
        return self.train(model, X, y)

    def __getattr__(self, name: str):
        if name in ("train", "build"):
            raise AttributeError(name)
        return getattr(self.train, name)


class WarmStartTrainer:
    """``fit_model`` from the parameters of the model it is given, on the records it is given, to ``‖∇R‖∞ ≤ tol``
    (at most 500 L-BFGS iterations); a class so that it can be sent to worker processes (pickled)."""

    def __init__(self, *, loss: str = "cross_entropy", l2=0.0, tol: float = 1e-9):
        self.loss, self.l2, self.tol = loss, l2, tol

    def __call__(self, model: nn.Module, X: np.ndarray, y: np.ndarray) -> nn.Module:
        dtype = next(model.parameters()).dtype
        target = torch.as_tensor(y, dtype=dtype) if self.loss == "bce" else torch.as_tensor(y)
        fit_model(model, torch.as_tensor(X, dtype=dtype), target, loss=self.loss, l2=self.l2, tol=self.tol,
                  max_iter=500)
        return model

    def with_tolerance(self, tol: float) -> WarmStartTrainer:
        """The same trainer stopping at another tolerance (the reference models' early stopping)."""
        return WarmStartTrainer(loss=self.loss, l2=self.l2, tol=tol)


def warm_start_trainer(*, loss: str = "cross_entropy", l2: float = 0.0, tol: float = 1e-9) -> TrainFn:
    """A training function for the objective of the influence contract: ``fit_model`` from the trained
    parameters (warm start) on the records it is given."""
    return WarmStartTrainer(loss=loss, l2=l2, tol=tol)


@dataclass
class Ranking:
    """One ranking of the training records that the stability check recomputes with other influence engines.

    ``finding`` names it in plain words, ``kind`` is a short identifier; ``k`` how many top records are compared
    (None: the check's ``top_k``); ``retraining``: the plugin's own evidence from actual retraining, carried along
    (None: none). What to ask of each engine: ``measure`` = ``(key, measure, X, y)``, the influence of every
    training record on a measurement (``engine.influence_on``; ``key`` identifies it), and/or ``self_influence``
    (``engine.self_influence(leverage=True)``). ``scores(measured, self_influence)`` turns the answers (None for
    what was not asked) into one score per training record; the lowest scores rank first."""

    finding: str
    kind: str
    scores: Callable[[np.ndarray | None, np.ndarray | None], np.ndarray]
    measure: tuple | None = None
    self_influence: bool = False
    k: int | None = None
    retraining: dict | None = None


class AuditPlugin(ABC):
    """An audit: ``name``, ``Options`` and ``run``. Registered under the ``auditkit.audits`` entry points."""

    name: ClassVar[str]
    Options: ClassVar[type[PluginOptions]] = PluginOptions
    #: the pydantic model of the findings' ``to_dict()`` (validated into the run document); None: a free-form
    #: JSON-safe dict, kept under the run document's ``plugins`` section
    findings_model: ClassVar[type[BaseModel] | None] = None

    def plan(self, context: AuditContext, options: Any) -> InfluenceRequests:
        """The influence questions ``run`` will ask (answered up front in one pass by ``prefetch``); none by
        default. Must not compute influence itself."""
        return InfluenceRequests()

    @abstractmethod
    def run(self, context: AuditContext, options: Any) -> Any:
        """Compute the findings (an object with ``to_dict()``); never render, never read the policy."""

    def follow_up(self, context: AuditContext, options: Any, findings: dict, flagged_checks: list[dict]) -> dict:
        """The findings completed once the policy is known: ``findings`` (this plugin's JSON-safe dict) and the
        policy checks that warn or fail (``flagged_checks``, as the run document holds them: rule, metric,
        attribute, group, groups compared, status ...), e.g. to explain what the policy flagged. Called after
        every plugin has run and before the stability check (which then sees the rankings it adds). Returns the
        findings (a new dict); unchanged by default. Must not depend on the policy for anything a check
        reads: the checks are evaluated again on the findings it returns."""
        return findings

    def rankings(self, findings: dict, context: AuditContext) -> list[Ranking]:
        """The rankings of training records in ``findings`` (the JSON-safe dict of this plugin's findings) that
        the stability check should recompute with other engines; none by default."""
        return []
