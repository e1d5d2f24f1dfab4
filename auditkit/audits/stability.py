"""How far the key findings of an audit survive other reasonable influence settings.

The seed's limitations (hyperparameter sensitivity, non-convex models) are measured on the audited model:
the same rankings are recomputed with other engines (the ridge of H scaled by ten either way, a second
solver) and compared with the audit's own. For each finding's top-k records under the audit's engine
(``T``) and under another setting (``T'``)::

    agreement = |T ∩ T'| / k        (1: the same records; 0: none in common)

A finding is **robust** when its agreement is at least ``robust_agreement`` under every setting that could
be computed, else **sensitive**. A setting that fails (e.g. less ridge leaves a Hessian that is not
positive definite: the model is not at a minimum of that objective) says something about the model, not
about the finding: it is listed under ``failures`` and in the report, and does not decide the verdict; a
finding with no setting computed is sensitive. Where the plugins retrained the model, their agreement with
actual retraining is carried along.

Findings compared: the drivers of every attributed fairness gap (the k records whose removal would
narrow it most), the k members of highest self-influence (privacy), and the k most suspicious records of
the data-quality ranking when it is estimated from influence (not when it is measured by out-of-fold
losses, with a training function: no engine setting changes that ranking). Each other engine answers all
of them in one pass over the training gradients (``engine.batch``); the audit's own engine answers from the
context's memo.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .base import AuditContext
from .fairness.attribution import gap_key, gap_measure
from .fairness.metrics import SEPARATOR, record_groups
from .quality import suspicion_order


def _top(values: np.ndarray, k: int) -> set[int]:
    """Positions of the k smallest values (ties broken by position)."""
    return set(np.argsort(values, kind="stable")[:k].tolist())


def _gap(context: AuditContext, attribution: dict) -> tuple:
    """(key, measure, X, y) of an attributed gap, as the fairness audit built it."""
    columns = attribution["attribute"].split(SEPARATOR)
    labels = record_groups(context.test.groups, columns)
    measure = gap_measure(attribution["surrogate"], labels == attribution["disadvantaged"],
                          labels == attribution["advantaged"], loss=context.loss, favourable=context.favourable)
    key = gap_key(attribution["attribute"], attribution["surrogate"], attribution["disadvantaged"],
                  attribution["advantaged"])
    return (key, measure, *context.tensor("test"))


class _Answers:
    """The influence one engine gives for the findings compared: the audit's engine answers from the
    context's memo (already computed by the plugins); another engine answers all of them in ONE pass."""

    def __init__(self, context: AuditContext, engine, gaps: list[tuple], self_influence: bool):
        self.context, self.engine = context, engine
        if engine is not context.engine:
            batch = engine.batch(measures={key: spec for key, *spec in gaps}, self_influence=self_influence,
                                 leverage=True)
            self._gaps, self._self = batch.measures, batch.self_influence

    def gap(self, key, measure, X, y) -> np.ndarray:
        if self.engine is self.context.engine:
            return self.context.influence_on(key, measure, X, y)
        return self._gaps[key]

    def self_influence(self) -> np.ndarray:
        if self.engine is self.context.engine:
            return self.context.self_influence(leverage=True)
        return self._self


def _rankers(context: AuditContext, findings: Mapping[str, dict | None]):
    """The gaps and whether self-influence is needed, and (finding, kind, retraining evidence, answers →
    scores where lower ranks first) for every key finding."""
    out, gaps = [], []
    fairness = findings.get("fairness") or {}
    for att in fairness.get("attributions", []):
        verified = [v for v in att.get("verification", []) if v.get("actual_gap") is not None]
        evidence = ({"predicted_gap": verified[0]["predicted_gap"], "actual_gap": verified[0]["actual_gap"],
                     "k": verified[0]["k"]} if verified else None)
        name = (f"drivers of the {att['surrogate'].replace('_', ' ')} gap between {att['disadvantaged']} and "
                f"{att['advantaged']} ({att['attribute']})")
        gaps.append(_gap(context, att))
        out.append((name, "fairness_drivers", evidence, lambda ans, g=gaps[-1]: ans.gap(*g)))
    if findings.get("privacy") is not None:
        trust = findings["privacy"].get("trust") or {}
        evidence = ({"spearman": trust.get("spearman"), "median_ratio": trust.get("median_ratio_actual_to_predicted")}
                    if trust.get("checked") else None)
        out.append(("training records of highest self-influence (privacy risk)", "privacy_top", evidence,
                    lambda ans: -ans.self_influence()))
    # with a training function the data-quality ranking is measured (out-of-fold losses), not computed from
    # influence: no other engine can change it, so it is not among the findings checked here
    if findings.get("data_quality") is not None and not findings["data_quality"].get("out_of_fold"):
        loss = context.losses("train")

        def quality_rank(ans) -> np.ndarray:
            order = suspicion_order(loss, ans.self_influence())
            rank = np.empty(order.size)
            rank[order] = np.arange(order.size)
            return rank

        out.append(("most suspicious training records (data quality)", "quality_top", None, quality_rank))
    needs_self = findings.get("privacy") is not None or findings.get("data_quality") is not None
    return gaps, needs_self, out


def stability(context: AuditContext, findings: Mapping[str, dict | None], engines: Mapping[str, object], *,
              k: int = 10, robust_agreement: float = 0.7) -> list[dict]:
    """Agreement of each key finding's top-k records between the audit's engine and each of ``engines``.

    ``engines`` maps a label ("ridge ×0.1", "solver cg") to a fitted engine, or to the exception raised when
    fitting it (then that setting counts as a failure and its message is kept).
    """
    results = []
    gaps, needs_self, rankers = _rankers(context, findings)
    if not rankers:
        return results
    answers = {label: engine if isinstance(engine, Exception) else _Answers(context, engine, gaps, needs_self)
               for label, engine in engines.items()}
    own = _Answers(context, context.engine, gaps, needs_self)
    for name, kind, evidence, scores in rankers:
        base = scores(own)
        kk = min(k, base.size)
        reference = _top(base, kk)
        agreement, failures = {}, {}
        for label, engine in answers.items():
            if isinstance(engine, Exception):
                failures[label] = str(engine).split(":")[0]
                agreement[label] = None
                continue
            agreement[label] = len(reference & _top(scores(engine), kk)) / kk
        measured = [a for a in agreement.values() if a is not None]
        robust = bool(measured) and all(a >= robust_agreement for a in measured)
        results.append({"finding": name, "kind": kind, "k": kk, "agreement": agreement, "failures": failures,
                        "retraining": evidence, "verdict": "robust" if robust else "sensitive"})
    return results
