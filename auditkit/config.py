"""The schema of ``audit.yaml``: one file says what to audit, how, against which policy, for whom.

::

    report:    who, what for, who signs (text only)
    model:     builder "package.module:function" + weights file (loaded with weights_only=True), loss, l2
               (checked: the weights must be a minimum of mean loss + L2 on the featurized training records)
    data:      train / test / holdout tables (or one table split by seed), target, ids, sensitive attributes,
               featurizer (none: features as given; tabular: standardise + one-hot; unset: chosen by the columns)
    influence: solver, damping ("auto": none unless the Hessian is singular), stability check settings
    audits:    plugin name → its options (validated by the plugin itself)
    policy:    a policy file or a built-in policy name
    history:   where past runs are recorded (SQLite), or false
    backend:   where the influence engine's chunk work runs: in process (local) or on a Dask cluster

Unknown keys are refused everywhere; ``auditkit schema`` prints the JSON Schema and ``auditkit validate``
checks a file without running it. Relative paths are read relative to the configuration file.

**Naming code runs code.** ``model.builder``, ``model.train_fn`` and ``data.featurizer`` name Python
functions that auditkit imports and calls: a configuration file is as trusted as the code it names.
Policies never name code, and plugins are found by registered name only. Their modules are imported from
the configuration file's folder as well as the current directory (then the rest of ``sys.path``), the way
relative file paths are read from the configuration file's folder.
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from .decisions import DecisionKind
from .errors import InputError, shown
from .influence.solvers import SOLVERS, solver_options
from .yamlload import YAMLLimitError, safe_load

CODE_REF = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"
#: seeds are unsigned 64-bit integers (torch's generators take no more)
SEED_MAX = 2**64 - 1
#: built-in values of data.featurizer (anything else names code)
FEATURIZERS = ("none", "passthrough", "tabular")
#: pydantic names the member of a union that failed in the error location ("model.l2.float"): not a key
UNION_MEMBER = re.compile(r"^(float|int|str|bool|none|(dict|list|literal|function-\w+)\[.*\])$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: the influence methods, from the solver registry (:data:`auditkit.influence.solvers.SOLVERS`)
METHODS = tuple(SOLVERS)
Method = Literal[METHODS]
#: method → the pydantic model of its ``influence.options``, made from the solver's option fields and help
SOLVER_OPTIONS: dict[str, type[BaseModel]] = {
    method: create_model(f"{method.capitalize()}Options", __config__=ConfigDict(extra="forbid", frozen=True),
                         __doc__=f"Options of influence method {method!r}.",
                         **{o.name: (o.type, Field(o.default, description=o.help)) for o in solver_options(method)})
    for method in METHODS}


def check_solver_options(method: str, options: dict) -> dict:
    """``options`` of ``method`` validated against :data:`SOLVER_OPTIONS`: the values given, as their types;
    a ValueError naming the first bad option otherwise."""
    model = SOLVER_OPTIONS[method]
    try:
        return model.model_validate(options).model_dump(exclude_unset=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"] if not UNION_MEMBER.match(str(p)))
        if first["type"] == "extra_forbidden":
            raise ValueError(f"unknown option {name!r} of method {method!r}: allowed options are "
                             f"{', '.join(model.model_fields)} (see docs/methods.md)") from None
        raise ValueError(f"option {name!r} of method {method!r}: {first['msg']} (got {shown(first.get('input'))})") \
            from None


class SignOff(Strict):
    role: str
    name: str = ""


class ReportConfig(Strict):
    """Report metadata: shown on the cover, in the scope section and in the sign-off block."""

    organisation: str = ""
    system: str = Field("", description="the AI system the model belongs to")
    intended_use: str = ""
    population: str = Field("", description="the people the system is used on")
    decision: Literal["assistive", "punitive"] = Field(
        "assistive", description="assistive (a benefit is granted) or punitive (a harm is imposed): decides "
                                 "which error-rate parity matters most")
    decision_kind: DecisionKind = Field(
        "other", description="the kind of decision the model supports: diagnosis, triage or screening (error-rate "
                             "parity and calibration fit), selection, lending or hiring (selection-rate ratios fit "
                             "as well), other; policy rules with applies_to are checked only for their kinds")
    decision_description: str = ""
    frameworks: list[str] = Field(default_factory=list, description="regulations or standards claimed")
    sign_off: list[SignOff] = Field(default_factory=lambda: [SignOff(role="Model owner"),
                                                             SignOff(role="Independent reviewer")])
    independence: str = ("The reviewer signing below did not take part in building or training the model "
                         "audited here.")
    out_of_scope: list[str] = Field(default_factory=list, description="uses the model must not be put to (datasheet)")
    recommendations: list[str] = Field(default_factory=list, description="the model owner's recommendations for "
                                       "deployment (shown with the executive summary's next actions)")


class ModelConfig(Strict):
    """The trained model: built by user code, filled from a weights file."""

    name: str = Field(..., min_length=1)
    version: str = "unversioned"
    builder: str | None = Field(None, pattern=CODE_REF,
                                description="package.module:function returning an nn.Module (required, except when "
                                            "the model is passed to auditkit.audit(model=...) as an object)")
    builder_args: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the builder")
    weights: str | None = Field(None, min_length=1, description="state dict saved with torch.save (loaded with "
                                "weights_only=True); omit it when the builder returns the trained model itself")
    loss: Literal["cross_entropy", "bce"] = "cross_entropy"
    l2: float | dict[str, float] = Field(
        0.0, description="the L2 term of the training objective: a number c for (c/2)‖θ‖², or a mapping of "
                         "parameter name (or prefix) to its own coefficient, e.g. {weight: 0.002} for an "
                         "unpenalised intercept (parameters not named get 0)")
    dtype: Literal["float64", "float32"] = "float64"
    train_fn: str | None = Field(
        None, description="'warm_start' (auditkit retrains the objective from the trained weights) or "
                          "package.module:function(model, X, y) -> model; enables verification by retraining")
    previous_version: str | None = None
    allow_non_stationary: bool = Field(
        False, description="audit even when the weights are not a minimum of the stated objective (mean loss + L2) "
                           "on the training records as featurized; the report then states it as a limitation")

    @field_validator("l2")
    @classmethod
    def _l2(cls, value):
        values = value.values() if isinstance(value, dict) else [value]
        if any(v < 0 for v in values):
            raise ValueError("coefficients must be ≥ 0")
        return value

    @field_validator("train_fn")
    @classmethod
    def _train_fn(cls, value):
        if value is not None and value != "warm_start" and not re.match(CODE_REF, value):
            raise ValueError("must be 'warm_start' or package.module:function")
        return value


class SensitiveConfig(Strict):
    """A sensitive attribute: a column, or bands of a numeric column (``from`` + ``bands``)."""

    column: str = Field(..., min_length=1)
    how_obtained: str = Field("", description="how the attribute was collected (self-reported, inferred, ...)")
    from_column: str | None = Field(None, alias="from", description="numeric column to cut into bands")
    bands: list[float] | None = Field(None, description="band edges, e.g. [40, 60] → <40, 40-59, 60+")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _bands(self):
        if (self.from_column is None) != (self.bands is None):
            raise ValueError("'from' and 'bands' go together: give both to derive bands, or neither")
        edges = self.bands or []
        if not all(math.isfinite(e) for e in edges) or any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
            raise ValueError(f"bands {edges} must be finite and strictly increasing, e.g. [40, 60]: fix 'bands'")
        return self


class SplitConfig(Strict):
    """Split one table at random (seeded): fractions of test and holdout, the rest is train."""

    test: float = Field(0.25, ge=0, lt=1, description="0 for an audit without fairness (privacy, data quality)")
    holdout: float = Field(0.0, ge=0, lt=1)
    seed: int | None = Field(None, ge=0, le=SEED_MAX, description="seed of the split: 0 to 2**64-1 (unset: derived "
                             "from the run's seed)")

    @model_validator(mode="after")
    def _sum(self):
        if self.test + self.holdout >= 1:
            raise ValueError("test + holdout must leave records for training (sum < 1)")
        return self


class DataConfig(Strict):
    """Where the records are and which columns are what."""

    train: str | None = None
    test: str | None = None
    holdout: str | None = None
    table: str | None = Field(None, description="one table to split (instead of train/test/holdout)")
    split: SplitConfig | None = None
    target: str
    favourable: str | int | float | bool | None = None
    id_column: str | None = None
    features: list[str] | None = None
    categorical: list[str] = Field(default_factory=list)
    featurizer: str | None = Field(
        None, description="none (or passthrough): the feature columns as given, numbers already encoded as the model "
                          "was trained on; tabular: auditkit's TabularFeaturizer (standardise, one-hot); "
                          "package.module:function returning an object with fit/transform. Unset: tabular when a "
                          "column needs it (text, missing values, 'categorical', numbers neither 0/1 nor "
                          "standardised), else none")
    sensitive: list[SensitiveConfig] = Field(default_factory=list, description="attributes to audit fairness over "
                                             "(needed by the fairness audit; optional for privacy and data quality)")
    label_definition: str = Field("", description="what the target means and how it was recorded (datasheet)")
    proxies: dict[str, str] = Field(default_factory=dict, description="feature → what it may stand in for, e.g. "
                                    "{dataset: 'the hospital (site)'} (datasheet)")

    @field_validator("featurizer")
    @classmethod
    def _featurizer(cls, value):
        if value is not None and value not in FEATURIZERS and not re.match(CODE_REF, value):
            raise ValueError("must be none, passthrough, tabular or package.module:function")
        return value

    @model_validator(mode="after")
    def _sources(self, info: ValidationInfo):
        if "data" in (info.context or {}).get("in_memory", ()):
            return self         # the tables are DataFrames given to auditkit.audit(data=...), checked there
        if self.table is not None:
            if self.train or self.test or self.holdout:
                raise ValueError("give either 'table' (+ 'split') or 'train'/'test'/'holdout' files, not both")
            if self.split is None:
                raise ValueError("'table' needs 'split' (fractions of test and holdout records and a seed)")
        elif not self.train:
            raise ValueError("name the 'train' table (with 'test' and/or 'holdout'), or one 'table' with a 'split'")
        return self


class StabilityConfig(Strict):
    """How the stability of the key findings is checked: damping × factors, and a second solver."""

    damping_factors: list[float] = Field(default_factory=lambda: [0.1, 10.0])
    second_solver: Literal[("auto", *(m for m in METHODS if m != "auto"), "none")] = Field(
        "auto", description="auto: beside exact, EK-FAC for a binary logistic regression and none for other "
                            "models (exact is the reference); beside EK-FAC or K-FAC, exact up to 12,000 "
                            "parameters, else the other Kronecker method; beside other methods, EK-FAC for models "
                            "made of nn.Linear layers (fast at any n), else CG")
    top_k: int = Field(10, ge=1, le=1_000_000)
    robust_agreement: float = Field(0.7, gt=0, le=1, description="top-k overlap at or above which a finding "
                                                                 "is called robust")


class InfluenceConfig(Strict):
    """How influence is computed: the solver and its options, damping, chunk size, the gradient cache and the
    stability check of the key findings."""

    method: Method = "exact"
    options: dict[str, Any] = Field(default_factory=dict, description="options of the method, e.g. {rank: 50} "
                                    "for arnoldi, {tol: 1e-8} for cg (see docs/methods.md); checked against the "
                                    "method's options when the configuration is loaded: " + "; ".join(
                                        f"{m}: {', '.join(SOLVER_OPTIONS[m].model_fields)}" for m in METHODS))
    damping: float | Literal["auto"] = "auto"
    chunk_size: int = Field(256, ge=1, le=2**31 - 1)
    cache: str | None = Field(None, description="folder of an on-disk cache of per-record training gradients, "
                                                "keyed by hashes of model and data (reused by later runs)")
    stability: StabilityConfig = StabilityConfig()

    @field_validator("options")
    @classmethod
    def _options(cls, value: dict, info: ValidationInfo) -> dict:
        method = info.data.get("method")
        return value if method is None else check_solver_options(method, value)

    @field_validator("damping")
    @classmethod
    def _damping(cls, value):
        if value != "auto" and value < 0:
            raise ValueError("must be 'auto' or a number ≥ 0")
        return value


class BackendConfig(Strict):
    """Where the influence engine's chunk-level work runs: in this process, or on the workers of a Dask cluster
    (an existing one at ``scheduler``, or a local one of ``workers`` processes)."""

    kind: Literal["local", "dask"] = "local"
    scheduler: str | None = Field(None, description="address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786")
    workers: int | None = Field(None, ge=1, le=1024, description="worker processes of a local Dask cluster (when no "
                                                                 "scheduler is given; default: one per CPU core)")
    staging: str | None = Field(None, description="folder where the training records are written as Parquet for the "
                                                  "workers to read; every worker must see it under the same path "
                                                  "(default: the system's temporary folder, enough on one machine)")

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, value):
        if value is not None and not re.match(r"^[a-z][a-z0-9+]*://\S+$", value):
            raise ValueError("must be a scheduler address like tcp://host:8786")
        return value

    @model_validator(mode="after")
    def _kind(self):
        if self.kind == "local" and (self.scheduler or self.workers or self.staging):
            raise ValueError("scheduler, workers and staging need kind 'dask': set kind: dask, or remove them")
        if self.scheduler is not None and self.workers is not None:
            raise ValueError("give scheduler (an existing cluster) or workers (a local cluster), not both")
        return self


class InMemoryInputs(BaseModel):
    """Tables and a model passed to ``auditkit.audit(data=..., model=...)`` as Python objects: they replace the
    configuration's table files (``tables``: split name → pandas DataFrame; every table of ``data``) and its
    model loading (``model``: a torch ``nn.Module``; builder and weights are then not used). Checked and used
    by :mod:`auditkit.inputs`; never part of the configuration's text, schema or hash."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    tables: dict[str, Any] | None = None
    model: Any = None


class AuditConfig(Strict):
    """The whole audit.yaml."""

    report: ReportConfig = ReportConfig()
    model: ModelConfig
    data: DataConfig
    influence: InfluenceConfig = InfluenceConfig()
    audits: dict[str, dict[str, Any] | None] = Field(
        default_factory=lambda: {"fairness": {}, "privacy": {}, "data_quality": {}},
        description="plugin name → options; each plugin validates its own options")
    policy: str | list[str] | None = Field(None, description="a policy YAML file or a built-in policy name, or a "
                                                              "list of them (their rules are checked together)")
    history: str | bool = Field(True, description="SQLite file of past runs (true: history.sqlite beside the "
                                                  "output directory; false: no history)")
    seed: int = Field(0, ge=0, le=SEED_MAX, description="the seed of every random choice of the run: 0 to 2**64-1")
    backend: BackendConfig = BackendConfig()

    # Set by load_config and auditkit.audit, not by the file.
    base_dir: Path = Field(default=Path("."), exclude=True)
    text: str = Field(default="", exclude=True)
    inputs: InMemoryInputs | None = Field(default=None, exclude=True)

    def path(self, value: str) -> Path:
        """A path from the configuration, relative to the configuration file."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    @property
    def redacted_text(self) -> str:
        """The file's text with passwords in URLs (``scheme://user:password@host``) replaced by ``***``."""
        return re.sub(r"(://[^:/@\s]+):[^@\s]+@", r"\1:***@", self.text)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def describe_error(exc: ValidationError, where: str) -> str:
    """One line: where, the first problem's location and message, and the value received."""
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"] if not UNION_MEMBER.match(str(p))) or "(top level)"
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        return f"{where}: unknown key {loc!r}: remove it or fix its spelling (see `auditkit schema`)"
    if first["type"] == "missing":
        return f"{where}: {loc} is required but missing: add it (see `auditkit schema`)"
    got = first.get("input")
    value = "" if isinstance(got, dict) else f" (got {shown(got)})"
    return f"{where}: {loc}: {msg}{value}"


def parse_config(data: Any, *, where: str = "configuration", base_dir: Path | None = None,
                 text: str = "", in_memory: frozenset[str] = frozenset()) -> AuditConfig:
    """Validate a parsed YAML/JSON document as an :class:`AuditConfig`. ``in_memory``: what is given as Python
    objects instead (``"data"``: the tables, ``"model"``: the model), so the document need not name files for
    it (``data.train``/``test``/``table``) or a ``model.builder``."""
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a mapping of sections (model, data, ...), got "
                         f"{type(data).__name__}: see `auditkit schema`")
    internal = sorted(set(data) & {"base_dir", "text", "inputs"})
    if internal:
        raise InputError(f"{where}: unknown key {internal[0]!r}: remove it or fix its spelling (see `auditkit schema`)")
    try:
        config = AuditConfig.model_validate(data, context={"in_memory": in_memory})
    except ValidationError as exc:
        raise InputError(describe_error(exc, where)) from None
    if config.model.builder is None and "model" not in in_memory:
        raise InputError(f"{where}: model.builder is required but missing: add it (see `auditkit schema`)")
    return config.model_copy(update={"base_dir": base_dir or Path("."), "text": text})


def load_config(path: str | Path, *, in_memory: frozenset[str] = frozenset()) -> AuditConfig:
    """Read and validate ``audit.yaml`` (safe YAML: no Python tags, no key given twice); ``in_memory`` as in
    :func:`parse_config`."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"configuration file {str(path)!r} is a directory, not a file: pass the path of your "
                         "audit.yaml")
    if not path.is_file():
        raise InputError(f"configuration file {str(path)!r} does not exist: pass the path of your audit.yaml")
    try:
        text = path.read_text(encoding="utf-8")
        data = safe_load(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"configuration file {str(path)!r} cannot be read ({type(exc).__name__}): check its "
                         "permissions and that it is UTF-8 text") from None
    except YAMLLimitError as exc:
        mark = exc.problem_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InputError(f"configuration file {str(path)!r} is refused{at}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"configuration file {str(path)!r} is not valid YAML{at}: {problem}") from None
    if data is None:
        raise InputError(f"configuration file {str(path)!r} is empty: write the model and data sections (see "
                         "`auditkit schema` and examples/heart_disease/audit.yaml)")
    return parse_config(data, where=str(path), base_dir=path.resolve().parent, text=text, in_memory=in_memory)


def json_schema() -> dict:
    """The JSON Schema of audit.yaml."""
    schema = AuditConfig.model_json_schema(by_alias=True)
    for name in ("base_dir", "text", "inputs"):
        schema.get("properties", {}).pop(name, None)
    schema.get("$defs", {}).pop("InMemoryInputs", None)
    return schema
