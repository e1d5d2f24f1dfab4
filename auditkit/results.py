"""Read-only views of an audit's findings, each table with ``to_frame()`` (a pandas DataFrame)::

    run = ak.audit("examples/heart_disease/audit.yaml", out="heart-report")
    run.status                          # "pass" | "pass_with_warnings" | "fail" | "incomplete"
    run.fairness.metrics.to_frame()     # one row per attribute, group and metric
    run.fairness.disparities.to_frame() # one row per attribute, metric and comparison
    run.fairness.drivers.to_frame()     # one row per driver record per disparity surrogate
    run.privacy.risk.to_frame()         # one row per ranked training record in the run document
    run.data_quality.to_frame()         # one row per suspect record

The views read the run document (``AuditRun.run``, the dict written to ``run.json``) and copy nothing:
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

GROUP_PREFIX = "group_"


def _number(value) -> float:
    """A number of the run document as a float; ``None`` (undefined) → NaN."""
    return math.nan if value is None else float(value)


def _interval(pair) -> tuple[float, float]:
    """``[low, high]`` of the run document as two floats; absent or ``None`` ends → NaN."""
    low, high = pair if pair else (None, None)
    return _number(low), _number(high)


class FindingsTable:
    """A table of findings over one section of the run document: ``rows()`` (plain dicts, computed on
    each call from the document), ``to_frame()`` (those rows as a DataFrame with the columns ``COLUMNS``, then
    ``group_<attribute>`` columns where the table has record groups) and ``len()``."""

    COLUMNS: tuple[str, ...] = ()
    #: whether rows carry the sensitive groups of a record (``group_<attribute>`` columns)
    RECORD_GROUPS = False

    def __init__(self, findings: Mapping, attributes: Sequence[str] = ()):
        self._findings = findings
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

    def _record(self, record: Mapping) -> dict:
        """``group_<attribute>`` → the record's group, for every sensitive attribute of the run."""
        groups = record.get("groups") or {}
        return {GROUP_PREFIX + a: groups.get(a) for a in self._attributes}


class GroupMetrics(FindingsTable):
    """Performance metrics of every group of every sensitive attribute and intersection (test split).

    Columns: ``attribute`` (``"sex"`` or an intersection ``"sex & age_band"``), ``group``, ``metric``
    (accuracy, selection_rate, tpr, fpr, fnr, precision, mean_loss, auc), ``value``, ``ci_low`` / ``ci_high``
    (the 95% Wilson score interval of a rate; NaN for mean_loss and auc, which have none), ``n`` (records of
    the group in the test split; the rate's own denominator can be smaller), ``suppressed`` (the group has
    fewer records than the audit's ``min_group_size``: the report does not show its values and disparities
    leave it out), ``unknown`` (the group of records without a value for the attribute).
    """

    COLUMNS = ("attribute", "group", "metric", "value", "ci_low", "ci_high", "n", "suppressed", "unknown")

    def rows(self) -> list[dict]:
        out = []
        for table in self._findings.get("groups", []):
            for g in table["groups"]:
                intervals = g.get("intervals") or {}
                for metric, value in g["metrics"].items():
                    if metric == "count":               # the group's size: the column n
                        continue
                    low, high = _interval(intervals.get(metric))
                    out.append({"attribute": table["attribute"], "group": g["group"], "metric": metric,
                                "value": _number(value), "ci_low": low, "ci_high": high, "n": int(g["count"]),
                                "suppressed": not g["sufficient"], "unknown": bool(g["unknown"])})
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
    ``ratio_ci_low`` / ``ratio_ci_high`` (group-stratified bootstrap interval at ``confidence``),
    ``reference``, ``higher_is_better``, ``status`` (``"ok"`` or why the disparity is undefined, with
    ``reason``; its numbers are then NaN), ``n_boot_used`` (bootstrap replicates the intervals rest on).
    """

    COLUMNS = ("attribute", "metric", "comparison", "group", "compared_to", "difference", "difference_ci_low",
               "difference_ci_high", "ratio", "ratio_ci_low", "ratio_ci_high", "adverse_impact", "threshold",
               "reference", "higher_is_better", "status", "reason", "confidence", "n_boot_used")

    def rows(self) -> list[dict]:
        out = []
        for disparities in (self._findings.get("disparities") or {}).values():
            for d in disparities:
                common = {"attribute": d["attribute"], "metric": d["metric"], "reference": d.get("reference"),
                          "higher_is_better": d.get("higher_is_better"), "status": d.get("status"),
                          "reason": d.get("reason"), "confidence": _number(d.get("confidence")),
                          "n_boot_used": d.get("n_boot_used"), "adverse_impact": None, "threshold": math.nan}
                out.append({**common, "comparison": "range", "group": d.get("worst_group"),
                            "compared_to": d.get("best_group"),
                            **self._numbers(d.get("difference"), d.get("difference_ci"), d.get("ratio"),
                                            d.get("ratio_ci"))})
                for group, r in (d.get("to_reference") or {}).items():
                    out.append({**common, "comparison": "to_reference", "group": group,
                                "compared_to": d.get("reference"),
                                **self._numbers(r.get("difference"), r.get("difference_ci"), r.get("ratio"),
                                                r.get("ratio_ci"))})
                for key in ("impact_ratio", "impact_ratio_max"):
                    ir = d.get(key)
                    if ir is not None:
                        out.append({**common, "comparison": key, "group": ir.get("group"),
                                    "compared_to": ir.get("compared_to"),
                                    **self._numbers(None, None, ir.get("value"), ir.get("ci")),
                                    "adverse_impact": ir.get("adverse_impact"),
                                    "threshold": _number(ir.get("threshold"))})
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

    def __init__(self, findings: Mapping, attributes: Sequence[str] = (), *, kind: str = "drivers"):
        super().__init__(findings, attributes)
        if kind not in ("drivers", "wideners"):
            raise ValueError(f"kind={kind!r} is not allowed: use 'drivers' or 'wideners'")
        self.kind = kind

    def rows(self) -> list[dict]:
        out = []
        for a in self._findings.get("attributions", []):
            for rank, record in enumerate(a.get(self.kind) or [], start=1):
                out.append({"attribute": a["attribute"], "surrogate": a["surrogate"],
                            "disadvantaged": a.get("disadvantaged"), "advantaged": a.get("advantaged"),
                            "rank": rank, "token": record["token"], "effect": _number(record.get("effect")),
                            "label": record.get("label"), **self._record(record)})
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

    def rows(self) -> list[dict]:
        by_token: dict[str, dict] = {}
        for rank, f in enumerate(self._findings.get("flags", []), start=1):
            by_token[f["token"]] = {"rank": rank, "token": f["token"], "risk": _number(f.get("risk")),
                                    "flagged": True, "self_influence": math.nan, "retrained_change": math.nan,
                                    "label": f.get("label"), "reason": f.get("reason"), **self._record(f)}
        # flags and the retraining check take the records in the same order (descending risk), so a record's
        # position in either list is its rank
        for rank, r in enumerate((self._findings.get("trust") or {}).get("records", []), start=1):
            row = by_token.setdefault(r["token"], {
                "rank": rank, "token": r["token"], "risk": math.nan, "flagged": False, "label": None,
                "reason": None, **self._record({})})
            row["self_influence"], row["retrained_change"] = _number(r.get("predicted")), _number(r.get("actual"))
        return sorted(by_token.values(), key=lambda row: row["rank"])


class FairnessResult:
    """The fairness findings of a run: ``metrics``, ``disparities``, ``drivers``, ``wideners`` (tables with
    ``to_frame()``), ``favourable`` (the favourable outcome), ``notes``; ``findings``: the section of the
    run document itself."""

    def __init__(self, findings: Mapping, attributes: Sequence[str] = ()):
        self.findings = findings
        self.metrics = GroupMetrics(findings, attributes)
        self.disparities = Disparities(findings, attributes)
        self.drivers = Drivers(findings, attributes, kind="drivers")
        self.wideners = Drivers(findings, attributes, kind="wideners")

    @property
    def favourable(self) -> str:
        return self.findings.get("favourable")

    @property
    def notes(self) -> list[str]:
        return list(self.findings.get("notes") or [])

    def __repr__(self) -> str:
        return (f"<FairnessResult: {len(self.metrics)} group metrics, {len(self.disparities)} disparity rows, "
                f"{len(self.drivers)} driver rows>")


class PrivacyResult:
    """The privacy findings of a run: ``risk`` (the ranking of training records, with ``to_frame()``),
    ``threshold`` (the calibrated risk above which a record is flagged), ``budget`` (the false-positive
    budget of a flag), ``n_flagged``, ``notes``; ``findings``: the section of the run document itself."""

    def __init__(self, findings: Mapping, attributes: Sequence[str] = ()):
        self.findings = findings
        self.risk = RiskRanking(findings, attributes)

    @property
    def threshold(self) -> float:
        return _number(self.findings.get("threshold"))

    @property
    def budget(self) -> float:
        return _number(self.findings.get("budget"))

    @property
    def n_flagged(self) -> int:
        return len(self.findings.get("flags", []))

    @property
    def notes(self) -> list[str]:
        return list(self.findings.get("notes") or [])

    def __repr__(self) -> str:
        return f"<PrivacyResult: {self.n_flagged} flagged of {self.findings.get('n_members')} training records>"


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

    @property
    def findings(self) -> Mapping:
        return self._findings

    def rows(self) -> list[dict]:
        return [{"rank": rank, "token": s["token"], "score": _number(s.get("score")),
                 "held_out_probability_of_label": _number(s.get("held_out_probability_of_label")),
                 "loss": _number(s.get("loss")), "self_influence": _number(s.get("self_influence")),
                 "reason": s.get("reason"), "label": s.get("label"), **self._record(s)}
                for rank, s in enumerate(self._findings.get("suspects", []), start=1)]

    @property
    def n_records(self) -> int:
        return int(self._findings["n_records"])

    @property
    def worth_inspecting(self) -> int:
        return int(self._findings["worth_inspecting"])

    @property
    def score_description(self) -> str:
        return self._findings.get("score", "")

    @property
    def notes(self) -> list[str]:
        return list(self._findings.get("notes") or [])


def sensitive_attributes(run: Mapping) -> list[str]:
    """The run's sensitive attributes, in the order of its configuration."""
    return [s["attribute"] for s in (run.get("data") or {}).get("sensitive", [])]


def fairness_of(run: Mapping) -> FairnessResult | None:
    """The fairness findings of a run document; None when the run has no fairness audit."""
    found = run.get("fairness")
    return FairnessResult(found, sensitive_attributes(run)) if found is not None else None


def privacy_of(run: Mapping) -> PrivacyResult | None:
    """The privacy findings of a run document; None when the run has no privacy audit."""
    found = run.get("privacy")
    return PrivacyResult(found, sensitive_attributes(run)) if found is not None else None


def data_quality_of(run: Mapping) -> DataQualityResult | None:
    """The data-quality findings of a run document; None when the run has no data-quality audit."""
    found = run.get("data_quality")
    return DataQualityResult(found, sensitive_attributes(run)) if found is not None else None


__all__ = ["FairnessResult", "PrivacyResult", "DataQualityResult", "GroupMetrics", "Disparities", "Drivers",
           "RiskRanking", "fairness_of", "privacy_of", "data_quality_of"]
