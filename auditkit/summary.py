"""What a command prints when it ends: a typed summary, shown as a few lines for people or, with ``--json``,
as one JSON object on stdout for scripts (``auditkit run audit.yaml --out DIR --json | jq .status``).

Each summary is a pydantic model; ``RunSummary.model_json_schema()`` is its JSON Schema. Every figure is
copied from the run document (``run.json``; ``findings.json`` holds the same status and checks), so a script
reading the summary and one reading the files see the same numbers.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .rundoc import Check, RunDocument

Status = Literal["pass", "pass_with_warnings", "fail", "incomplete"]
BANNER = {"pass": "PASS", "pass_with_warnings": "PASS WITH WARNINGS", "fail": "FAIL", "incomplete": "INCOMPLETE"}


def plain(text: str, status: str) -> str:
    """The banner without colour."""
    return text


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CheckCounts(Strict):
    """How many policy checks ended in each status."""

    passed: int
    warned: int
    failed: int
    insufficient_data: int = Field(description="checks without enough data to decide")


class CheckResult(Strict):
    """A check that failed or warned: its rule, where it applies, the measured value and the bound."""

    status: Literal["fail", "warn"]
    rule: str
    metric: str
    scope: str = Field(description="attribute/group the check applies to ('' for the whole population)")
    value: float | None = Field(description="the measured value; None when it could not be measured")
    bound: str


class ModelId(Strict):
    name: str
    version: str


class PrivacyCount(Strict):
    flagged: int = Field(description="training records flagged at the false-alarm budget")
    budget: float = Field(description="the false-positive rate allowed on non-members")


class QualityCount(Strict):
    worth_inspecting: int = Field(description="training records whose self-influence ranking marks them as suspects")
    suspects_listed: int = Field(description="suspects listed in the report and the flagged-records file")


class RunSummary(Strict):
    """``auditkit run``: the audit's outcome and where its outputs are."""

    command: Literal["run"] = "run"
    report_id: str
    status: Status
    exit_code: int
    model: ModelId
    policy: str | None
    checks: CheckCounts
    failed_or_warned: list[CheckResult]
    privacy: PrivacyCount | None
    data_quality: QualityCount | None
    paths: dict[str, str] = Field(description="output file name → path")
    seconds: float

    def lines(self, *, banner=plain) -> list[str]:
        """The summary for people, a few lines; ``banner(text, status)`` may colour the PASS/FAIL word."""
        c = self.checks
        lines = [f"auditkit {self.report_id}: {banner(BANNER[self.status], self.status)}",
                 f"  model {self.model.name} {self.model.version}; policy {self.policy or 'none'}: {c.passed} passed, "
                 f"{c.warned} warned, {c.failed} failed, {c.insufficient_data} without enough data"]
        for check in self.failed_or_warned:
            value = "n/a" if check.value is None else f"{check.value:.3g}"
            lines.append(f"  {check.status.upper():4s} {check.rule} [{check.scope}]: {value} (bound {check.bound})")
        if self.privacy:
            lines.append(f"  privacy: {self.privacy.flagged} training record(s) flagged at a false-alarm budget of "
                         f"{self.privacy.budget:g}")
        if self.data_quality:
            lines.append(f"  data quality: {self.data_quality.worth_inspecting} record(s) worth inspecting")
        private = self.paths["flagged_records.csv"] + (f", all records' scores: {self.paths['record_scores.csv']}"
                                                      if "record_scores.csv" in self.paths else "") + (
            f", suppressed cells: {self.paths['suppressed_cells.json']}" if "suppressed_cells.json" in self.paths
            else "")
        lines.append(f"  report: {self.paths['report.pdf']}  (flagged records, private: {private})")
        lines.append(f"  {self.seconds:.1f} s")
        return lines


class TrainingFit(Strict):
    """The stationarity check: the stated objective (mean loss + L2) and its gradient at the given weights, on the
    training records as featurized (:func:`auditkit.inputs.check_stationarity`)."""

    n: int = Field(description="training records the check ran on")
    loss: float = Field(description="mean loss on the training records")
    objective: float = Field(description="mean loss + L2 at the given weights")
    accuracy: float | None
    grad_norm: float = Field(description="norm of the objective's gradient at the given weights")
    reference_norm: float = Field(description="the same norm with the labels shuffled (the scale)")
    relative: float = Field(description="grad_norm over the same norm with the labels shuffled")
    threshold: float = Field(description="relative above which the weights are not taken for a minimum")
    stationary: bool
    allowed: bool = Field(description="model.allow_non_stationary was set (the run proceeds whatever relative is)")


class ValidateSummary(Strict):
    """``auditkit validate``: the configuration, data and model were read and are usable."""

    command: Literal["validate"] = "validate"
    config: str
    status: Literal["valid"] = "valid"
    exit_code: int = 0
    model: ModelId
    records: dict[str, int] = Field(description="split name → records")
    audits: list[str]
    policy: str | None
    featurizer: str = Field(description="how the tables' columns became the model's inputs, and why")
    training_fit: TrainingFit

    def lines(self, *, banner=None) -> list[str]:
        records = ", ".join(f"{name} {n}" for name, n in self.records.items())
        fit = self.training_fit
        accuracy = "" if fit.accuracy is None else f", accuracy {fit.accuracy:.4g}"
        verdict = "" if fit.stationary else f" (above {fit.threshold:g}: allowed by model.allow_non_stationary)"
        return [f"{self.config}: valid (model {self.model.name} {self.model.version}; records {records}; audits "
                f"{', '.join(self.audits) or 'none'}; policy {self.policy or 'none'})",
                f"  featurizer: {self.featurizer}",
                f"  training records as the audit sees them: loss {fit.loss:.4g}{accuracy}; gradient norm of the "
                f"objective {fit.grad_norm:.3g}, {fit.relative:.3g} of its size with shuffled labels{verdict}"]


class RenderSummary(Strict):
    """``auditkit render``: a saved run's report written again from its run.json."""

    command: Literal["render"] = "render"
    report_id: str
    run_status: Status = Field(description="the status of the run that was re-rendered (unchanged)")
    exit_code: int = 0
    paths: dict[str, str]

    def lines(self, *, banner=None) -> list[str]:
        return [f"re-rendered {self.paths['report.pdf']}"]


class PolicyList(Strict):
    """``auditkit policies``: the names of the built-in policies."""

    policies: list[str]


class ErrorSummary(Strict):
    """A command that stopped: the one-line message also printed on stderr, and the exit code."""

    error: str
    exit_code: int


def _scope(check: Check) -> str:
    return "/".join(str(s) for s in (check.attribute, check.group) if s)


def run_summary(run: RunDocument, paths: dict, *, exit_code: int, seconds: float) -> RunSummary:
    """The summary of a finished run, from its run document and output paths."""
    count = {s: sum(c.status == s for c in run.checks) for s in ("pass", "warn", "fail", "insufficient_data")}
    privacy, quality = run.privacy, run.data_quality
    return RunSummary(
        report_id=run.report_id, status=run.status, exit_code=exit_code,
        model=ModelId(name=run.model.name, version=run.model.version),
        policy=run.policy.name if run.policy is not None else None,
        checks=CheckCounts(passed=count["pass"], warned=count["warn"], failed=count["fail"],
                           insufficient_data=count["insufficient_data"]),
        failed_or_warned=[CheckResult(status=c.status, rule=c.rule, metric=c.metric, scope=_scope(c),
                                      value=c.value, bound=c.bound)
                          for c in run.checks if c.status in ("fail", "warn")],
        privacy=PrivacyCount(flagged=privacy.n_flagged, budget=privacy.budget) if privacy else None,
        data_quality=QualityCount(worth_inspecting=quality.worth_inspecting,
                                  suspects_listed=len(quality.suspects)) if quality else None,
        paths={name: str(path) for name, path in paths.items()}, seconds=round(seconds, 2))


def render_summary(run: RunDocument, paths: dict) -> RenderSummary:
    """The summary of a re-rendered run."""
    return RenderSummary(report_id=run.report_id, run_status=run.status,
                         paths={name: str(path) for name, path in paths.items()})
