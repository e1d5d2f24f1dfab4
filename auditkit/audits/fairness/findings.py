"""The fairness audit's findings as typed models: what :meth:`FairnessFindings.to_dict
<auditkit.audits.fairness.plugin.FairnessFindings.to_dict>` writes into the run document."""

from __future__ import annotations

from pydantic import Field

from ..typed import Groups, Interval, Num, Part


class GroupRow(Part):
    """One group of one attribute: its size, metrics (``count`` among them) and Wilson intervals of the rates.
    A suppressed row (:mod:`auditkit.suppression`) keeps only ``group`` and ``suppressed=True``."""

    group: str
    count: int | None = None
    metrics: dict[str, int | Num] = {}
    intervals: dict[str, Interval] = {}
    sufficient: bool | None = None
    unknown: bool = False
    suppressed: bool = False


class GroupTable(Part):
    """Metrics per group for one attribute or intersection (``columns``: the attributes it is made of)."""

    attribute: str
    columns: list[str] = []
    min_group_size: int
    groups: list[GroupRow]


class ImpactRatio(Part):
    """A selection-rate impact ratio and its four-fifths reading (``basis``: ``reference`` or
    ``most_selected``)."""

    basis: str
    value: Num
    ci: Interval
    group: str | None = None
    compared_to: str | None = None
    threshold: Num = 0.8
    adverse_impact: bool | None = None


class ToReference(Part):
    """A group's difference and ratio to the reference group, with bootstrap intervals."""

    difference: Num = None
    difference_ci: Interval | None = None
    ratio: Num = None
    ratio_ci: Interval | None = None


class Disparity(Part):
    """The disparity of one metric across the groups of one attribute, with bootstrap intervals at
    ``confidence`` (see :mod:`auditkit.audits.fairness.disparities`)."""

    attribute: str
    metric: str
    status: str
    reason: str | None = None
    reference: str | None = None
    higher_is_better: bool = True
    groups: list[str] = []
    values: dict[str, Num] = {}
    excluded: dict[str, str] = {}
    difference: Num = None
    ratio: Num = None
    worst_group: str | None = None
    best_group: str | None = None
    confidence: Num = 0.95
    n_boot: int = 0
    n_boot_used: int = 0
    seed: int | None = None
    difference_ci: Interval = [None, None]
    ratio_ci: Interval = [None, None]
    to_reference: dict[str, ToReference] = {}
    impact_ratio: ImpactRatio | None = None
    impact_ratio_max: ImpactRatio | None = None


class RecordEffect(Part):
    """A training record (token, never the identifier) and the predicted effect of removing it."""

    token: str
    effect: Num
    label: str
    groups: Groups = {}


class Cell(Part):
    """The training records of one group and label: how many, their summed effect, the share of the gap."""

    group: str
    label: str
    count: int | None = None
    effect: Num = None
    share_of_gap: Num = None
    suppressed: bool = False


class CurvePoint(Part):
    """The gap predicted after removing the top ``k`` drivers."""

    k: int
    predicted_gap: Num


class Verification(Part):
    """Removal of the top ``k`` drivers checked by actual retraining."""

    k: int
    predicted_gap: Num
    actual_gap: Num
    actual_hard_gap: Num = None


class Attribution(Part):
    """The training records that drive one surrogate gap between a disadvantaged and an advantaged group."""

    attribute: str
    surrogate: str
    disadvantaged: str
    advantaged: str
    gap: Num
    hard_gap: Num = None
    drivers: list[RecordEffect] = []
    wideners: list[RecordEffect] = []
    cells: list[Cell] = []
    removal_curve: list[CurvePoint] = []
    verification: list[Verification] = []
    verified: bool = False


class Explanation(Part):
    """One explained test record: its outcome and the training records that pushed it each way."""

    token: str
    true_label: str
    predicted_label: str
    probability_of_true_label: Num
    groups: Groups = {}
    toward_wrong: list[RecordEffect] = []
    toward_right: list[RecordEffect] = []


class FairnessFindings(Part):
    """What the fairness audit found: group tables, disparities by attribute, attributions, explanations."""

    favourable: str
    groups: list[GroupTable] = []
    disparities: dict[str, list[Disparity]] = Field(default_factory=dict)
    attributions: list[Attribution] = []
    explanations: list[Explanation] = []
    verified: bool = False
    notes: list[str] = []
