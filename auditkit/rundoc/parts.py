"""The parts of the run document that the runner writes (everything except the plugins' findings).

Each model mirrors the code that writes the part: :mod:`auditkit.runner` (the run literal),
:meth:`auditkit.audits.base.AuditContext.refit_summary`, :mod:`auditkit.audits.stability`,
:func:`auditkit.policy.evaluate` (checks), :meth:`auditkit.policy.rules.Policy.to_dict` and
:class:`auditkit.history.HistoryStore` (history rows). Fields added after the first release of
``auditkit.run/1`` are optional, so that an older ``run.json`` still validates.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..audits.typed import Interval, Num, Part
from ..decisions import DecisionKind


class Scope(Part):
    """What the audited system is and what it decides (the ``report`` block of audit.yaml, sign-off aside)."""

    organisation: str = ""
    system: str = ""
    intended_use: str = ""
    population: str = ""
    decision: str = "assistive"
    decision_kind: DecisionKind = "other"
    decision_description: str = ""
    frameworks: list[str] = []
    #: uses the model must not be put to, and the owner's recommendations (datasheet; optional)
    out_of_scope: list[str] = []
    recommendations: list[str] = []


class TrainingFit(Part):
    """How close the audited weights are to a minimum of the stated objective on the training records
    (:func:`auditkit.influence.stationarity.stationarity` with the threshold and verdict)."""

    grad_norm: Num
    reference_norm: Num = None
    relative: Num
    loss: Num = None
    objective: Num = None
    accuracy: Num = None
    n: int | None = None
    threshold: Num
    stationary: bool
    allowed: bool = False


class ModelInfo(Part):
    """The audited model: identity, hashes, size, architecture, objective."""

    name: str
    version: str
    weights_sha256: str | None = None
    parameters_sha256: str | None = None
    framework: str
    parameters: int
    architecture: str
    builder: str | None = None
    loss: str
    l2: float | dict[str, float]
    previous_version: str | None = None
    training_fit: TrainingFit | None = None
    #: more than one parametrised layer (the model is not convex in its parameters); None: not recorded
    hidden_layers: bool | None = None


class Split(Part):
    """One data split: its name, role in the audit, source, size and content hash."""

    name: str
    role: str
    source: str
    rows: int
    sha256: str


class Sensitive(Part):
    """A sensitive attribute: how it was obtained and how many records of each split lack it."""

    attribute: str
    how_obtained: str
    unknown: dict[str, int] = {}
    #: the splits whose count of records without a value is suppressed (:mod:`auditkit.suppression`)
    unknown_suppressed: list[str] = []


class Feature(Part):
    """A model input column (:func:`auditkit.assemble.feature_rows`): its kind, whether it is sensitive (or the
    source of a sensitive attribute), what it may stand in for, and its missing values per split."""

    name: str
    kind: str
    sensitive: bool = False
    proxy: str | None = None
    missing: dict[str, int] = {}


class DataInfo(Part):
    """The audit data: target, classes, featurizer, splits and sensitive attributes."""

    target: str
    favourable: str
    featurizer: str | None = None
    classes: list[str]
    n_features: int
    splits: list[Split]
    sensitive: list[Sensitive] = []
    #: what the target means (``data.label_definition``); the model inputs with their missing values (datasheet)
    label_definition: str = ""
    features: list[Feature] = []


class PurposeCount(Part):
    """Retrainings made for one purpose and how many of them did not converge."""

    count: int
    not_converged: int


class Refits(Part):
    """The retrainings of the run (:meth:`~auditkit.audits.base.AuditContext.refit_summary`)."""

    count: int = 0
    not_converged: int = 0
    tolerance: Num = None
    largest_relative: Num = None
    largest_grad_norm: Num = None
    by_purpose: dict[str, PurposeCount] = {}


class StabilitySetting(Part):
    """One alternative influence setting of the stability check."""

    label: str
    method: str
    l2: float | dict[str, float] | None = None
    damping: Num = None


class RetrainingEvidence(Part):
    """What actual retraining said of a finding: a verified removal (``k``, ``predicted_gap``,
    ``actual_gap``) or a rank correlation (``spearman``, ``median_ratio``)."""

    predicted_gap: Num = None
    actual_gap: Num = None
    k: int | None = None
    spearman: Num = None
    median_ratio: Num = None


class StabilityFinding(Part):
    """Agreement of one key finding's top-k records under each alternative setting, and the verdict."""

    finding: str
    kind: str
    k: int
    agreement: dict[str, Num]
    failures: dict[str, str] = {}
    retraining: RetrainingEvidence | None = None
    verdict: Literal["robust", "sensitive"]
    #: the plugin whose ranking this is; None: not recorded (runs before the ranking protocol)
    plugin: str | None = None


class Stability(Part):
    """The stability check: the settings tried and the findings compared."""

    settings: list[StabilitySetting] = []
    findings: list[StabilityFinding] = []


class Fitting(Part):
    """What the engine factory did to fit the influence engine, in plain words."""

    damping_source: Literal["configured", "auto", "none"]
    steps: list[str] = []
    dtype_requested: str
    dtype_used: str
    float32_overflows: int = 0


class Influence(Part):
    """The influence engine's settings, its sign convention, the retrainings and the stability check."""

    method: str
    #: the solver that ran (what ``auto`` chose; the method itself otherwise) and why auto chose it
    method_used: str | None = None
    method_reason: str | None = None
    #: the largest relative residual ‖b − Hx‖/‖b‖ measured after the iterative solves (None: a direct solver)
    residual: Num | None = None
    stopping_rule: str | None = None
    tol: Num | None = None
    damping: Num
    damping_note: str | None = None
    dtype: str
    l2: float | dict[str, float]
    seed: int
    parameters: int
    convention: str | None = None
    refits: Refits | None = None
    stability: Stability = Stability()
    #: what the engine factory did (damping source, fallbacks, precision); None: not recorded
    fitting: Fitting | None = None


class Compared(Part):
    """What a relative check compared with: a label and its value."""

    label: str
    value: Num


class Check(Part):
    """One policy check (rule × observation) and its outcome (:func:`auditkit.policy.evaluate`)."""

    rule: str
    metric: str
    attribute: str | None = None
    group: str | None = None
    value: Num = None
    interval: Interval | None = None
    bound: str
    severity: Literal["fail", "warn"]
    status: Literal["pass", "warn", "fail", "insufficient_data", "not_applicable"]
    decided_by: str
    requirement: str
    explanation: str
    n: int | None = None
    when_insufficient: Literal["warn", "fail"] = "warn"
    compared_with: Compared | None = None
    note: str | None = None
    #: the two groups the check compares (difference, ratio: worst and best group; impact ratio or a difference
    #: from the reference: the group and the reference group); None for a check of one value
    groups: list[str] | None = None

    def to_dict(self) -> dict:
        """The check as the run document's ``checks`` hold it (JSON)."""
        return self.model_dump(mode="json")


class RuleScope(Part):
    """Which observations a rule applies to."""

    attributes: list[str] | None = None
    groups: list[str] | None = None
    overall: bool | None = None


class RuleRecord(Part):
    """A policy rule as the run document keeps it (:meth:`auditkit.policy.rules.Rule.to_dict`; ``bound``
    holds ``kind`` and that kind's limits)."""

    id: str
    metric: str
    scope: RuleScope = RuleScope()
    bound: dict[str, Any]
    severity: Literal["fail", "warn"]
    min_n: int | None = None
    if_straddles: Literal["warn", "pass", "fail"] = "warn"
    when_insufficient: Literal["warn", "fail"] = "warn"
    requirement: str
    description: str | None = None
    applies_to: list[DecisionKind] | None = None


class PolicyRecord(Part):
    """The policy the run was checked against (:meth:`auditkit.policy.rules.Policy.to_dict`)."""

    name: str
    title: str
    description: str = ""
    flag_budget: Num = None
    references: list[str] = []
    source: str | None = None
    sha256: str | None = None
    rules: list[RuleRecord] = []


class HistoryRow(Part):
    """An earlier audit of the same model, as the history store keeps it."""

    report_id: str
    created_utc: str
    model_version: str | None = None
    status: str
    figures: dict[str, Num] = {}


class SignOffRole(Part):
    """A role that signs the report, and the name of who holds it (may be blank)."""

    role: str
    name: str = ""


class SignOff(Part):
    """The sign-off block: roles and the independence statement."""

    roles: list[SignOffRole] = []
    independence: str = ""


class Hashes(Part):
    """Content hashes of what the run read: model, configuration, policy, data splits."""

    model: str | None = None
    config: str | None = None
    policy: str | None = None
    data: dict[str, str] = {}


class Provenance(Part):
    """How to reproduce the run: hashes, versions, seed(s), command and the redacted configuration."""

    hashes: Hashes
    versions: dict[str, str] = {}
    seed: int
    command: str = ""
    config_text: str = ""
    #: the seeds derived from ``seed`` and used, ``{purpose: seed}``; None: not recorded
    seeds: dict[str, int] | None = None
    #: what keys the record tokens, in a plain sentence; None: not recorded
    token_key: str | None = None


class RuntimeStep(Part):
    """One named step of the run and its wall-clock seconds."""

    name: str
    seconds: Num = None


class Runtime(Part):
    """Wall-clock time of the run, by step, and where the influence work ran."""

    seconds: Num
    steps: list[RuntimeStep] = []
    backend: str = "in process"


class Saturation(Part):
    """Training records whose logits saturate the loss in the audit's dtype."""

    n: int
    certain_right: int = 0
    certain_wrong: int = 0
    max_abs_logit: Num = None
    dtype: str = ""


class Numerics(Part):
    """Numerical facts of the run: where the findings hold values that are not finite (``{part: [dotted
    paths]}``) and the saturation of the logits (None: no saturation)."""

    nonfinite: dict[str, list[str]] = Field(default_factory=dict)
    saturation: Saturation | None = None
