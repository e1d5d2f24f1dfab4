"""The run document (``run.json``): one typed model of everything a run found and how.

Built-in plugins' findings are typed by the model each plugin declares (``AuditPlugin.findings_model``);
third-party plugins' findings are kept, JSON-safe, under ``plugins`` (name → findings).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from ..audits.fairness.findings import FairnessFindings
from ..audits.privacy.findings import PrivacyFindings
from ..audits.quality_findings import DataQualityFindings
from ..audits.typed import Num, Part
from .parts import (
    Check,
    DataInfo,
    HistoryRow,
    Influence,
    ModelInfo,
    Numerics,
    PolicyRecord,
    Provenance,
    Runtime,
    Scope,
    SignOff,
)

#: the schema name written into every run document; new optional fields do not change it
SCHEMA = "auditkit.run/1"

#: the run's top-level keys that go into ``findings.json`` (the machine-readable findings): the verdict, the
#: checks, the plugins' findings, the influence settings and stability, and what was audited (model, data,
#: policy, provenance) so that a pipeline reading findings.json knows which model and data they describe
FINDINGS_KEYS = ("schema", "report_id", "created_utc", "status", "checks", "fairness", "privacy", "data_quality",
                 "influence", "model", "data", "policy", "provenance", "plugins")

RunStatus = Literal["pass", "pass_with_warnings", "fail", "incomplete"]


class RunDocument(Part):
    """Everything a run found and how it was run; what ``run.json`` holds (schema ``auditkit.run/1``).

    ``fairness``, ``privacy``, ``data_quality``: the built-in plugins' findings (None: not audited);
    ``plugins``: third-party plugins' findings by plugin name. ``checks`` and ``status``: the policy's
    verdict; ``key_figures``: the figures kept in the history store; ``history``: earlier audits of the same
    model. ``numerics`` and ``influence.fitting`` hold the numerical facts the report's limitations are
    composed from; ``limitations`` only notes that cannot be derived from facts.
    """

    schema_: Literal["auditkit.run/1"] = Field(SCHEMA, alias="schema")
    report_id: str
    created_utc: str
    trigger: str = "manual"
    status: RunStatus
    auditkit_version: str
    scope: Scope = Scope()
    model: ModelInfo
    data: DataInfo
    influence: Influence
    fairness: FairnessFindings | None = None
    privacy: PrivacyFindings | None = None
    data_quality: DataQualityFindings | None = None
    plugins: dict[str, dict[str, Any]] = Field(default_factory=dict)
    checks: list[Check] = []
    policy: PolicyRecord | None = None
    key_figures: dict[str, Num] = Field(default_factory=dict)
    limitations: list[str] = []
    history: list[HistoryRow] = []
    sign_off: SignOff = SignOff()
    provenance: Provenance
    runtime: Runtime | None = None
    numerics: Numerics | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def to_json_dict(self) -> dict:
        """The document as ``run.json`` holds it: JSON-safe, the fields it was given (an optional field
        never set is left out, so an older document keeps its shape)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


def run_json_schema() -> dict:
    """The JSON Schema of the run document (``auditkit schema --run``)."""
    return RunDocument.model_json_schema(by_alias=True)
