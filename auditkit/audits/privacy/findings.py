"""The privacy audit's findings as typed models: what :meth:`PrivacyFindings.to_dict
<auditkit.audits.privacy.plugin.PrivacyFindings.to_dict>` writes into the run document."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..typed import Groups, Num, Part


class Baseline(Part):
    """What an attack guessing at random achieves."""

    auc: Num
    tpr_at_fpr: dict[str, Num] = {}


class Roc(Part):
    """The attack's ROC curve (false- and true-positive rates)."""

    fpr: list[Num] = []
    tpr: list[Num] = []


class Attack(Part):
    """A membership-inference attack's success: AUC, TPR at fixed FPRs (keys: the FPR as text), advantage."""

    name: str
    n_members: int
    n_nonmembers: int
    auc: Num
    tpr_at_fpr: dict[str, Num] = {}
    advantage: Num = None
    random_baseline: Baseline | None = None
    roc: Roc | None = None
    unresolved_fprs: list[Num] = []


class Flag(Part):
    """A flagged training record (token), its risk, and why."""

    token: str
    risk: Num
    label: str
    groups: Groups = {}
    reason: str


class ExposureRow(Part):
    """The privacy risk of one group's training records."""

    group: str
    count: int | None = None
    sufficient: bool | None = None
    mean_risk: Num = None
    p95_risk: Num = None
    flag_rate: Num = None
    #: the row is suppressed (:mod:`auditkit.suppression`): only ``group`` is kept
    suppressed: bool = False


class ExposureGap(Part):
    """Largest minus smallest of each exposure measure across the groups with enough records."""

    mean_risk: Num = None
    p95_risk: Num = None
    flag_rate: Num = None


class Exposure(Part):
    """The privacy risk by group of one attribute, and the gap across its groups."""

    attribute: str
    groups: list[ExposureRow] = []
    gap: ExposureGap = ExposureGap()


class TrustRecord(Part):
    """A top-ranked member: self-influence (predicted) and the loss change on actual retraining."""

    token: str
    predicted: Num
    actual: Num


class Trust(Part):
    """Self-influence of the top-ranked members checked by leave-one-out retraining (``checked``)."""

    checked: bool
    spearman: Num = None
    median_ratio_actual_to_predicted: Num = None
    underestimated: int | None = None
    records: list[TrustRecord] = []
    #: processes that retrained them, the seconds it took, and ‖∇R‖∞ at which the built-in trainer stopped
    #: (None: the training function's own rule)
    workers: int | None = None
    seconds: Num = None
    early_stopping_tolerance: Num | None = None
    #: leave-one-out models that stopped where they started (the audited weights): removing the record moved the
    #: objective's gradient by less than that tolerance
    unmoved: int | None = None


class AboveLastEdge(Part):
    """Scores beyond the histogram's last edge."""

    members: int = 0
    nonmembers: int = 0


class Distribution(Part):
    """Histogram of the risk score of members and non-members on shared bins."""

    edges: list[Num] = []
    members: list[int] = []
    nonmembers: list[int] = []
    threshold: Num = None
    above_last_edge: AboveLastEdge = AboveLastEdge()


class Reference(Part):
    """The reference-model attack that ran: online or offline LiRA, how many models, how they started, the time
    budget and the time spent, and how far the models converged."""

    attack: Literal["online", "offline"]
    n_models: int
    #: "cold (builder)", "cold (reset_parameters)" or "warm"
    initialisation: str
    chosen_from_budget: bool
    budget_s: Num
    seconds: Num
    seconds_first_model: Num
    seconds_per_model_mean: Num
    workers: int
    #: ‖∇R‖∞ at which the built-in trainer stops (None: the training function's own rule)
    early_stopping_tolerance: Num | None = None
    #: models whose relative gradient norm is at most converged_tolerance
    converged: int
    converged_tolerance: Num
    largest_relative: Num
    #: the splits the models were trained on
    pool: list[str]
    #: the Gaussians' standard deviations: "per record" or "pooled" over the records
    variance: Literal["per record", "pooled"] | None = None


class PrivacyFindings(Part):
    """What the privacy audit found: flags at a calibrated false-positive budget, attacks (overall and by
    group: ``{attribute: {attack: {group: Attack | None}}}``), exposure, the retraining check."""

    signals: list[str]
    risk_score: str
    budget: Num
    threshold: Num
    n_members: int
    n_nonmembers: int
    flags: list[Flag] = []
    realised_fpr_on_calibration: Num = None
    attacks: dict[str, Attack] = Field(default_factory=dict)
    attacks_by_group: dict[str, dict[str, dict[str, Attack | None]]] = Field(default_factory=dict)
    exposure: list[Exposure] = []
    trust: Trust
    distribution: Distribution | None = None
    notes: list[str] = []
    #: the reference-model attack (None: no training function, or reference_models 0)
    reference: Reference | None = None
    n_flagged: int = 0
