"""The typed run document (``run.json``): :class:`RunDocument` and its parts, the schema name, the keys of
``findings.json``, and :func:`load_run` to read a saved one.

The built-in plugins' findings models live beside their plugins (:mod:`auditkit.audits.fairness.findings`,
:mod:`auditkit.audits.privacy.findings`, :mod:`auditkit.audits.quality_findings`) and are re-exported here.
"""

from __future__ import annotations

from ..audits.fairness.findings import FairnessFindings
from ..audits.privacy.findings import PrivacyFindings
from ..audits.quality_findings import DataQualityFindings
from .assemble import run_document
from .document import FINDINGS_KEYS, SCHEMA, RunDocument, RunStatus, run_json_schema
from .load import findings_of, load_run
from .parts import (
    Check,
    DataInfo,
    Fitting,
    HistoryRow,
    Influence,
    ModelInfo,
    Numerics,
    PolicyRecord,
    Provenance,
    Refits,
    Runtime,
    Saturation,
    Scope,
    SignOff,
    Stability,
    StabilityFinding,
    TrainingFit,
)

__all__ = ["RunDocument", "SCHEMA", "FINDINGS_KEYS", "load_run", "run_document", "findings_of", "run_json_schema",
           "RunStatus", "FairnessFindings", "PrivacyFindings", "DataQualityFindings", "Check", "DataInfo", "Fitting",
           "HistoryRow", "Influence", "ModelInfo", "Numerics", "PolicyRecord", "Provenance", "Refits", "Runtime",
           "Saturation", "Scope", "SignOff", "Stability", "StabilityFinding", "TrainingFit"]
