"""The data-quality audit's findings as typed models: what :meth:`QualityFindings.to_dict
<auditkit.audits.quality.QualityFindings.to_dict>` writes into the run document."""

from __future__ import annotations

from .typed import Groups, Num, Part


class Suspect(Part):
    """A training record likely mislabelled or anomalous (token), its loss, self-influence and score."""

    token: str
    label: str
    groups: Groups = {}
    loss: Num
    self_influence: Num = None
    score: Num
    held_out_probability_of_label: Num = None
    reason: str


class QualityCell(Part):
    """The training records of one group and label, and how many of them are worth inspecting."""

    attribute: str
    group: str
    label: str
    count: int | None = None
    worth_inspecting: int | None = None
    #: the cell is suppressed (:mod:`auditkit.suppression`): its counts are withheld
    suppressed: bool = False


class DataQualityFindings(Part):
    """Ranked suspects and how many records are worth inspecting, overall and by group and label;
    ``out_of_fold``: the score is the measured out-of-fold loss (else the engine's estimate)."""

    score: str
    n_records: int
    worth_inspecting: int
    share_worth_inspecting: Num
    suspects: list[Suspect] = []
    by_group: list[QualityCell] = []
    score_quantiles: dict[str, Num] = {}
    out_of_fold: bool = False
    folds: int | None = None
    notes: list[str] = []
