"""How far the key findings of an audit survive other reasonable influence settings.

The seed's limitations (hyperparameter sensitivity, non-convex models) are measured on the audited model:
the rankings the plugins declare (:meth:`AuditPlugin.rankings <auditkit.audits.base.AuditPlugin.rankings>`,
each a :class:`~auditkit.audits.base.Ranking`) are recomputed with other engines (the ridge of H scaled by ten
either way, a second solver) and compared with the audit's own. For each ranking's top-k records under the
audit's engine (``T``) and under another setting (``T'``)::

    agreement = |T ∩ T'| / k        (1: the same records; 0: none in common)

A finding is **robust** when its agreement is at least ``robust_agreement`` under every setting that could
be computed, else **sensitive**. A setting that fails (e.g. less ridge leaves a Hessian that is not
positive definite: the model is not at a minimum of that objective) says something about the model, not
about the finding: it is listed under ``failures`` and in the report, and does not decide the verdict; a
finding with no setting computed is sensitive. Where the plugins retrained the model, their agreement with
actual retraining is carried along.

Each other engine answers every ranking's questions in one pass over the training gradients
(``engine.batch``); the audit's own engine answers from the context's memo. Nothing here knows a plugin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .base import AuditContext, Ranking


def _top(values: np.ndarray, k: int) -> set[int]:
    """Positions of the k smallest values (ties broken by position)."""
    return set(np.argsort(values, kind="stable")[:k].tolist())


class _Answers:
    """The influence one engine gives for the rankings compared: the audit's engine answers from the
    context's memo (already computed by the plugins); another engine answers all of them in ONE pass."""

    def __init__(self, context: AuditContext, engine, rankings: Sequence[Ranking]):
        self.context, self.engine = context, engine
        measures = {r.measure[0]: tuple(r.measure[1:]) for r in rankings if r.measure is not None}
        needs_self = any(r.self_influence for r in rankings)
        if engine is not context.engine:
            batch = engine.batch(measures=measures, self_influence=needs_self, leverage=True)
            self._measures, self._self = batch.measures, batch.self_influence

    def scores(self, ranking: Ranking) -> np.ndarray:
        own = self.engine is self.context.engine
        measured = None
        if ranking.measure is not None:
            measured = self.context.influence_on(*ranking.measure) if own else self._measures[ranking.measure[0]]
        influence = None
        if ranking.self_influence:
            influence = self.context.self_influence(leverage=True) if own else self._self
        return np.asarray(ranking.scores(measured, influence), dtype=float)


def stability(context: AuditContext, rankings: Sequence[tuple[str, Ranking]], engines: Mapping[str, object], *,
              k: int = 10, robust_agreement: float = 0.7) -> list[dict]:
    """Agreement of each ranking's top-k records between the audit's engine and each of ``engines``.

    ``rankings``: ``(plugin name, Ranking)`` pairs, in the order the findings are listed. ``engines`` maps a
    label ("ridge ×0.1", "solver cg") to a fitted engine, or to the exception raised when fitting it (then that
    setting counts as a failure and its message is kept).
    """
    if not rankings:
        return []
    asked = [r for _, r in rankings]
    answers = {label: engine if isinstance(engine, Exception) else _Answers(context, engine, asked)
               for label, engine in engines.items()}
    own = _Answers(context, context.engine, asked)
    results = []
    for plugin, ranking in rankings:
        base = own.scores(ranking)
        kk = min(ranking.k or k, base.size)
        reference = _top(base, kk)
        agreement, failures = {}, {}
        for label, engine in answers.items():
            if isinstance(engine, Exception):
                failures[label] = str(engine).split(":")[0]
                agreement[label] = None
                continue
            agreement[label] = len(reference & _top(engine.scores(ranking), kk)) / kk
        measured = [a for a in agreement.values() if a is not None]
        robust = bool(measured) and all(a >= robust_agreement for a in measured)
        results.append({"finding": ranking.finding, "kind": ranking.kind, "plugin": plugin, "k": kk,
                        "agreement": agreement, "failures": failures, "retraining": ranking.retraining,
                        "verdict": "robust" if robust else "sensitive"})
    return results
