"""The fairness audit's findings as typed models: what :meth:`FairnessFindings.to_dict
<auditkit.audits.fairness.plugin.FairnessFindings.to_dict>` writes into the run document."""

from __future__ import annotations

from pydantic import Field

from ..typed import Groups, Interval, Num, Part

#: what each metric's own denominator counts (the minimum n applies to it; see
#: :mod:`auditkit.audits.fairness.metrics`)
DENOMINATOR_WORDS = {"selection_rate": "records", "accuracy": "records", "mean_loss": "records",
                     "tpr": "positives", "fnr": "positives", "fpr": "negatives", "precision": "predicted positives",
                     "auc": "records in the smaller class"}


class GroupRow(Part):
    """One group of one attribute: its size, metrics (``count`` among them) and Wilson intervals of the rates;
    ``denominators``: each metric's own denominator; ``insufficient``: the metrics withheld because their
    denominator is below the minimum (metric → denominator). A suppressed row (:mod:`auditkit.suppression`)
    keeps only ``group`` and ``suppressed=True``."""

    group: str
    count: int | None = None
    metrics: dict[str, int | Num] = {}
    intervals: dict[str, Interval] = {}
    denominators: dict[str, int] = {}
    insufficient: dict[str, int] = {}
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
    #: how the intervals were made: "newcombe" (rates: Newcombe difference, MOVER-R ratio) or "bootstrap"
    method: str | None = None
    #: why an interval is missing (a degenerate bootstrap)
    ci_note: str | None = None
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


class FlaggedGap(Part):
    """The drivers of the gap one policy check flagged (warn or fail), for exactly the two groups it compares.

    ``gap`` is the checked metric's gap between ``disadvantaged`` and ``advantaged`` on the model's decisions
    (rates as fractions, positive = ``disadvantaged`` worse off) with ``gap_ci`` its interval from the fairness
    findings; ``surrogate_gap`` the same gap on predicted probabilities (the differentiable ``surrogate``), whose
    value after removing the top k ``drivers`` is predicted in ``predicted_gap_after`` and, where the model was
    retrained without them, measured in ``actual_gap_after``; ``actual_metric_gap_after`` is the checked
    metric's gap on decisions after that retraining. Keys of the ``*_after`` maps: k. ``note`` says why a
    gap has no drivers (no surrogate for the metric, a group without records in its denominator)."""

    rule: str
    check_status: str
    metric: str
    attribute: str
    disadvantaged: str
    advantaged: str
    surrogate: str | None = None
    gap: Num = None
    gap_ci: Interval | None = None
    surrogate_gap: Num = None
    drivers: list[RecordEffect] = []
    predicted_gap_after: dict[int, Num] = {}
    actual_gap_after: dict[int, Num] | None = None
    actual_metric_gap_after: dict[int, Num] | None = None
    note: str | None = None


class Explanation(Part):
    """One explained test record: its outcome and the training records that pushed it each way."""

    token: str
    true_label: str
    predicted_label: str
    probability_of_true_label: Num
    groups: Groups = {}
    toward_wrong: list[RecordEffect] = []
    toward_right: list[RecordEffect] = []


class ReliabilityBin(Part):
    """One bin of a reliability diagram: predicted probabilities in (bin_lower, bin_upper] (the first bin closed),
    how many records, their mean predicted probability and the observed rate of the favourable outcome."""

    bin_lower: Num
    bin_upper: Num
    n: int
    mean_predicted: Num = None
    observed_rate: Num = None


class PerfRow(Part):
    """Performance and calibration of one group (or of all records; see
    :mod:`auditkit.audits.fairness.performance`). A statistic whose denominator is below the minimum n is None
    and named in ``insufficient`` with that denominator. A suppressed row keeps ``group`` and ``suppressed``
    only."""

    group: str
    suppressed: bool = False
    n: int | None = None
    positives: int | None = None
    negatives: int | None = None
    prevalence: Num = None
    prevalence_ci: Interval | None = None
    tp: int | None = None
    fp: int | None = None
    tn: int | None = None
    fn: int | None = None
    accuracy: Num = None
    accuracy_ci: Interval | None = None
    auroc: Num = None
    auroc_ci: Interval | None = None
    ece: Num = None
    ece_ci: Interval | None = None
    reliability: list[ReliabilityBin] = []
    insufficient: dict[str, int] = {}


class PerfGroups(Part):
    """The performance rows of the groups of one attribute or intersection."""

    attribute: str
    rows: list[PerfRow] = []


class Performance(Part):
    """Performance and calibration on the test set: ``threshold`` is the probability of the favourable class
    above which it is predicted (0.5 for two classes; None for more, where the arg-max class decides and the
    favourable class is read one-vs-rest). AUROC intervals by ``auroc_method``, ECE intervals by
    ``ece_method`` (``n_boot`` replicates, ``seed``), at ``confidence``; ``bins`` equal-width bins."""

    threshold: Num = None
    n_classes: int = 2
    min_n: int = 30
    confidence: Num = 0.95
    n_boot: int = 0
    seed: int | None = None
    auroc_method: str = "delong"
    ece_method: str = "bootstrap, bias-shifted percentile"
    bins: int = 10
    overall: PerfRow
    groups: list[PerfGroups] = []


class FairnessFindings(Part):
    """What the fairness audit found: group tables, disparities by attribute, attributions (the gaps the plugin
    picks itself), explanations, and the drivers of each gap a policy check flagged (``flagged_gaps``, added by
    :meth:`FairnessAudit.follow_up <auditkit.audits.fairness.plugin.FairnessAudit.follow_up>`)."""

    favourable: str
    groups: list[GroupTable] = []
    disparities: dict[str, list[Disparity]] = Field(default_factory=dict)
    attributions: list[Attribution] = []
    explanations: list[Explanation] = []
    verified: bool = False
    notes: list[str] = []
    performance: Performance | None = None
    flagged_gaps: list[FlaggedGap] = []
