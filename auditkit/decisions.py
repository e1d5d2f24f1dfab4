"""The kinds of decision an audited model supports (``report.decision_kind`` in audit.yaml), and the groups of
kinds that decide which fairness metrics fit: policy rules name the kinds they apply to (``applies_to``), and the
report chooses its callouts by them (:mod:`auditkit.report.metric_choice`).

- clinical kinds (``diagnosis``, ``triage``, ``screening``): error-rate parity (a missed case, FNR/TPR; a false
  alarm, FPR) and calibration within groups; prevalence differs between groups, so equal selection rates are not
  expected and the four-fifths rule does not apply;
- selection kinds (``selection``, ``lending``, ``hiring``): selection rates and their ratios (four-fifths rule,
  NYC Local Law 144) as well as error-rate parity;
- ``other``: error-rate parity; no selection rule.
"""

from __future__ import annotations

from typing import Literal

DecisionKind = Literal["diagnosis", "triage", "screening", "selection", "lending", "hiring", "other"]
DECISION_KINDS: tuple[str, ...] = ("diagnosis", "triage", "screening", "selection", "lending", "hiring", "other")
CLINICAL_KINDS: tuple[str, ...] = ("diagnosis", "triage", "screening")
SELECTION_KINDS: tuple[str, ...] = ("selection", "lending", "hiring")


def selection_rule_applies(kind: str | None) -> bool:
    """Whether selection-rate ratios (four-fifths rule) fit a decision of this kind: selection, lending, hiring."""
    return kind in SELECTION_KINDS
