"""Observations: the numbers a policy rule is checked against, and the catalogue of their metric ids.

An :class:`Observation` is one value of one metric, for one attribute and group where the metric has
them, with its confidence interval and the number of records behind it. :func:`observations` reads them
from the typed run document (:class:`~auditkit.rundoc.RunDocument`, or a ``findings.json``: the same
``fairness`` / ``privacy`` / ``data_quality`` / ``influence`` sections); plugins never see policies.

Metric catalogue (``M`` is one of accuracy, selection_rate, tpr, fpr, fnr, precision, mean_loss, auc;
``A`` one of the membership-inference attacks loss, self_influence, reference, tracin; ``S`` one of
mean_risk, p95_risk, flag_rate)::

    id                                        per                   value, interval, n
    fairness.M                                attribute & group     metric of the group; the group's
                                                                    ``intervals[M]`` (Wilson) when present;
                                                                    n = the metric's own denominator (positives
                                                                    for a TPR ...); a metric withheld (denominator
                                                                    below the minimum) has value None;
                                                                    reference_value = the metric of the
                                                                    attribute's reference group
    fairness.M.difference                     attribute             max_g M_g − min_g M_g, ``difference_ci``
                                                                    (Newcombe for rates); n = smallest denominator
                                                                    of the groups compared
    fairness.M.ratio                          attribute             min_g M_g / max_g M_g, ``ratio_ci``; n as above
    fairness.M.difference, .ratio             attribute & group     a group left out of the comparison (its
                                                                    denominator below the minimum, metric
                                                                    undefined): value None and its n, so that the
                                                                    rule reports it as insufficient data
    fairness.M.impact_ratio                   attribute & group     M_g / M_ref (``to_reference[g].ratio``,
                                                                    ``ratio_ci``); n = min(n_g, n_ref); a group
                                                                    left out of the comparison has value None and
                                                                    its n
    fairness.ece                              attribute & group     expected calibration error of the group
                                                                    (``fairness.performance``), ``ece_ci``; n =
                                                                    the group's records; suppressed: no value
    fairness.ece.difference                   attribute             max_g ECE_g − min_g ECE_g over groups with at
                                                                    least the minimum n, MOVER-D interval from
                                                                    the two groups' ``ece_ci``; groups left out
                                                                    as per group rows with value None
    fairness.selection_rate.impact_ratio_max  attribute             min_g sr_g / max_g sr_g (four-fifths ratio
                                                                    against the most selected group), ``ci``
    privacy.A.auc                             overall; attr & group membership-inference ROC AUC (0.5 = chance);
                                                                    n = min(members, non-members)
    privacy.A.tpr_at_F                        overall; attr & group true-positive rate at false-positive rate F
                                                                    (e.g. tpr_at_0.01); None if unresolvable
    privacy.A.advantage                       overall; attr & group max_t (TPR − FPR)
    privacy.flagged_share                     overall               n_flagged / n_members; n = n_members
    privacy.exposure.S                        attribute & group     risk statistic S among the group's members
    privacy.exposure_gap.S                    attribute             max − min of S over groups with enough records
    data_quality.share_worth_inspecting       overall               worth_inspecting / n_records
    influence.stability.agreement             overall               min top-k overlap over stability findings and
                                                                    settings (damping ×0.1, ×10, second solver)
    influence.retraining.spearman             overall               min Spearman correlation of estimated vs actual
                                                                    retraining effects (stability findings, else
                                                                    the privacy plugin's trust check)

Groups marked ``unknown`` (records whose attribute is missing) give no per-group observation. A value
that is undefined (NaN, None: e.g. a TPR in a group without positives) is kept as ``value=None`` and a
rule then reports insufficient data. Intervals are ``(low, high)`` or ``None``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from pydantic import BaseModel, ConfigDict, TypeAdapter

from ..audits.fairness.findings import DENOMINATOR_WORDS, Disparity, FairnessFindings
from ..audits.fairness.intervals import mover_difference
from ..audits.privacy.findings import Attack, PrivacyFindings
from ..audits.quality_findings import DataQualityFindings
from ..rundoc import RunDocument
from ..rundoc.parts import Influence, Stability

FAIRNESS_METRICS = ("accuracy", "selection_rate", "tpr", "fpr", "fnr", "precision", "mean_loss", "auc")
ATTACKS = ("loss", "self_influence", "reference", "tracin")
RISK_STATS = ("mean_risk", "p95_risk", "flag_rate")

_M = "|".join(FAIRNESS_METRICS)
_A = "|".join(ATTACKS)
_S = "|".join(RISK_STATS)
_FPR = r"(?P<fpr>[0-9]*\.?[0-9]+(?:[eE]-?[0-9]+)?)"

# (pattern, plugin that produces it, where it is observed: "group", "attribute", "overall", "overall+group")
_PATTERNS = (
    (rf"fairness\.(?P<m>{_M})", "fairness", "group"),
    (rf"fairness\.(?P<m>{_M})\.(?P<stat>difference|ratio)", "fairness", "attribute"),
    (rf"fairness\.(?P<m>{_M})\.impact_ratio", "fairness", "group"),
    (r"fairness\.selection_rate\.impact_ratio_max", "fairness", "attribute"),
    (r"fairness\.ece", "fairness", "group"),
    (r"fairness\.ece\.difference", "fairness", "attribute"),
    (rf"privacy\.(?P<a>{_A})\.(?P<stat>auc|advantage)", "privacy", "overall+group"),
    (rf"privacy\.(?P<a>{_A})\.tpr_at_{_FPR}", "privacy", "overall+group"),
    (r"privacy\.flagged_share", "privacy", "overall"),
    (rf"privacy\.exposure\.(?P<s>{_S})", "privacy", "group"),
    (rf"privacy\.exposure_gap\.(?P<s>{_S})", "privacy", "attribute"),
    (r"data_quality\.share_worth_inspecting", "data_quality", "overall"),
    (r"influence\.stability\.agreement", "influence", "overall"),
    (r"influence\.retraining\.spearman", "influence", "overall"),
)
CATALOGUE: tuple[tuple[re.Pattern, str, str], ...] = tuple((re.compile(p + r"\Z"), plugin, level)
                                                           for p, plugin, level in _PATTERNS)

EXAMPLE_IDS = tuple(
    [f"fairness.{m}" for m in FAIRNESS_METRICS] + [f"fairness.{m}.{s}" for m in FAIRNESS_METRICS
                                                   for s in ("difference", "ratio", "impact_ratio")]
    + ["fairness.selection_rate.impact_ratio_max", "fairness.ece", "fairness.ece.difference"]
    + [f"privacy.{a}.{s}" for a in ATTACKS for s in ("auc", "tpr_at_0.01", "tpr_at_0.001", "advantage")]
    + ["privacy.flagged_share"] + [f"privacy.exposure.{s}" for s in RISK_STATS]
    + [f"privacy.exposure_gap.{s}" for s in RISK_STATS]
    + ["data_quality.share_worth_inspecting", "influence.stability.agreement", "influence.retraining.spearman"])


def metric_info(metric: str) -> tuple[re.Match, str, str] | None:
    """``(match, plugin, level)`` of a metric id in the catalogue, or None when it is not a known id."""
    for pattern, plugin, level in CATALOGUE:
        m = pattern.match(metric)
        if m:
            return m, plugin, level
    return None


def canonical_metric(metric: str) -> str:
    """The id with a ``tpr_at_F`` suffix written the one way observations write it (``tpr_at_1e-2`` → ``0.01``)."""
    m = re.match(r"(privacy\.[a-z_]+\.tpr_at_)(.+)\Z", metric)
    if m:
        try:
            return m.group(1) + repr(float(m.group(2)))
        except ValueError:
            return metric
    return metric


@dataclass(frozen=True)
class Observation:
    """One value of one metric (see the module docstring for the catalogue).

    ``reference`` names the reference group and ``reference_value`` its value (per-group fairness metrics);
    ``difference_interval`` is the bootstrap interval of ``value − reference_value`` where the plugin
    computed it; ``note`` says why a value is missing or which groups it compares; ``n_of`` what ``n`` counts
    (``"records"`` when None; ``"positives"`` for a TPR ...); ``groups`` names the two groups a comparison of
    groups is between (difference, ratio: the worst and the best group; impact ratio: the group and the one it
    is divided by), worst-off first where the findings say which is worse.
    """

    metric: str
    attribute: str | None = None
    group: str | None = None
    value: float | None = None
    interval: tuple[float, float] | None = None
    n: int | None = None
    reference_value: float | None = None
    reference: str | None = None
    difference_interval: tuple[float, float] | None = None
    note: str | None = None
    n_of: str | None = None
    groups: tuple[str, str] | None = None

    @property
    def key(self) -> tuple[str, str | None, str | None]:
        return (canonical_metric(self.metric), self.attribute, self.group)

    def to_dict(self) -> dict:
        out = asdict(self)
        for k in ("interval", "difference_interval", "groups"):
            out[k] = list(out[k]) if out[k] is not None else None
        return out

    @classmethod
    def from_dict(cls, d: dict) -> Observation:
        """The observation of its ``to_dict()`` (as the history store keeps it); keys it does not have are
        ignored, fields missing take their defaults."""
        return _OBSERVATION.validate_python(d)


_OBSERVATION = TypeAdapter(Observation)


class Sections(BaseModel):
    """The sections of a run document that observations are read from (a whole :class:`RunDocument`, a
    ``findings.json``, or the runner's run dict before it is complete: other keys are ignored)."""

    model_config = ConfigDict(extra="ignore")

    fairness: FairnessFindings | None = None
    privacy: PrivacyFindings | None = None
    data_quality: DataQualityFindings | None = None
    influence: Influence | None = None


def _num(x) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return float(x)


def _interval(x) -> tuple[float, float] | None:
    if not isinstance(x, (list, tuple)) or len(x) != 2:
        return None
    lo, hi = _num(x[0]), _num(x[1])
    return None if lo is None or hi is None else (min(lo, hi), max(lo, hi))


def _min_or_none(values) -> int | None:
    values = [v for v in values if v is not None]
    return min(values) if values else None


def observations(run: RunDocument | Sections | Mapping) -> list[Observation]:
    """Every observation the run's findings hold, in a stable order (fairness, privacy, data quality, influence).
    ``run``: the run document (a dict, e.g. a loaded ``run.json`` or ``findings.json``, is validated first)."""
    doc = run if isinstance(run, RunDocument | Sections) else Sections.model_validate(run)
    out: list[Observation] = []
    if doc.fairness is not None:
        out += _fairness(doc.fairness)
    if doc.privacy is not None:
        out += _privacy(doc.privacy)
    dq = doc.data_quality
    if dq is not None:
        out.append(Observation("data_quality.share_worth_inspecting", value=_num(dq.share_worth_inspecting),
                               n=dq.n_records))
    if doc.influence is not None:
        out += _influence(doc.influence.stability, doc.privacy)
    return out


def _withheld(row, m: str, minimum: int) -> str | None:
    """Why a group's metric has no value (its denominator below the minimum), or None. A suppressed group (fewer
    records than the minimum) is said to be suppressed, without a count."""
    if not row.sufficient:
        return f"suppressed: fewer than {minimum} records"
    if m in row.insufficient:
        return (f"not reported: {row.insufficient[m]} {DENOMINATOR_WORDS.get(m, 'records')}, fewer than the "
                f"minimum of {minimum}")
    return None


def _fairness(f: FairnessFindings) -> list[Observation]:
    out: list[Observation] = []
    denoms: dict[str, dict[str, dict[str, int]]] = {}
    for table in f.groups:
        attr = table.attribute
        rows = {g.group: g for g in table.groups if not g.unknown}
        denoms[attr] = {g: {m: row.denominators.get(m, row.count) for m in FAIRNESS_METRICS}
                        for g, row in rows.items()}
        by_metric = {d.metric: d for d in f.disparities.get(attr, [])}
        ref = next((d.reference for d in by_metric.values() if d.reference), None)
        ref_row = rows.get(ref) if ref else None
        for g, row in rows.items():
            for m in [m for m in FAIRNESS_METRICS if m in row.metrics or m in row.insufficient]:
                ref_value = _num(ref_row.metrics.get(m)) if ref_row is not None else None
                disparity = by_metric.get(m)
                to_ref = disparity.to_reference.get(g) if disparity is not None else None
                out.append(Observation(f"fairness.{m}", attr, g, _num(row.metrics.get(m)),
                                       _interval(row.intervals.get(m)),
                                       denoms[attr][g][m] if row.sufficient else None, ref_value, ref,
                                       _interval(to_ref.difference_ci if to_ref is not None else None),
                                       note=_withheld(row, m, table.min_group_size), n_of=_n_of(m, row)))
    small = {t.attribute: {g.group for g in t.groups if not g.sufficient} for t in f.groups}
    for attr, items in f.disparities.items():
        for d in items:
            out += _disparity(attr, d, denoms.get(attr, {}), small.get(attr, set()))
    out += _calibration(f)
    return out


def _n_of(m: str, row) -> str | None:
    return DENOMINATOR_WORDS.get(m) if row.denominators else None


def _disparity(attr: str, d: Disparity, denoms: dict[str, dict[str, int]], small: set[str]) -> list[Observation]:
    """The observations of one disparity: difference and ratio, impact ratios to the reference group, one row per
    group left out (so a rule reports it as insufficient data; a suppressed group in ``small`` without its count),
    the four-fifths ratio of selection rates."""
    m, ok = d.metric, d.status == "ok"
    n_of = {g: v.get(m) for g, v in denoms.items()}
    words = DENOMINATOR_WORDS.get(m)
    note = None if ok else (d.reason or "the disparity could not be computed")
    n = _min_or_none(n_of.get(g) for g in d.groups) if ok else None
    pair = (d.worst_group, d.best_group) if ok and d.worst_group and d.best_group else None
    out = [Observation(f"fairness.{m}.{stat}", attr, None, _num(value) if ok else None, _interval(ci), n, note=note,
                       n_of=words, groups=pair)
           for stat, value, ci in (("difference", d.difference, d.difference_ci), ("ratio", d.ratio, d.ratio_ci))]
    ref = d.reference
    for g, r in d.to_reference.items():
        out.append(Observation(f"fairness.{m}.impact_ratio", attr, g, _num(r.ratio), _interval(r.ratio_ci),
                               _min_or_none([n_of.get(g), n_of.get(ref)]), _num(d.values.get(ref)), ref,
                               note=f"{g} compared with the reference group {ref}", n_of=words, groups=(g, ref)))
    for g, why in d.excluded.items():
        if g not in n_of:   # unknown category: not a group of the comparison by design
            continue
        n = None if g in small else n_of[g]
        left = f"left out of the comparison ({'suppressed: too few records' if g in small else why})"
        for stat in ("difference", "ratio"):
            out.append(Observation(f"fairness.{m}.{stat}", attr, g, None, None, n, note=left, n_of=words))
        if ok:
            out.append(Observation(f"fairness.{m}.impact_ratio", attr, g, None, None, n, None, ref,
                                   note=left, n_of=words))
    irm = d.impact_ratio_max
    if m == "selection_rate" and (ok or irm is not None):
        pair = [irm.group, irm.compared_to] if irm is not None else [None, None]
        out.append(Observation("fairness.selection_rate.impact_ratio_max", attr, None,
                               _num(irm.value) if irm is not None else None,
                               _interval(irm.ci) if irm is not None else None,
                               _min_or_none(n_of.get(g) for g in pair),
                               note=(f"{pair[0]} compared with the most selected group {pair[1]}"
                                     if all(pair) else note), groups=tuple(pair) if all(pair) else None))
    return out


def _get(x, key: str):
    """A field of a typed part or a key of a mapping (``fairness.performance`` may be either)."""
    return x.get(key) if isinstance(x, Mapping) else getattr(x, key, None)


def _calibration(f: FairnessFindings) -> list[Observation]:
    """``fairness.ece`` per group and ``fairness.ece.difference`` per attribute from ``fairness.performance``
    (none when the run has no performance part)."""
    perf = f.performance if hasattr(f, "performance") else None
    if perf is None:
        return []
    minimum = {t.attribute: t.min_group_size for t in f.groups}
    out: list[Observation] = []
    for block in _get(perf, "groups") or []:
        attr = _get(block, "attribute")
        least = minimum.get(attr, 30)
        taking, left = [], {}
        for row in _get(block, "rows") or []:
            g = _get(row, "group")
            if g is None or "unknown" in str(g).split(" & "):
                continue
            n, ece, ci = _get(row, "n"), _num(_get(row, "ece")), _interval(_get(row, "ece_ci"))
            if _get(row, "suppressed"):
                left[g] = (None, "suppressed: too few records to show")
                out.append(Observation("fairness.ece", attr, g, None, None, None, note=left[g][1]))
                continue
            out.append(Observation("fairness.ece", attr, g, ece, ci, n,
                                   note=None if ece is not None else "calibration error not computed"))
            if ece is None or ci is None:
                left[g] = (n, "calibration error or its interval not computed")
            elif n is None or n < least:
                left[g] = (n, f"{n} records, fewer than {least}")
            else:
                taking.append((g, ece, ci, n))
        out += _ece_difference(attr, taking, left)
    return out


def _ece_difference(attr: str, taking: list, left: dict) -> list[Observation]:
    """The gap in calibration error between the worst and the best calibrated group, with its MOVER-D interval."""
    out: list[Observation] = []
    if len(taking) >= 2:
        worst = max(taking, key=lambda t: t[1])
        best = min(taking, key=lambda t: t[1])
        lo, hi = mover_difference(worst[1], worst[2], best[1], best[2])
        out.append(Observation("fairness.ece.difference", attr, None, worst[1] - best[1],
                               _interval([lo, hi]), min(worst[3], best[3]),
                               note=f"{worst[0]} compared with {best[0]}", groups=(worst[0], best[0])))
    else:
        out.append(Observation("fairness.ece.difference", attr, None, None, None, None,
                               note="fewer than two groups with a calibration error and enough records"))
    for g, (n, why) in left.items():
        out.append(Observation("fairness.ece.difference", attr, g, None, None, n,
                               note=f"left out of the comparison ({why})"))
    return out


def _attack_obs(attack: str, a: Attack | None, attr: str | None, group: str | None) -> list[Observation]:
    """AUC, advantage and TPR at each FPR of one attack (``a`` None: the group was too small for it)."""
    if a is None:
        return [Observation(f"privacy.{attack}.auc", attr, group), Observation(f"privacy.{attack}.advantage", attr,
                                                                              group)]
    n = _min_or_none([a.n_members, a.n_nonmembers])
    out = [Observation(f"privacy.{attack}.auc", attr, group, _num(a.auc), n=n),
           Observation(f"privacy.{attack}.advantage", attr, group, _num(a.advantage), n=n)]
    for fpr, tpr in a.tpr_at_fpr.items():
        f = float(fpr)
        note = None if _num(tpr) is not None else (
            f"a false-positive rate of {f:g} cannot be resolved with {a.n_nonmembers} non-members")
        out.append(Observation(f"privacy.{attack}.tpr_at_{f!r}", attr, group, _num(tpr), n=n, note=note))
    return out


def _privacy(p: PrivacyFindings) -> list[Observation]:
    out: list[Observation] = []
    for attack, a in p.attacks.items():
        out += _attack_obs(attack, a, None, None)
    for attr, by_attack in p.attacks_by_group.items():
        for attack, by_group in by_attack.items():
            for g, a in by_group.items():
                if g != "unknown":  # None: the group is below the plugin's minimum size for an attack
                    out += _attack_obs(attack, a, attr, g)
    if p.n_members:
        out.append(Observation("privacy.flagged_share", value=_num(p.n_flagged / p.n_members), n=p.n_members))
    for e in p.exposure:
        rows = [r for r in e.groups if r.group != "unknown"]
        for r in rows:
            for s in RISK_STATS:
                out.append(Observation(f"privacy.exposure.{s}", e.attribute, r.group, _num(getattr(r, s)), n=r.count))
        usable = [r.count for r in rows if r.sufficient]
        for s in RISK_STATS:
            value = _num(getattr(e.gap, s))
            out.append(Observation(f"privacy.exposure_gap.{s}", e.attribute, None, value,
                                   n=_min_or_none(usable) if len(usable) >= 2 else None,
                                   note=None if value is not None else "fewer than two groups with enough records"))
    return out


def _influence(stability: Stability, privacy: PrivacyFindings | None) -> list[Observation]:
    out: list[Observation] = []
    agreements = [(v, f.finding, label) for f in stability.findings for label, v in f.agreement.items()
                  if _num(v) is not None]
    if agreements:
        v, finding, label = min(agreements, key=lambda t: t[0])
        out.append(Observation("influence.stability.agreement", value=float(v), note=f"{finding}, {label}"))
    spearman = [(f.retraining.spearman, f.finding) for f in stability.findings
                if f.retraining is not None and _num(f.retraining.spearman) is not None]
    trust = privacy.trust if privacy is not None else None
    if not spearman and trust is not None and trust.checked and _num(trust.spearman) is not None:
        spearman = [(trust.spearman, "self-influence of the top privacy-risk records")]
    if spearman:
        v, finding = min(spearman, key=lambda t: t[0])
        out.append(Observation("influence.retraining.spearman", value=float(v), note=str(finding)))
    return out
