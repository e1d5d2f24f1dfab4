"""The fairness audit: group metrics and disparities on the test set, the training records that drive
each disparity (influence), optional verification by retraining, and explanations of chosen predictions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from ...errors import InputError
from ..base import AuditContext, AuditPlugin, InfluenceRequests, PluginOptions, Ranking
from ..explain import explain
from .attribution import DEFAULT_SURROGATES, Attribution, attribute_gap, gap_key, gap_measure, gap_request
from .disparities import disparities
from .findings import FairnessFindings as FindingsModel
from .flagged import flagged_gaps
from .metrics import SEPARATOR, group_metrics, record_groups
from .performance import Performance, performance


class AttributionOptions(PluginOptions):
    """Which surrogate gaps to attribute on the plugin's own choice of groups, how many drivers to list, where to
    evaluate removal (the drivers of the gaps a policy flags use the same ``n_drivers``, ``top_k``, ``verify_k``)."""

    surrogates: list[Literal["selection_rate", "equal_opportunity", "false_positive", "mean_loss"]] = list(
        DEFAULT_SURROGATES)
    n_drivers: int = Field(10, ge=1)
    top_k: list[int] = [5, 10, 20]
    verify_k: list[int] = [10]


class ExplainOptions(PluginOptions):
    """Test records to explain (by record id), else the misclassified records of the worst-off group. Ids that
    YAML reads as integers (``records: [10234, 10235]``) are the ids written so."""

    records: list[str] | None = None
    max_records: int = Field(5, ge=0)
    top: int = Field(5, ge=1)

    @field_validator("records", mode="before")
    @classmethod
    def _integer_ids(cls, value):
        if isinstance(value, list):
            return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        return value


class FairnessOptions(PluginOptions):
    """Options of the fairness audit (the ``fairness:`` block of audit.yaml)."""

    attributes: list[str] | None = None
    intersections: list[list[str]] = []
    reference: dict[str, str] = {}
    min_group_size: int = Field(30, ge=1)
    bootstrap: int = Field(1000, ge=0, le=100_000)
    confidence: float = Field(0.95, gt=0, lt=1)
    seed: int | None = Field(None, ge=0, le=2**64 - 1, description="seed of the bootstrap (unset: derived from "
                             "the run's seed)")
    attribution: AttributionOptions = AttributionOptions()
    explain: ExplainOptions = ExplainOptions()


@dataclass
class FairnessFindings:
    """What the fairness audit found; ``to_dict()`` is JSON-safe and holds tokens, never record ids."""

    favourable: str
    tables: list
    disparities: dict[str, list]
    attributions: list[Attribution]
    explanations: list[dict]
    verified: bool
    notes: list[str] = field(default_factory=list)
    performance: Performance | None = None

    def to_dict(self) -> dict:
        return {"favourable": self.favourable,
                "groups": [t.to_dict() for t in self.tables],
                "disparities": {a: [d.to_dict() for d in ds] for a, ds in self.disparities.items()},
                "attributions": [a.to_dict() for a in self.attributions],
                "explanations": self.explanations,
                "verified": self.verified,
                "notes": self.notes,
                "performance": self.performance.to_dict() if self.performance is not None else None,
                "flagged_gaps": []}


class FairnessAudit(AuditPlugin):
    """Subgroup metrics and disparities with intervals, and the training records that drive them."""

    name = "fairness"
    Options = FairnessOptions
    findings_model = FindingsModel

    @staticmethod
    def _tables(context: AuditContext, options: FairnessOptions):
        """The test set's arrays and its group tables (no influence, no bootstrap)."""
        test = context.test
        attributes = options.attributes if options.attributes is not None else list(test.groups.columns)
        for attr in attributes + [a for combo in options.intersections for a in combo]:
            if attr not in test.groups.columns:
                raise InputError(f"fairness: sensitive attribute {attr!r} is not in the data: available "
                                 f"attributes are {list(test.groups.columns)}")
        if not attributes:
            raise InputError("fairness: no sensitive attributes: name them in the data's 'sensitive' columns")
        fav = context.favourable
        proba = context.proba("test")
        arrays = {"y_true": test.y == fav, "y_pred": proba.argmax(axis=1) == fav,
                  "scores": proba[:, fav], "losses": context.losses("test")}
        tables = group_metrics(arrays["y_true"], arrays["y_pred"], scores=arrays["scores"],
                               losses=arrays["losses"], groups=test.groups, attributes=attributes,
                               intersections=options.intersections, min_group_size=options.min_group_size)
        return arrays, tables

    def plan(self, context: AuditContext, options: FairnessOptions) -> InfluenceRequests:
        """Every attributed gap's measurement and the test records to explain."""
        arrays, tables = self._tables(context, options)
        X, y = context.tensor("test")
        requests = InfluenceRequests()
        for table in tables:
            for kind in options.attribution.surrogates:
                request = gap_request(context, table, kind, reference=options.reference.get(table.attribute))
                if request is not None:
                    requests.measures[request[0]] = (request[1], X, y)
        positions = self._to_explain(context, options, tables, arrays)
        if positions.size:
            requests.explain["test"] = positions
        return requests

    def follow_up(self, context: AuditContext, options: FairnessOptions, findings: dict,
                  flagged_checks: list[dict]) -> dict:
        """``findings`` with ``flagged_gaps``: the drivers of the gap of every fairness check in ``flagged_checks``
        that compares two groups, for exactly those groups (:mod:`auditkit.audits.fairness.flagged`)."""
        att = options.attribution
        gaps = flagged_gaps(context, findings, flagged_checks, n_drivers=att.n_drivers, top_k=att.top_k,
                            verify_k=att.verify_k)
        return {**findings, "flagged_gaps": gaps,
                "verified": bool(findings.get("verified")) or any(g.get("actual_gap_after") for g in gaps)}

    @staticmethod
    def _ranked_gaps(findings: dict) -> list[dict]:
        """The gaps whose drivers the stability check recomputes: the distinct flagged gaps with drivers when a
        policy flagged any, else the plugin's own attributions; each as ``attribute, surrogate, disadvantaged,
        advantaged`` and the retraining evidence ``(k, predicted, actual)`` or None."""
        seen, out = set(), []
        for g in findings.get("flagged_gaps") or []:
            key = (g["attribute"], g.get("surrogate"), g["disadvantaged"], g["advantaged"])
            if g.get("drivers") and key not in seen:
                seen.add(key)
                actual = {int(k): v for k, v in (g.get("actual_gap_after") or {}).items() if v is not None}
                predicted = {int(k): v for k, v in (g.get("predicted_gap_after") or {}).items()}
                k = min(actual) if actual else None
                out.append({"attribute": key[0], "surrogate": key[1], "disadvantaged": key[2], "advantaged": key[3],
                            "evidence": (k, predicted.get(k), actual[k]) if k is not None else None})
        if out:
            return out
        for att in findings.get("attributions", []):
            verified = [v for v in att.get("verification", []) if v.get("actual_gap") is not None]
            out.append({**{k: att[k] for k in ("attribute", "surrogate", "disadvantaged", "advantaged")},
                        "evidence": (verified[0]["k"], verified[0]["predicted_gap"], verified[0]["actual_gap"])
                        if verified else None})
        return out

    def rankings(self, findings: dict, context: AuditContext) -> list[Ranking]:
        """The drivers of every gap the report explains (the records whose removal would narrow it most): the
        gaps a policy check flagged when there are any, else the plugin's own attributions; the influence on the
        gap's differentiable surrogate, lowest first, with the verification by retraining if any."""
        out = []
        X, y = context.tensor("test")
        for att in self._ranked_gaps(findings):
            labels = record_groups(context.test.groups, att["attribute"].split(SEPARATOR))
            measure = gap_measure(att["surrogate"], labels == att["disadvantaged"], labels == att["advantaged"],
                                  loss=context.loss, favourable=context.favourable)
            key = gap_key(att["attribute"], att["surrogate"], att["disadvantaged"], att["advantaged"])
            k, predicted, actual = att["evidence"] or (None, None, None)
            evidence = {"predicted_gap": predicted, "actual_gap": actual, "k": k} if k is not None else None
            name = (f"drivers of the {att['surrogate'].replace('_', ' ')} gap between {att['disadvantaged']} and "
                    f"{att['advantaged']} ({att['attribute']})")
            out.append(Ranking(name, "fairness_drivers", lambda measured, _: measured, measure=(key, measure, X, y),
                               retraining=evidence))
        return out

    def run(self, context: AuditContext, options: FairnessOptions) -> FairnessFindings:
        test = context.test
        arrays, tables = self._tables(context, options)
        found = {t.attribute: disparities(t, data=arrays, groups=record_groups(test.groups, t.columns),
                                          reference=options.reference.get(t.attribute),
                                          n_boot=options.bootstrap, confidence=options.confidence,
                                          seed=context.seed_for("bootstrap", options.seed))
                 for t in tables}
        notes: list[str] = []
        attributions = []
        att = options.attribution
        for table in tables:
            for kind in att.surrogates:
                result = attribute_gap(context, table, kind, reference=options.reference.get(table.attribute),
                                       n_drivers=att.n_drivers, top_k=att.top_k, verify_k=att.verify_k)
                if result is None:
                    notes.append(f"{table.attribute}: no {kind} attribution (fewer than two groups with at least "
                                 f"{options.min_group_size} records and a defined value)")
                else:
                    attributions.append(result)
        verified = any(a.verified for a in attributions)
        if context.train_fn is None:
            notes.append("Predicted effects of removing records were not verified by retraining: no training "
                         "function was given.")
        explanations = explain(context, "test", self._to_explain(context, options, tables, arrays),
                               top=options.explain.top)
        perf = performance(arrays["y_true"], arrays["y_pred"], arrays["scores"], groups=test.groups, tables=tables,
                           min_n=options.min_group_size, confidence=options.confidence, n_boot=options.bootstrap,
                           seed=context.seed_for("bootstrap", options.seed),
                           n_classes=context.proba("test").shape[1])
        return FairnessFindings(str(context.train.classes[context.favourable]), tables, found, attributions,
                                explanations, verified, notes, perf)

    @staticmethod
    def _to_explain(context: AuditContext, options: FairnessOptions, tables, arrays) -> np.ndarray:
        """Positions of the test records to explain: the chosen ids, else misclassified records of the
        group with the lowest accuracy (among groups with enough records)."""
        test = context.test
        chosen = options.explain.records
        if chosen is not None:
            index = {str(i): k for k, i in enumerate(test.ids)}
            missing = [r for r in chosen if str(r) not in index]
            if missing:
                raise InputError(f"fairness.explain.records: {len(missing)} record id(s) are not in the test "
                                 "split: give ids from its id column")
            return np.array([index[str(r)] for r in chosen], dtype=int)
        wrong = arrays["y_true"] != arrays["y_pred"]
        rows = [(r.metrics.get("accuracy", np.nan), t.attribute, tuple(t.columns), r.group)
                for t in tables for r in t.groups
                if r.sufficient and not r.unknown and np.isfinite(r.metrics.get("accuracy", np.nan))]
        if rows:
            _, _, columns, group = min(rows)
            wrong = wrong & (record_groups(test.groups, columns) == group)
        return np.flatnonzero(wrong)[: options.explain.max_records]
