"""Read-only views of an audit's findings, each table with ``to_frame()`` (a pandas DataFrame)::

    run = ak.audit("examples/heart_disease/audit.yaml", out="heart-report")
    run.status                          # "pass" | "pass_with_warnings" | "fail" | "incomplete"
    run.fairness.metrics.to_frame()     # one row per attribute, group and metric
    run.fairness.disparities.to_frame() # one row per attribute, metric and comparison
    run.fairness.drivers.to_frame()     # one row per driver record per disparity surrogate
    run.privacy.risk.to_frame()         # one row per ranked training record in the run document
    run.data_quality.to_frame()         # one row per suspect record

The views read the run document (``AuditRun.run``, the :class:`~auditkit.rundoc.RunDocument` written to
``run.json``) and copy nothing:
a section of the run that was not audited (no ``privacy`` under ``audits`` in audit.yaml, say) is
``None`` on the run (``run.privacy is None``). Records appear as their tokens (``R-...``), never as record
ids; a value the run document holds as ``null`` (undefined, e.g. a TPR without positives) is NaN.

Sensitive attributes of a record become one column each, ``group_<attribute>`` (e.g. ``group_sex``), in
the order of the run's sensitive attributes (intersections such as ``"sex & age_band"`` are not record
columns: they are the attributes' columns together).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from .audits.fairness.findings import FairnessFindings
from .audits.privacy.findings import PrivacyFindings
from .audits.quality_findings import DataQualityFindings
from .audits.typed import Groups
from .rundoc import RunDocument, load_run

GROUP_PREFIX = "group_"


def _number(value) -> float:
    """A number of the run document as a float; ``None`` (undefined) → NaN."""
    return math.nan if value is None else float(value)


def _interval(pair) -> tuple[float, float]:
    """``[low, high]`` of the run document as two floats; absent or ``None`` ends → NaN."""
    low, high = pair if pair else (None, None)
    return _number(low), _number(high)


def _section(findings, model):
    """A findings section as its typed model (a dict, e.g. a section of a loaded run.json, is validated)."""
    return findings if isinstance(findings, model) else model.model_validate(findings)


class FindingsTable:
    """A table of findings over one section of the run document: ``rows()`` (plain dicts, computed on
    each call from the document), ``to_frame()`` (those rows as a DataFrame with the columns ``COLUMNS``, then
    ``group_<attribute>`` columns where the table has record groups) and ``len()``."""

    COLUMNS: tuple[str, ...] = ()
    #: whether rows carry the sensitive groups of a record (``group_<attribute>`` columns)
    RECORD_GROUPS = False

    #: the typed model of the findings section the table reads
    MODEL: type = FairnessFindings

    def __init__(self, findings, attributes: Sequence[str] = ()):
        self._findings = _section(findings, self.MODEL)
        self._attributes = list(attributes)

    def rows(self) -> list[dict]:
        """The table's rows, one dict each (keys: the frame's columns)."""
        raise NotImplementedError

    def columns(self) -> list[str]:
        """The frame's columns: ``COLUMNS``, then one ``group_<attribute>`` per sensitive attribute."""
        groups = [GROUP_PREFIX + a for a in self._attributes] if self.RECORD_GROUPS else []
        return list(self.COLUMNS) + groups

    def to_frame(self) -> pd.DataFrame:
        """The rows as a DataFrame (a new one on each call; editing it does not touch the run)."""
        return pd.DataFrame(self.rows(), columns=self.columns())

    def __len__(self) -> int:
        return len(self.rows())

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {len(self)} rows; .to_frame() for the table>"

    def _record(self, groups: Groups) -> dict:
        """``group_<attribute>`` → the record's group (``groups``: the record's groups), for every sensitive
        attribute of the run; None where the record has no value for it."""
        return {GROUP_PREFIX + a: groups[a] if a in groups else None for a in self._attributes}


class GroupMetrics(FindingsTable):
    """Performance metrics of every group of every sensitive attribute and intersection (test split).

    Columns: ``attribute`` (``"sex"`` or an intersection ``"sex & age_band"``), ``group``, ``metric``
    (accuracy, selection_rate, tpr, fpr, fnr, precision, mean_loss, auc), ``value``, ``ci_low`` / ``ci_high``
    (the 95% Wilson score interval of a rate; NaN for mean_loss and auc, which have none), ``n`` (records of
    the group in the test split), ``denominator`` (the metric's own denominator: positives for a TPR, negatives
    for an FPR ...; None in runs that do not record it), ``withheld`` (the denominator is below the audit's
    ``min_group_size``: the value is not reported, NaN here), ``suppressed`` (the group has fewer records than
    the audit's ``min_group_size``: the report does not show its values and disparities leave it out),
    ``unknown`` (the group of records without a value for the attribute).
    """

    COLUMNS = ("attribute", "group", "metric", "value", "ci_low", "ci_high", "n", "denominator", "withheld",
               "suppressed", "unknown")

    def rows(self) -> list[dict]:
        out = []
        for table in self._findings.groups:
            for g in table.groups:
                values = {**g.metrics, **{m: None for m in g.insufficient}}
                for metric, value in values.items():
                    if metric == "count":               # the group's size: the column n
                        continue
                    low, high = _interval(g.intervals[metric] if metric in g.intervals else None)
                    out.append({"attribute": table.attribute, "group": g.group, "metric": metric,
                                "value": _number(value), "ci_low": low, "ci_high": high, "n": g.count,
                                "denominator": g.denominators.get(metric), "withheld": metric in g.insufficient,
                                "suppressed": not g.sufficient, "unknown": g.unknown})
        return out


class PerformanceTable(FindingsTable):
    """Performance and calibration on the test split (``fairness.performance``): one row for all records
    (``attribute`` None, ``group`` "all"), then one per group of every attribute and intersection.

    Columns: counts (``n``, ``positives``, ``negatives``, ``tp``, ``fp``, ``tn``, ``fn``), ``prevalence``,
    ``accuracy``, ``auroc`` and ``ece`` (expected calibration error) each with ``<name>_ci_low`` /
    ``<name>_ci_high``, ``withheld`` (the statistics whose own denominator is below the minimum n, comma
    separated; NaN values in the frame) and ``suppressed`` (a row the suppression step emptied: only its name
    is left). Empty when the run has no performance part (runs made before it existed).
    """

    STATS = ("prevalence", "accuracy", "auroc", "ece")
    COLUMNS = ("attribute", "group", "n", "positives", "negatives", "tp", "fp", "tn", "fn",
               *(f"{s}{suffix}" for s in STATS for suffix in ("", "_ci_low", "_ci_high")), "withheld", "suppressed")

    def rows(self) -> list[dict]:
        perf = self._findings.performance
        if perf is None:
            return []
        rows = [(None, perf.overall)] + [(g.attribute, r) for g in perf.groups for r in g.rows]
        return [self._row(attribute, r) for attribute, r in rows]

    def _row(self, attribute: str | None, r) -> dict:
        out = {"attribute": attribute, "group": r.group, "withheld": ", ".join(r.insufficient),
               "suppressed": r.suppressed}
        out.update({k: getattr(r, k) for k in ("n", "positives", "negatives", "tp", "fp", "tn", "fn")})
        for stat in self.STATS:
            out[stat] = _number(getattr(r, stat))
            out[f"{stat}_ci_low"], out[f"{stat}_ci_high"] = _interval(getattr(r, f"{stat}_ci"))
        return out


class FlaggedGaps(FindingsTable):
    """The gaps the policy flagged and what removing their drivers does (``fairness.flagged_gaps``): one row per
    flagged check and k (the number of top drivers removed).

    Columns: ``rule``, ``check_status``, ``metric``, ``attribute``, ``disadvantaged``, ``advantaged``,
    ``surrogate``, ``gap`` with ``gap_ci_low`` / ``gap_ci_high`` (the checked metric's gap on decisions),
    ``surrogate_gap`` (on predicted probabilities), ``k``, ``predicted_gap_after`` (influence estimate),
    ``actual_gap_after`` and ``actual_metric_gap_after`` (after retraining without them; NaN where the model was
    not retrained), ``note``. A gap without drivers has one row with ``k`` NaN. Values of gaps between
    suppressed groups are withheld (NaN).
    """

    COLUMNS = ("rule", "check_status", "metric", "attribute", "disadvantaged", "advantaged", "surrogate", "gap",
               "gap_ci_low", "gap_ci_high", "surrogate_gap", "k", "predicted_gap_after", "actual_gap_after",
               "actual_metric_gap_after", "note")

    def rows(self) -> list[dict]:
        out = []
        for g in self._findings.flagged_gaps:
            low, high = _interval(g.gap_ci)
            base = {"rule": g.rule, "check_status": g.check_status, "metric": g.metric, "attribute": g.attribute,
                    "disadvantaged": g.disadvantaged, "advantaged": g.advantaged, "surrogate": g.surrogate,
                    "gap": _number(g.gap), "gap_ci_low": low, "gap_ci_high": high,
                    "surrogate_gap": _number(g.surrogate_gap), "note": g.note}
            actual, metric = g.actual_gap_after or {}, g.actual_metric_gap_after or {}
            ks = sorted(g.predicted_gap_after) or [None]
            out += [{**base, "k": math.nan if k is None else k,
                     "predicted_gap_after": _number(g.predicted_gap_after.get(k)),
                     "actual_gap_after": _number(actual.get(k)),
                     "actual_metric_gap_after": _number(metric.get(k))} for k in ks]
        return out


class Disparities(FindingsTable):
    """Disparities of each metric between the groups of each attribute, one row per comparison.

    ``comparison`` is one of

    - ``"range"``: over all groups taking part, ``difference`` = largest minus smallest value (≥ 0) and
      ``ratio`` = smallest over largest; ``group`` is the worst-off group and ``compared_to`` the best-off;
    - ``"to_reference"``: ``group`` against the reference group ``compared_to``: ``difference`` = value of
      ``group`` minus value of ``compared_to`` (signed), ``ratio`` = value of ``group`` over it;
    - ``"impact_ratio"`` (selection_rate only): the smallest selection rate of a group over the reference
      group's, ``ratio`` = that impact ratio (``difference`` NaN); ``"impact_ratio_max"``: the smallest over
      the largest (the most selected group), as NYC Local Law 144 audits compute it. ``adverse_impact``:
      the ratio is below ``threshold`` (the four-fifths rule, 0.8); None on other comparisons.

    Other columns: ``attribute``, ``metric``, ``difference_ci_low`` / ``difference_ci_high`` and
    ``ratio_ci_low`` / ``ratio_ci_high`` (at ``confidence``: Newcombe / MOVER-R for rates, a group-stratified
    bootstrap for mean loss and AUC; ``method`` says which),
    ``reference``, ``higher_is_better``, ``status`` (``"ok"`` or why the disparity is undefined, with
    ``reason``; its numbers are then NaN), ``n_boot_used`` (bootstrap replicates the intervals rest on).
    """

    COLUMNS = ("attribute", "metric", "comparison", "group", "compared_to", "difference", "difference_ci_low",
               "difference_ci_high", "ratio", "ratio_ci_low", "ratio_ci_high", "adverse_impact", "threshold",
               "reference", "higher_is_better", "status", "reason", "confidence", "n_boot_used", "method")

    def rows(self) -> list[dict]:
        out = []
        for disparities in self._findings.disparities.values():
            for d in disparities:
                common = {"attribute": d.attribute, "metric": d.metric, "reference": d.reference,
                          "higher_is_better": d.higher_is_better, "status": d.status,
                          "reason": d.reason, "confidence": _number(d.confidence),
                          "n_boot_used": d.n_boot_used, "method": d.method, "adverse_impact": None,
                          "threshold": math.nan}
                out.append({**common, "comparison": "range", "group": d.worst_group,
                            "compared_to": d.best_group,
                            **self._numbers(d.difference, d.difference_ci, d.ratio, d.ratio_ci)})
                for group, r in d.to_reference.items():
                    out.append({**common, "comparison": "to_reference", "group": group,
                                "compared_to": d.reference,
                                **self._numbers(r.difference, r.difference_ci, r.ratio, r.ratio_ci)})
                for key, ir in (("impact_ratio", d.impact_ratio), ("impact_ratio_max", d.impact_ratio_max)):
                    if ir is not None:
                        out.append({**common, "comparison": key, "group": ir.group,
                                    "compared_to": ir.compared_to,
                                    **self._numbers(None, None, ir.value, ir.ci),
                                    "adverse_impact": ir.adverse_impact,
                                    "threshold": _number(ir.threshold)})
        return out

    @staticmethod
    def _numbers(difference, difference_ci, ratio, ratio_ci) -> dict:
        d_low, d_high = _interval(difference_ci)
        r_low, r_high = _interval(ratio_ci)
        return {"difference": _number(difference), "difference_ci_low": d_low, "difference_ci_high": d_high,
                "ratio": _number(ratio), "ratio_ci_low": r_low, "ratio_ci_high": r_high}


class Drivers(FindingsTable):
    """Training records that drive a fairness gap (``kind="drivers"``: removing them would narrow it) or
    widen it (``kind="wideners"``), for every attribute and differentiable gap (surrogate) audited.

    Columns: ``attribute``, ``surrogate`` (selection_rate, equal_opportunity or mean_loss: the gap),
    ``disadvantaged`` / ``advantaged`` (the two test groups the gap is measured between), ``rank`` (1 = the
    record with the largest effect of its kind), ``token``, ``effect`` (estimated change of the gap, in its
    units, if the record were removed and the model retrained: negative narrows the gap, positive widens it),
    ``label`` (the record's training label), then ``group_<attribute>``.
    """

    COLUMNS = ("attribute", "surrogate", "disadvantaged", "advantaged", "rank", "token", "effect", "label")
    RECORD_GROUPS = True

    def __init__(self, findings, attributes: Sequence[str] = (), *, kind: str = "drivers"):
        super().__init__(findings, attributes)
        if kind not in ("drivers", "wideners"):
            raise ValueError(f"kind={kind!r} is not allowed: use 'drivers' or 'wideners'")
        self.kind = kind

    def rows(self) -> list[dict]:
        out = []
        for a in self._findings.attributions:
            records = a.drivers if self.kind == "drivers" else a.wideners
            for rank, record in enumerate(records, start=1):
                out.append({"attribute": a.attribute, "surrogate": a.surrogate,
                            "disadvantaged": a.disadvantaged, "advantaged": a.advantaged,
                            "rank": rank, "token": record.token, "effect": _number(record.effect),
                            "label": record.label, **self._record(record.groups)})
        return out


class RiskRanking(FindingsTable):
    """Training records ranked by membership-inference risk, as far as the run document holds them: the
    flagged records (risk above the calibrated threshold) and the records checked by actual retraining (the
    top ``trust_top`` by risk, when a training function was given). Records below both are not in the run
    document, so the table is the top of the ranking only.

    Columns: ``rank`` (1 = highest risk), ``token``, ``risk`` (the risk score: 1 = as extreme as the
    non-members' top ``budget`` fraction; NaN for a record not flagged, whose score the run does not keep),
    ``flagged``, ``self_influence`` (the leverage-corrected self-influence, for records checked by
    retraining; else NaN), ``retrained_change`` (the change of the record's own loss on actual
    leave-one-out retraining; NaN when not checked), ``label`` and ``reason`` (flagged records only; else
    None), then ``group_<attribute>`` (flagged records only).
    """

    COLUMNS = ("rank", "token", "risk", "flagged", "self_influence", "retrained_change", "label", "reason")
    RECORD_GROUPS = True
    MODEL = PrivacyFindings

    def rows(self) -> list[dict]:
        by_token: dict[str, dict] = {}
        for rank, f in enumerate(self._findings.flags, start=1):
            by_token[f.token] = {"rank": rank, "token": f.token, "risk": _number(f.risk),
                                 "flagged": True, "self_influence": math.nan, "retrained_change": math.nan,
                                 "label": f.label, "reason": f.reason, **self._record(f.groups)}
        # flags and the retraining check take the records in the same order (descending risk), so a record's
        # position in either list is its rank
        for rank, r in enumerate(self._findings.trust.records, start=1):
            row = by_token.setdefault(r.token, {
                "rank": rank, "token": r.token, "risk": math.nan, "flagged": False, "label": None,
                "reason": None, **self._record({})})
            row["self_influence"], row["retrained_change"] = _number(r.predicted), _number(r.actual)
        return sorted(by_token.values(), key=lambda row: row["rank"])


class FairnessResult:
    """The fairness findings of a run: ``metrics``, ``performance``, ``disparities``, ``flagged_gaps``, ``drivers``,
    ``wideners`` (tables with ``to_frame()``), ``favourable`` (the favourable outcome), ``notes``; ``findings``:
    the section of the run document itself (:class:`~auditkit.audits.fairness.findings.FairnessFindings`)."""

    def __init__(self, findings, attributes: Sequence[str] = ()):
        self.findings = findings = _section(findings, FairnessFindings)
        self.metrics = GroupMetrics(findings, attributes)
        self.performance = PerformanceTable(findings, attributes)
        self.flagged_gaps = FlaggedGaps(findings, attributes)
        self.disparities = Disparities(findings, attributes)
        self.drivers = Drivers(findings, attributes, kind="drivers")
        self.wideners = Drivers(findings, attributes, kind="wideners")

    @property
    def favourable(self) -> str:
        return self.findings.favourable

    @property
    def notes(self) -> list[str]:
        return list(self.findings.notes)

    def __repr__(self) -> str:
        return (f"<FairnessResult: {len(self.metrics)} group metrics, {len(self.disparities)} disparity rows, "
                f"{len(self.drivers)} driver rows>")


class PrivacyResult:
    """The privacy findings of a run: ``risk`` (the ranking of training records, with ``to_frame()``),
    ``threshold`` (the calibrated risk above which a record is flagged), ``budget`` (the false-positive
    budget of a flag), ``n_flagged``, ``notes``; ``findings``: the section of the run document itself
    (:class:`~auditkit.audits.privacy.findings.PrivacyFindings`)."""

    def __init__(self, findings, attributes: Sequence[str] = ()):
        self.findings = findings = _section(findings, PrivacyFindings)
        self.risk = RiskRanking(findings, attributes)

    @property
    def threshold(self) -> float:
        return _number(self.findings.threshold)

    @property
    def budget(self) -> float:
        return _number(self.findings.budget)

    @property
    def n_flagged(self) -> int:
        return len(self.findings.flags)

    @property
    def notes(self) -> list[str]:
        return list(self.findings.notes)

    def __repr__(self) -> str:
        return f"<PrivacyResult: {self.n_flagged} flagged of {self.findings.n_members} training records>"


class DataQualityResult(FindingsTable):
    """The data-quality findings of a run: the suspect training records (likely mislabelled or anomalous),
    most suspicious first, as a table (``to_frame()``); ``n_records``, ``worth_inspecting`` (records whose
    held-out probability of their own label is below ½), ``score_description`` (which score ranks them),
    ``notes``; ``findings``: the section of the run document itself.

    Columns: ``rank`` (1 = most suspicious), ``token``, ``score`` (the held-out loss of the record's label:
    measured out of fold or estimated, see ``score_description``), ``held_out_probability_of_label``
    (exp(−score)), ``loss`` (its loss under the audited model), ``self_influence``, ``reason`` (``misfit``:
    the model already disagrees with the label; ``fit only because seen``), ``label``, then
    ``group_<attribute>``.
    """

    COLUMNS = ("rank", "token", "score", "held_out_probability_of_label", "loss", "self_influence", "reason",
               "label")
    RECORD_GROUPS = True
    MODEL = DataQualityFindings

    @property
    def findings(self) -> DataQualityFindings:
        return self._findings

    def rows(self) -> list[dict]:
        return [{"rank": rank, "token": s.token, "score": _number(s.score),
                 "held_out_probability_of_label": _number(s.held_out_probability_of_label),
                 "loss": _number(s.loss), "self_influence": _number(s.self_influence),
                 "reason": s.reason, "label": s.label, **self._record(s.groups)}
                for rank, s in enumerate(self._findings.suspects, start=1)]

    @property
    def n_records(self) -> int:
        return self._findings.n_records

    @property
    def worth_inspecting(self) -> int:
        return self._findings.worth_inspecting

    @property
    def score_description(self) -> str:
        return self._findings.score

    @property
    def notes(self) -> list[str]:
        return list(self._findings.notes)


def _document(run: RunDocument | Mapping) -> RunDocument:
    """The run as a :class:`RunDocument` (a dict, e.g. a loaded run.json, is validated by ``load_run``)."""
    return load_run(run)


def sensitive_attributes(run: RunDocument | Mapping) -> list[str]:
    """The run's sensitive attributes, in the order of its configuration."""
    return [s.attribute for s in _document(run).data.sensitive]


def fairness_of(run: RunDocument | Mapping) -> FairnessResult | None:
    """The fairness findings of a run document; None when the run has no fairness audit."""
    doc = _document(run)
    return FairnessResult(doc.fairness, sensitive_attributes(doc)) if doc.fairness is not None else None


def privacy_of(run: RunDocument | Mapping) -> PrivacyResult | None:
    """The privacy findings of a run document; None when the run has no privacy audit."""
    doc = _document(run)
    return PrivacyResult(doc.privacy, sensitive_attributes(doc)) if doc.privacy is not None else None


def data_quality_of(run: RunDocument | Mapping) -> DataQualityResult | None:
    """The data-quality findings of a run document; None when the run has no data-quality audit."""
    doc = _document(run)
    return DataQualityResult(doc.data_quality, sensitive_attributes(doc)) if doc.data_quality is not None else None


__all__ = ["FairnessResult", "PrivacyResult", "DataQualityResult", "GroupMetrics", "Disparities", "Drivers",
           "RiskRanking", "fairness_of", "privacy_of", "data_quality_of"]
