"""Policy files: the pydantic schema of a rule, loading (YAML, safe loader only) and validation.

A policy is a YAML mapping ``{policy, title, description, references, rules}``; each rule names a metric id
(catalogue in :mod:`auditkit.policy.observations`), a scope, a bound, a severity, a minimum n, how an
interval straddling the bound is decided, what a rule without enough data does, and the requirement it
implements. The format is documented in ``auditkit/policies/README.md``. Unknown keys are refused, and
every error is one :class:`~auditkit.errors.InputError` line naming the file, the rule, the field and the fix.
"""

from __future__ import annotations

import difflib
import hashlib
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from auditkit.decisions import DecisionKind
from auditkit.errors import InputError
from auditkit.yamlload import UniqueKeyLoader

from .observations import EXAMPLE_IDS, metric_info


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Scope(_Strict):
    """Which observations a rule applies to: ``attributes``/``groups`` ``None`` = all, a list = only those.
    ``overall`` (attribute-less observations, e.g. the membership AUC on all records) defaults to true when
    ``attributes`` is ``None`` or ``[]`` (so ``attributes: []`` means the overall value only), false otherwise."""

    attributes: list[str] | None = None
    groups: list[str] | None = None
    overall: bool | None = None


class AbsoluteBound(_Strict):
    """``min ≤ value ≤ max`` (either may be omitted, not both)."""

    kind: Literal["absolute"]
    min: float | None = None
    max: float | None = None


class RatioBand(_Strict):
    """``low ≤ value ≤ high``."""

    kind: Literal["ratio_band"]
    low: float
    high: float


class RelativeToReference(_Strict):
    """``|value − reference_value| ≤ max_difference`` (per-group fairness metrics)."""

    kind: Literal["relative_to_reference"]
    max_difference: float = Field(ge=0)


class RelativeToPrevious(_Strict):
    """``−max_decrease ≤ value − previous_value ≤ max_increase`` against the same observation last audit."""

    kind: Literal["relative_to_previous"]
    max_increase: float | None = Field(None, ge=0)
    max_decrease: float | None = Field(None, ge=0)


Bound = Annotated[AbsoluteBound | RatioBand | RelativeToReference | RelativeToPrevious, Field(discriminator="kind")]
BOUND_KINDS = {"absolute": AbsoluteBound, "ratio_band": RatioBand, "relative_to_reference": RelativeToReference,
               "relative_to_previous": RelativeToPrevious}


class Rule(_Strict):
    """One rule; defaults: scope everything, no minimum n, straddling intervals warn, too little data warns,
    every kind of decision. ``applies_to`` (kinds of :mod:`auditkit.decisions`): the rule is checked only when the
    run's ``report.decision_kind`` is one of them, else it is listed as not applicable."""

    id: str = Field(min_length=1)
    metric: str
    scope: Scope = Scope()
    bound: Bound
    severity: Literal["fail", "warn"]
    min_n: int | None = Field(None, ge=1)
    if_straddles: Literal["warn", "pass", "fail"] = "warn"
    when_insufficient: Literal["warn", "fail"] = "warn"
    requirement: str = Field(min_length=1)
    description: str | None = None
    applies_to: list[DecisionKind] | None = Field(None, min_length=1)

    @field_validator("scope", mode="before")
    @classmethod
    def _null_scope(cls, v):
        return {} if v is None else v

    def to_dict(self) -> dict:
        return self.model_dump(mode="json", exclude_none=True)


class Policy(_Strict):
    """A validated policy. ``source`` (path or ``builtin:NAME``) and ``sha256`` (of the file bytes) are set
    by :func:`load_policy`."""

    policy: str = Field(min_length=1)
    title: str = Field(min_length=1)
    description: str = ""
    references: list[str] = []
    flag_budget: float | None = Field(None, gt=0, lt=1, description="false-positive budget of the privacy flags "
                                                                    "(expected share of non-members flagged)")
    rules: list[Rule] = Field(min_length=1)
    _source: str | None = PrivateAttr(None)
    _sha256: str | None = PrivateAttr(None)

    @property
    def name(self) -> str:
        return self.policy

    @property
    def source(self) -> str | None:
        return self._source

    @property
    def sha256(self) -> str | None:
        return self._sha256

    def to_dict(self) -> dict:
        """The ``policy`` entry of the run document."""
        return {"name": self.policy, "title": self.title, "description": self.description,
                "flag_budget": self.flag_budget,
                "references": list(self.references), "source": self._source, "sha256": self._sha256,
                "rules": [r.to_dict() for r in self.rules]}


# ---- loading ----

def _builtin_dir():
    return resources.files("auditkit").joinpath("policies")


def builtin_policies() -> list[str]:
    """Names of the built-in policies (``auditkit/policies/*.yaml``), sorted."""
    return sorted(p.name[:-5] for p in _builtin_dir().iterdir() if p.name.endswith(".yaml"))


def _resolve(source) -> tuple[str, bytes]:
    """``(label, bytes)`` of a policy file path or a built-in name (``builtin:NAME``, or ``NAME`` when no such file)."""
    text = str(source)
    name = text[len("builtin:"):] if text.startswith("builtin:") else None
    if name is None:
        path = Path(text)
        if path.is_file():
            return text, path.read_bytes()
        if path.exists():
            raise InputError(f"policy {text}: is not a file; give a policy YAML file or a built-in name "
                             f"({', '.join(builtin_policies())})")
        name = text
    if name not in builtin_policies():
        what = "no built-in policy" if text.startswith("builtin:") else "no such file and no built-in policy"
        raise InputError(f"policy {text}: {what} of that name; give a YAML file or one of: "
                         f"{', '.join(builtin_policies())}")
    return f"builtin:{name}", _builtin_dir().joinpath(f"{name}.yaml").read_bytes()


def policy_sha256(policy_or_path) -> str:
    """SHA-256 (hex) of the policy file's bytes; accepts a loaded :class:`Policy`, a path or a built-in name."""
    if isinstance(policy_or_path, Policy):
        if policy_or_path.sha256 is None:
            raise InputError("policy_sha256: this policy was not loaded from a file; pass it to load_policy first")
        return policy_or_path.sha256
    return hashlib.sha256(_resolve(policy_or_path)[1]).hexdigest()


class _PolicyLoader(UniqueKeyLoader):
    """The safe, duplicate-refusing loader; the policy's own message says how to fix the file."""

    hint = ""


def load_policy(source) -> Policy:
    """Load and validate a policy from a YAML file path or a built-in name; raises :class:`InputError`."""
    label, data = _resolve(source)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"policy {label}: is not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    try:
        doc = yaml.load(text, Loader=_PolicyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(getattr(e, "problem", None) or e).split())
        raise InputError(f"policy {label}: not valid YAML{where}: {problem}; only plain YAML is accepted "
                         "(no !!python tags), fix the syntax") from None
    policy = parse_policy(doc, source=label)
    policy._sha256 = hashlib.sha256(data).hexdigest()
    return policy


def parse_policy(doc, *, source: str = "<dict>") -> Policy:
    """Validate a policy already parsed into Python objects (the mapping a YAML file holds)."""
    if not isinstance(doc, dict):
        raise InputError(f"policy {source}: the file must be a YAML mapping with keys policy, title, rules; "
                         f"got {type(doc).__name__}")
    try:
        policy = Policy.model_validate(doc)
    except ValidationError as e:
        raise InputError(_message(source, doc, e)) from None
    ids = [r.id for r in policy.rules]
    for i, rule in enumerate(policy.rules):
        if rule.id in ids[:i]:
            raise InputError(f"policy {source}: rule '{rule.id}': id used twice; give each rule its own id")
        problem = _semantic(rule)
        if problem:
            raise InputError(f"policy {source}: rule '{rule.id}': {problem}")
    policy._source = source
    return policy


def _semantic(rule: Rule) -> str | None:
    """What is wrong with a schema-valid rule (unknown metric, scope or bound that cannot apply), or None."""
    info = metric_info(rule.metric)
    if info is None:
        close = difflib.get_close_matches(rule.metric, EXAMPLE_IDS, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return (f"field 'metric': '{rule.metric}' is not a known metric id; {hint}"
                "see the metric catalogue in auditkit/policies/README.md")
    match, _, level = info
    if match.groupdict().get("fpr") is not None and not 0 < float(match.group("fpr")) < 1:
        return f"field 'metric': false-positive rate {match.group('fpr')} must lie strictly between 0 and 1"
    if rule.scope.groups is not None and "group" not in level:
        return (f"field 'scope.groups': metric {rule.metric} has one value per {level.replace('+', ' and ')}, "
                "not per group; remove scope.groups")
    b = rule.bound
    if isinstance(b, AbsoluteBound):
        if b.min is None and b.max is None:
            return "field 'bound': an absolute bound needs min, max or both"
        if b.min is not None and b.max is not None and b.min > b.max:
            return f"field 'bound': min {b.min:g} is above max {b.max:g}; swap them"
    if isinstance(b, RatioBand) and b.low > b.high:
        return f"field 'bound': low {b.low:g} is above high {b.high:g}; swap them"
    if isinstance(b, RelativeToPrevious) and b.max_increase is None and b.max_decrease is None:
        return "field 'bound': a relative_to_previous bound needs max_increase, max_decrease or both"
    if isinstance(b, RelativeToReference) and not (rule.metric.startswith("fairness.") and level == "group"
                                                    and rule.metric.count(".") == 1 and rule.metric != "fairness.ece"):
        return (f"field 'bound.kind': relative_to_reference needs a per-group fairness metric such as "
                f"fairness.tpr; {rule.metric} has no reference group")
    return None


def _message(source: str, doc: dict, err: ValidationError) -> str:
    """One line for the first pydantic error: file, rule, field, problem and fix."""
    e = sorted(err.errors(), key=lambda x: x["type"] != "extra_forbidden")[0]  # a misspelt key explains a missing one
    loc = list(e["loc"])
    where, in_rule = f"policy {source}", False
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        raw = (doc.get("rules") or [None] * (loc[1] + 1))[loc[1]]
        rid = raw.get("id") if isinstance(raw, dict) else None
        where += f": rule '{rid}'" if isinstance(rid, str) and rid else f": rule #{loc[1] + 1}"
        loc, in_rule = loc[2:], True
    if len(loc) >= 2 and loc[0] == "bound" and loc[1] in BOUND_KINDS:
        model, loc = BOUND_KINDS[loc[1]], ["bound", *loc[2:]]
    else:
        model = {(): Rule if in_rule else Policy, ("scope",): Scope}.get(tuple(loc[:-1]), None)
    field = ".".join(str(p) for p in loc)
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    kind = e["type"]
    if kind == "extra_forbidden":
        allowed = f"; allowed: {', '.join(model.model_fields)}" if model else ""
        return f"{where}: unknown field '{field}'{allowed}{more}"
    if kind == "missing":
        return f"{where}: missing field '{field}'; add it{more}"
    if kind == "union_tag_invalid":
        return (f"{where}: field '{field}.kind' is {e['input'].get('kind')!r}; use one of: "
                f"{', '.join(BOUND_KINDS)}{more}")
    if kind == "union_tag_not_found":
        return f"{where}: field '{field}' has no 'kind'; add kind: one of {', '.join(BOUND_KINDS)}{more}"
    if kind == "literal_error":
        return f"{where}: field '{field}' is {e['input']!r}; use one of: {e['ctx']['expected']}{more}"
    msg = e["msg"][0].lower() + e["msg"][1:]
    return f"{where}: field '{field}' is {e['input']!r}: {msg}{more}"
