"""``run_audit(config) → AuditRun``: the one orchestrator.

The pipeline, one named step each (:func:`_run_audit` reads top to bottom): load inputs (data, model, its
stationarity) → fit the engine (:mod:`auditkit.engine_factory`: damping and precision fallbacks, recorded as
``influence.fitting``) → run plugins (their influence questions answered in one pass first) → follow up the
policy (the checks that warn or fail on the plugins' findings, handed back to each plugin: the fairness plugin
attributes each flagged gap) → check stability (the rankings the plugins declare, recomputed with other engines)
→ assemble the document (:mod:`auditkit.assemble`) → check the policy (against the previous audit when a rule
asks). The run document (``run.json``) holds everything the report shows and no record identifiers; the private
rows (tokens with their record ids) are for the data owner only. Every random choice derives from ``config.seed``
(:mod:`auditkit.seeds`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import secrets
import shutil
import tempfile
import time
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from os import PathLike
from pathlib import Path

import numpy as np
import torch
import yaml
from pydantic import ValidationError

from ._version import __version__
from .assemble import RunFacts, run_document, score_rows
from .assemble import provenance as assemble_provenance
from .audits.base import AuditContext
from .audits.jsonsafe import json_safe
from .audits.registry import follow_up_plugin, load_plugin, prefetch, run_plugin, validate_options
from .audits.stability import stability
from .config import AuditConfig, BackendConfig, InMemoryInputs, load_config, parse_config
from .engine_factory import EngineFactory, EngineSettings, Float32Overflow
from .errors import InputError, SingularHessianError
from .history import HistoryStore
from .influence import InfluenceEngine
from .influence.dtypes import DTYPES
from .inputs import (
    LoadedData,
    build_checked_model,
    check_stationarity,
    has_holdout,
    in_memory_model,
    in_memory_tables,
    model_builder,
    read_data,
    training_function,
)
from .numerics import nonfinite_paths, saturation
from .policy import Policy, check_metrics_available, evaluate, load_policy, observations, overall_status, parse_policy
from .policy.observations import Sections
from .progress import reporter_for
from .redaction import redact_record_ids
from .results import DataQualityResult, FairnessResult, PrivacyResult, data_quality_of, fairness_of, privacy_of
from .rundoc import RunDocument, load_run
from .rundoc import run_document as typed_run
from .seeds import Seeds
from .suppression import suppress
from .tracing import flagged_rows

log = logging.getLogger(__name__)
PACKAGES = ("torch", "numpy", "pandas", "scikit-learn", "fairlearn", "pydantic", "weasyprint", "matplotlib", "jinja2")

#: metric id → plain label of the figures kept in the history store (all observations of the id).
KEY_FIGURES = {"fairness.selection_rate.impact_ratio_max": "four-fifths impact ratio",
               "fairness.accuracy.difference": "accuracy gap", "fairness.tpr.difference": "true-positive-rate gap",
               "fairness.fpr.difference": "false-positive-rate gap",
               "fairness.fnr.difference": "false-negative-rate gap",
               "privacy.loss.auc": "membership AUC (loss attack)",
               "privacy.self_influence.auc": "membership AUC (self-influence attack)",
               "privacy.flagged_share": "share of training records flagged",
               "data_quality.share_worth_inspecting": "share of records worth inspecting"}


@dataclass
class AuditRun:
    """The run document (``run``, a :class:`~auditkit.rundoc.RunDocument`: what ``run.json`` holds) and the
    private flagged-records rows (with record ids). Its findings as tables (:mod:`auditkit.results`):
    ``fairness`` (``.metrics``, ``.disparities``, ``.drivers``), ``privacy`` (``.risk``) and ``data_quality``,
    each with ``to_frame()``; a section that was not audited is None."""

    run: RunDocument
    flagged: list[dict]
    observations: list[dict] = field(default_factory=list)
    paths: dict = field(default_factory=dict)     # output files, once written
    scores: list[dict] = field(default_factory=list)   # every training record's scores (private, with ids)
    withheld: dict = field(default_factory=dict)   # the suppressed cells' values (private suppressed_cells.json)

    def __post_init__(self):
        if not isinstance(self.run, RunDocument):          # a saved run.json's dict: validated
            self.run = load_run(self.run)

    @property
    def status(self) -> str:
        """The policy's verdict: ``"pass"``, ``"pass_with_warnings"``, ``"fail"`` or ``"incomplete"``."""
        return self.run.status

    @property
    def fairness(self) -> FairnessResult | None:
        """Group metrics, disparities and the records driving them; None without a fairness audit."""
        return fairness_of(self.run)

    @property
    def privacy(self) -> PrivacyResult | None:
        """The ranking of training records by membership-inference risk; None without a privacy audit."""
        return privacy_of(self.run)

    @property
    def data_quality(self) -> DataQualityResult | None:
        """The suspect training records (likely mislabelled); None without a data-quality audit."""
        return data_quality_of(self.run)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "auditkit": __version__}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def check_config(config: AuditConfig):
    """Everything that can be checked without computing: plugins, their options, policy, files, holdout."""
    for name, options in config.audits.items():
        validate_options(load_plugin(name), options)
    tables, model = in_memory_tables(config), in_memory_model(config)
    if "fairness" in config.audits:
        d = config.data
        if d.test is None and (d.split is None or d.split.test == 0) and (tables is None or "test" not in tables):
            raise InputError("audits.fairness needs a test table: give data.test (or data.split.test > 0), or remove "
                             "the fairness audit")
        if not d.sensitive:
            raise InputError("audits.fairness needs data.sensitive (the attributes to compare groups by): add it, or "
                             "remove the fairness audit")
    if "privacy" in config.audits:
        holdout = (config.audits["privacy"] or {}).get("holdout", "holdout")
        if holdout == "holdout" and not has_holdout(config.data, tables):
            raise InputError("audits.privacy needs non-members: give data.holdout (records never trained on), or "
                             "data.split.holdout > 0, or remove the privacy audit")
    files = [(f"data.{k}", getattr(config.data, k), "a table file") for k in ("train", "test", "holdout", "table")
             if tables is None]
    weights = [("model.weights", config.model.weights, "the weights file")] if model is None else []
    for key, value, what in files + weights:
        path = config.path(value) if value is not None else None
        if path is not None and path.is_dir():
            raise InputError(f"{key}: {str(path)!r} is a directory: give the path of {what}")
        if path is not None and not path.is_file():
            raise InputError(f"{key}: file {str(path)!r} does not exist: fix the path (relative paths are read from "
                             "the configuration file's folder)")
    if config.backend.kind != "local" and config.influence.cache is not None:
        raise InputError("influence.cache reads gradients on this machine and cannot be combined with backend kind "
                         f"{config.backend.kind!r}: remove influence.cache or the backend")
    if config.policy is None:
        return None
    sources = [config.policy] if isinstance(config.policy, str) else list(config.policy)
    policies = [load_policy(str(config.path(s)) if config.path(s).is_file() else s) for s in sources]
    policy = policies[0] if len(policies) == 1 else combine_policies(policies)
    check_metrics_available(policy, set(config.audits) | {"influence"})
    budget = (config.audits.get("privacy") or {}).get("budget")
    if policy.flag_budget is not None and budget is not None and budget != policy.flag_budget:
        raise InputError(f"audits.privacy.budget {budget:g} differs from the flag_budget {policy.flag_budget:g} of "
                         f"policy {policy.name}: remove audits.privacy.budget (the policy sets it) or change the "
                         "policy")
    return policy


def plugin_options(config: AuditConfig, policy: Policy | None) -> dict[str, dict]:
    """Each plugin's options; the privacy audit takes its flag budget from the policy when it sets one."""
    options = {name: dict(opts or {}) for name, opts in config.audits.items()}
    if policy is not None and policy.flag_budget is not None and "privacy" in options:
        options["privacy"]["budget"] = policy.flag_budget
    return options


def combine_policies(policies: list[Policy]) -> Policy:
    """Several policies checked together: their rules, ids prefixed with the policy's name."""
    budgets = {p.flag_budget for p in policies if p.flag_budget is not None}
    if len(budgets) > 1:
        raise InputError(f"policies {', '.join(p.name for p in policies)} set different flag budgets "
                         f"{sorted(budgets)}: check them against one policy at a time, or align their flag_budget")
    combined = parse_policy({
        "policy": " + ".join(p.name for p in policies), "title": "; ".join(p.title for p in policies),
        "flag_budget": budgets.pop() if budgets else None,
        "description": " ".join(p.description for p in policies if p.description),
        "references": [r for p in policies for r in p.references],
        "rules": [{**r.to_dict(), "id": f"{p.name}/{r.id}"} for p in policies for r in p.rules]},
        source=" + ".join(p.source or p.name for p in policies))
    combined._sha256 = hashlib.sha256("".join(p.sha256 or "" for p in policies).encode()).hexdigest()
    return combined


def gradient_source(config: AuditConfig):
    """The on-disk gradient cache when ``influence.cache`` names a folder, else None (recompute)."""
    if config.influence.cache is None:
        return None
    from .gradcache import GradientCache
    return GradientCache(config.path(config.influence.cache))


def check_staging(config: AuditConfig) -> Path | None:
    """The folder under which a Dask run stages its training records (None: the system's temporary folder),
    refused unless a folder can be created in it. Creates nothing that outlives the check."""
    if config.backend.kind == "local":
        return None
    b = config.backend
    parent = config.path(b.staging) if b.staging is not None else None
    if parent is not None and not parent.is_dir():
        raise InputError(f"backend.staging: folder {str(parent)!r} does not exist: create it (on a file system "
                         "every worker can read under the same path) or remove backend.staging")
    try:
        os.rmdir(tempfile.mkdtemp(prefix="auditkit-staging-probe-", dir=parent))
    except OSError as exc:
        where = str(parent) if parent is not None else tempfile.gettempdir()
        key = "backend.staging" if parent is not None else "backend (the system's temporary folder)"
        raise InputError(f"{key}: no folder can be created in {where!r} ({exc.strerror or exc}): give a writable "
                         "backend.staging folder") from None
    return parent


def check_destinations(config: AuditConfig, out: Path | None) -> HistoryStore | None:
    """Every place a run writes, checked before any work: the output folder (``out``; None: no report), the
    history store (opened, its schema, integrity and write lock checked) and the Dask staging folder. Returns
    the history store (None: no history)."""
    from .writer import check_output

    if out is not None:
        check_output(Path(out))
    history = history_store(config, Path(out) if out is not None else None)
    check_staging(config)
    return history


@contextmanager
def influence_backend(config: AuditConfig):
    """``(backend, staging folder)`` for the configured ``backend``: ``(None, None)`` in process; for Dask, the
    backend (connected on first use) and a fresh folder under ``backend.staging`` (default: the system's temporary
    folder) where the training records are written as Parquet for the workers; both released at the end."""
    b = config.backend
    if b.kind == "local":
        yield None, None
        return
    from .backends import make_backend
    parent = check_staging(config)
    backend = make_backend("dask", scheduler=b.scheduler, workers=b.workers)
    folder = Path(tempfile.mkdtemp(prefix="auditkit-staging-", dir=parent))
    try:
        yield backend, folder
    finally:
        backend.close()
        shutil.rmtree(folder, ignore_errors=True)


def stage_training(X: torch.Tensor, y: torch.Tensor, folder: Path, chunk_size: int):
    """The training records written to ``folder/train.parquet`` (row groups of whole chunks), read back by the
    workers shard by shard: a ``ParquetRecords``."""
    from .backends import write_parquet
    return write_parquet(X, y, folder / "train.parquet", row_group_size=chunk_size * max(1, 4096 // chunk_size))


#: the environment variable in which a data owner gives the key of the record tokens (see docs/security.md)
TOKEN_KEY_VARIABLE = "AUDITKIT_TOKEN_KEY"
#: the fewest characters of a token key given in TOKEN_KEY_VARIABLE
TOKEN_KEY_MIN = 16
#: the plugins in the order their findings are listed (the stability check's too); others follow in config order
SECTION_ORDER = {"fairness": 0, "privacy": 1, "data_quality": 2}


def token_key() -> tuple[bytes, str]:
    """The key of the record tokens and a plain sentence of what it is (``provenance.token_key``): the data
    owner's secret from ``AUDITKIT_TOKEN_KEY`` (tokens then stay the same across runs), else 32 random bytes drawn
    for this run and kept nowhere. The key itself is never written."""
    value = os.environ.get(TOKEN_KEY_VARIABLE)
    if value is None:
        return secrets.token_bytes(32), ("a random key drawn for this run and kept nowhere: the tokens differ from "
                                         "run to run, and only the private outputs (flagged_records.csv, "
                                         "record_scores.csv) map them to record ids")
    if len(value) < TOKEN_KEY_MIN:
        raise InputError(f"{TOKEN_KEY_VARIABLE}: the token key has {len(value)} characters: give a secret of at least "
                         f"{TOKEN_KEY_MIN} characters, or unset {TOKEN_KEY_VARIABLE} for a random key per run")
    key = hashlib.blake2b(value.encode(), digest_size=32, person=b"auditkit-tokens").digest()
    return key, (f"the data owner's key from the environment variable {TOKEN_KEY_VARIABLE}: whoever holds it can "
                 "recompute the tokens, which stay the same across runs made with it")


class Clock:
    """The run's named steps with their durations (``runtime.steps``), each logged as it starts."""

    def __init__(self):
        self.started, self.steps = time.perf_counter(), []

    @contextmanager
    def step(self, name: str):
        log.info("%s …", name)
        began = time.perf_counter()
        yield
        self.steps.append({"name": name, "seconds": round(time.perf_counter() - began, 3)})
        log.debug("%s: %.2f s", name, self.steps[-1]["seconds"])

    def runtime(self, backend: str) -> dict:
        return {"seconds": round(time.perf_counter() - self.started, 2), "steps": self.steps, "backend": backend}


@dataclass
class Inputs:
    """What the first step of a run produces: the data, the model (and the object given in memory, if any), its
    fit on the training records, the training records as tensors and their saturation."""

    loaded: LoadedData
    model: torch.nn.Module
    given_model: torch.nn.Module | None
    fit: dict
    X: torch.Tensor
    y: torch.Tensor
    saturated: dict


def load_inputs(config: AuditConfig, seeds: Seeds) -> Inputs:
    """Step 1: read and split the data, build the model, check its weights are a minimum of the objective."""
    d, m = config.data, config.model
    split = None if d.split is None else (seeds("split") if d.split.seed is None else seeds.record("split",
                                                                                                    d.split.seed))
    loaded = read_data(d, tables=in_memory_tables(config), path_of=config.path, base_dir=config.base_dir, seed=split)
    train, given = loaded.splits["train"], in_memory_model(config)
    model = build_checked_model(m, train, given=given, weights=config.path(m.weights) if m.weights else None,
                                base_dir=config.base_dir)
    fit = check_stationarity(m, model, train, seed=seeds("stationarity"), featurizer=loaded.featurizer)
    log.info("  training records as the audit sees them: loss %.4g%s; gradient norm of the objective %.3g, %.3g of "
             "its size with shuffled labels", fit["loss"],
             "" if fit["accuracy"] is None else f", accuracy {fit['accuracy']:.4g}", fit["grad_norm"], fit["relative"])
    X, y = torch.tensor(train.X, dtype=DTYPES[m.dtype]), torch.tensor(train.y)
    return Inputs(loaded, model, given, fit, X, y, saturation(model, X, y, loss=m.loss))


def engine_settings(config: AuditConfig, seeds: Seeds) -> EngineSettings:
    """The few configuration fields the engines are made from; the solver's seed: the method's ``seed`` option
    when given, else derived from the run's seed."""
    inf, m = config.influence, config.model
    solver_seed = seeds.record("solver", inf.options["seed"]) if "seed" in inf.options else seeds("solver")
    return EngineSettings(loss=m.loss, l2=m.l2, dtype=m.dtype, method=inf.method, options=dict(inf.options),
                          damping=inf.damping, chunk_size=inf.chunk_size, gradients=gradient_source(config),
                          solver_seed=solver_seed, damping_factors=tuple(inf.stability.damping_factors),
                          second_solver=inf.stability.second_solver)


def fit_influence(config: AuditConfig, inputs: Inputs, seeds: Seeds, *, backend, staging: Path | None,
                  overflows: int = 0, dtype_requested: str | None = None):
    """Step 2: the engine factory and the audit's engine fitted on the training records (staged as Parquet for
    the workers when a backend is given): ``(factory, engine, X, y)``."""
    factory = EngineFactory(inputs.model, engine_settings(config, seeds), progress=reporter_for("influence"),
                            backend=backend, overflows=overflows, dtype_requested=dtype_requested)
    X, y = inputs.X, inputs.y
    if backend is not None:                     # the workers read the training records from Parquet
        X, y = stage_training(X, y, staging, config.influence.chunk_size), None
    return factory, factory.fit(X, y), X, y


def make_context(config: AuditConfig, inputs: Inputs, engine: InfluenceEngine, seeds: Seeds,
                 key: bytes) -> AuditContext:
    """What the plugins read: model, engine, splits, training function, seeds and the token key (built once)."""
    m = config.model
    train_fn = training_function(m, base_dir=config.base_dir, given_model=inputs.given_model)
    return AuditContext(inputs.model, engine, inputs.loaded.splits, loss=m.loss, l2=m.l2, train_fn=train_fn,
                        seed=config.seed, relative=inputs.fit["relative"], token_key=key, seeds=seeds)


def answer_plans(context: AuditContext, factory: EngineFactory, options_by_plugin: dict, X, y) -> None:
    """Step 3: the plugins' influence questions answered in one pass; an iterative solver that meets non-positive
    curvature only now gets the automatic damping (the factory decides); non-finite answers are refused."""
    try:
        prefetch(context, options_by_plugin)
    except SingularHessianError as exc:
        context.use_engine(factory.refit_after(exc, context.engine, X, y))
        prefetch(context, options_by_plugin)
    factory.check_finite(context.nonfinite_answers())


def run_plugins(context: AuditContext, options_by_plugin: dict, clock: Clock) -> tuple[dict, dict]:
    """Step 4: every configured plugin, in the order of :data:`SECTION_ORDER`: ``(findings, nonfinite)``, the
    JSON-safe findings and the paths of the values that were not finite, by plugin name."""
    findings, nonfinite = {}, {}
    for name in sorted(options_by_plugin, key=lambda n: SECTION_ORDER.get(n, len(SECTION_ORDER))):
        with clock.step(f"audit: {name}"):
            raw = run_plugin(name, context, options_by_plugin[name]).to_dict()
            nonfinite[name] = nonfinite_paths(raw)
            findings[name] = json_safe(raw)
    return findings, nonfinite


def flagged_checks(findings: dict, policy: Policy | None, history: HistoryStore | None, model: str) -> list[dict]:
    """The policy's checks that warn or fail on the plugins' findings alone (before the stability check and the
    run document exist; the checks of fairness, privacy and data-quality metrics read nothing else), as dicts."""
    if policy is None:
        return []
    previous = history.previous(model) if history is not None else None
    obs = observations(Sections.model_validate(findings))
    checks = evaluate(policy, obs, previous=previous["observations"] if previous else None)
    return [c.to_dict() for c in checks if c.status in ("warn", "fail")]


def follow_up(context: AuditContext, options_by_plugin: dict, findings: dict, nonfinite: dict,
              flagged: list[dict]) -> None:
    """Step 5: each plugin's findings completed with what the policy flagged (``AuditPlugin.follow_up``), in place;
    the checks themselves are evaluated again on the whole run document (step 7)."""
    for name in findings:
        if findings[name] is None:
            continue
        raw = follow_up_plugin(name, context, options_by_plugin[name], findings[name], flagged)
        if raw is not findings[name]:
            nonfinite[name] = nonfinite_paths(raw)
            findings[name] = json_safe(raw)


def check_stability(config: AuditConfig, context: AuditContext, factory: EngineFactory, findings: dict,
                    X, y) -> dict:
    """Step 6: the rankings the plugins declare, recomputed with the alternative engines:
    ``{"settings", "findings"}``."""
    rankings = [(name, ranking) for name, found in findings.items() if found is not None
                for ranking in load_plugin(name)().rankings(found, context)]
    engines, settings = factory.alternatives(context.engine, X, y)
    st = config.influence.stability
    return {"settings": settings,
            "findings": stability(context, rankings, engines, k=st.top_k, robust_agreement=st.robust_agreement)}


def apply_policy(run: dict, policy: Policy | None, history: HistoryStore | None) -> list[dict]:
    """Step 7: the run's observations checked against the policy (and the previous audit): checks, status,
    policy and key figures written into ``run``; returns the observations."""
    obs = [o if isinstance(o, dict) else o.to_dict() for o in observations(run)]
    previous = history.previous(run["model"]["name"]) if history is not None else None
    kind = (run.get("scope") or {}).get("decision_kind", "other")
    checks = evaluate(policy, obs, previous=previous["observations"] if previous else None,
                      decision_kind=kind) if policy else []
    run["checks"] = [c if isinstance(c, dict) else c.to_dict() for c in checks]
    run["status"] = overall_status(run["checks"]) if policy else "pass"
    run["policy"] = policy.to_dict() if policy else None
    run["key_figures"] = key_figures(obs)
    return obs


def run_audit(config: AuditConfig, *, trigger: str = "manual", command: str = "",
              history: HistoryStore | None = None) -> AuditRun:
    """Run the configured audit; nothing is written here (see :mod:`auditkit.writer`). The influence engine's
    chunk work runs where ``config.backend`` says (in process, or on a Dask cluster). Steps and progress are
    logged (INFO, this module's and :mod:`auditkit.progress`'s loggers). Influence values that overflow float32
    make the whole audit run again in float64 (``influence.fitting`` says so)."""
    key = token_key()
    try:
        with influence_backend(config) as (backend, staging):
            return _run_audit(config, trigger=trigger, command=command, history=history, backend=backend,
                              staging=staging, key=key)
    except Float32Overflow as exc:
        log.info("  %d influence values overflowed float32: recomputing in float64", exc.count)
        wider = config.model_copy(update={"model": config.model.model_copy(update={"dtype": "float64"})})
        with influence_backend(wider) as (backend, staging):
            return _run_audit(wider, trigger=trigger, command=command, history=history, backend=backend,
                              staging=staging, key=key, overflows=exc.count, dtype_requested=config.model.dtype)


def _run_audit(config: AuditConfig, *, trigger: str, command: str, history: HistoryStore | None, backend,
               staging: Path | None, key: tuple[bytes, str], overflows: int = 0,
               dtype_requested: str | None = None) -> AuditRun:
    """The pipeline: load inputs → fit the engine → run plugins → follow up the policy's flags → check stability
    → assemble the document → check the policy."""
    clock, seeds = Clock(), Seeds(config.seed)
    policy = check_config(config)
    where = "in process" if backend is None else f"{backend!r}, {backend.n_workers} worker thread(s)"
    if backend is not None:                     # a Dask backend connects now: unreachable fails before any work
        log.info("influence backend: %s", where)
    torch.manual_seed(seeds("global"))
    np.random.seed(seeds("global") % 2**32)
    with clock.step("load data and model"):
        inputs = load_inputs(config, seeds)
    with clock.step("fit the influence engine"):
        factory, engine, X, y = fit_influence(config, inputs, seeds, backend=backend, staging=staging,
                                              overflows=overflows, dtype_requested=dtype_requested)
    context = make_context(config, inputs, engine, seeds, key[0])
    options_by_plugin = plugin_options(config, policy)
    with clock.step("influence: one pass over the training gradients"):
        answer_plans(context, factory, options_by_plugin, X, y)
    findings, nonfinite = run_plugins(context, options_by_plugin, clock)
    with clock.step("follow up what the policy flags"):
        follow_up(context, options_by_plugin, findings, nonfinite,
                  flagged_checks(findings, policy, history, config.model.name))
        factory.check_finite(context.nonfinite_answers())      # the follow-up's influence answers too
    with clock.step("stability of the key findings"):
        stable = check_stability(config, context, factory, findings, X, y)
        nonfinite["influence"] = nonfinite_paths(stable["findings"])
    facts = RunFacts(inputs.loaded, inputs.model, inputs.given_model, model_builder(config.model.builder,
                     inputs.given_model), inputs.fit, context.engine, factory.fitting(), stable,
                     {"nonfinite": nonfinite, "saturation": inputs.saturated}, seeds.used, key[1], findings)
    run = run_document(config, facts, context, trigger=trigger)
    obs = apply_policy(run, policy, history)
    run["limitations"] = []           # the report composes its limitations from the facts above
    run["history"] = [{k: r[k] for k in ("report_id", "created_utc", "model_version", "status", "figures")}
                      for r in (history.runs(config.model.name) if history is not None else [])]
    run["sign_off"] = {"roles": [s.model_dump() for s in config.report.sign_off],
                       "independence": config.report.independence}
    run["provenance"] = assemble_provenance(config, run, facts, versions=versions(), command=command,
                                            config_text=redact_record_ids(config.redacted_text,
                                                                          inputs.loaded.splits, context.token))
    run["runtime"] = clock.runtime(where)
    run = json_safe(run)
    flagged = flagged_rows(run, context.tokens)
    run, withheld, obs = withhold_small_cells(run)
    return AuditRun(typed_run(run), flagged, obs, scores=score_rows(context), withheld=withheld)


def withhold_small_cells(run: dict) -> tuple[dict, dict, list[dict]]:
    """Step 7: small cells, and the cells that would reveal them by subtraction, out of the run document
    (:func:`auditkit.suppression.suppress`): ``(public run, withheld values, public observations)``. The key
    figures and the observations kept in the history store are those of the public run."""
    public, withheld = suppress(run)
    obs = [o if isinstance(o, dict) else o.to_dict() for o in observations(public)]
    public["key_figures"] = key_figures(obs)
    return public, withheld, obs


def key_figures(observations_: list[dict]) -> dict[str, float]:
    """The figures kept in the history store: plain label (with scope) → value."""
    out = {}
    for o in observations_:
        label = KEY_FIGURES.get(o["metric"])
        if label is None or o.get("value") is None:
            continue
        scope = "/".join(str(s) for s in (o.get("attribute"), o.get("group")) if s)
        out[f"{label} ({scope})" if scope else label] = o["value"]
    return out


def history_store(config: AuditConfig, out: Path | None) -> HistoryStore | None:
    """The configured history store: ``history.sqlite`` beside the output folder by default."""
    if config.history is False or (config.history is True and out is None):
        return None
    target = Path(out).resolve().parent / "history.sqlite" if config.history is True else config.history
    if isinstance(target, str) and "://" not in target:
        target = config.path(target)
    return HistoryStore(target)


def with_scheduler(config: AuditConfig, scheduler: str) -> AuditConfig:
    """The configuration with its influence work sent to the Dask scheduler at ``scheduler`` (staging kept)."""
    try:
        backend = BackendConfig(kind="dask", scheduler=scheduler, staging=config.backend.staging)
    except ValidationError as exc:
        raise InputError(f"--scheduler {scheduler!r}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") \
            from None
    return config.model_copy(update={"backend": backend})


def configuration(config: AuditConfig | Mapping | str | PathLike, *, data: Mapping | None = None,
                  model: torch.nn.Module | None = None) -> AuditConfig:
    """The validated configuration from audit.yaml's path, a dict of its sections (relative paths then read from
    the working directory) or an :class:`AuditConfig`, with the tables (``data``) and the model (``model``)
    given as Python objects attached (:class:`~auditkit.config.InMemoryInputs`): the configuration need not
    name their files or builder, and any it names are not read."""
    in_memory = frozenset(k for k, v in (("data", data), ("model", model)) if v is not None)
    if isinstance(config, Mapping):
        config = parse_config(dict(config), base_dir=Path.cwd(), in_memory=in_memory)
        text = yaml.safe_dump(config.model_dump(mode="json", by_alias=True, exclude_unset=True), sort_keys=False,
                              allow_unicode=True)
        config = config.model_copy(update={"text": text})
    elif isinstance(config, str | PathLike):
        config = load_config(config, in_memory=in_memory)
    elif not isinstance(config, AuditConfig):
        raise InputError(f"config: got a {type(config).__name__}: give the path of audit.yaml, a dict of its "
                         "sections, or a loaded configuration (auditkit.config.load_config)")
    if in_memory:
        config = config.model_copy(update={"inputs": InMemoryInputs.model_construct(tables=data, model=model)})
        in_memory_tables(config), in_memory_model(config)          # refuse wrong objects before any work
    return config


def audit(config: AuditConfig | Mapping | str | PathLike, out: str | Path | None = None, *,
          data: Mapping | None = None, model: torch.nn.Module | None = None, trigger: str = "manual",
          templates: str | Path | None = None, command: str = "",
          threads: int | None = None, scheduler: str | None = None) -> AuditRun:
    """Run an audit from a configuration (the path of audit.yaml, a dict of its sections, or a loaded one) and,
    when ``out`` is given, write its report and outputs there and record it in the history store.

    ``data``: the tables as pandas DataFrames, ``{"train": ..., "test": ...}`` (optionally ``"holdout"``) or
    ``{"table": ...}`` (split by the configuration's ``data.split``), in place of the configuration's table
    files; the configuration still says which columns are what (target, ids, sensitive attributes, features).
    The run document names their source "in-memory DataFrame" and hashes their content. ``model``: the trained
    torch ``nn.Module`` in place of ``model.builder`` and ``model.weights`` (a copy is audited; the object is
    not changed). The run's findings as pandas tables: :mod:`auditkit.results`. Every destination is checked
    before any work (:func:`check_destinations`); the report folder and the history row land together.

    ``auditkit run audit.yaml --out DIR`` is ``audit("audit.yaml", "DIR")`` plus the exit code of its
    ``status``: pass / pass_with_warnings → 0, fail / incomplete → 1. ``threads`` sets torch's thread count
    for the run (None: leave it as it is). ``scheduler`` (``--scheduler``): the address of a Dask scheduler whose
    workers do the influence engine's chunk work, instead of the configuration's ``backend``. Steps and progress
    are logged (INFO; shown by the ``auditkit`` command unless ``--quiet``).
    """
    from .writer import write_run

    if threads is not None:
        if threads < 1:
            raise InputError(f"threads={threads} is not allowed: give a positive number of threads")
        torch.set_num_threads(threads)
    config = configuration(config, data=data, model=model)
    if scheduler is not None:
        config = with_scheduler(config, scheduler)
    history = check_destinations(config, out)
    result = run_audit(config, trigger=trigger, command=command, history=history)
    if out is not None:
        log.info("write the report …")
        commit = None if history is None else history.transaction(
            result.run, figures=key_figures(result.observations), observations=result.observations,
            run_dir=str(Path(out).resolve()))
        result.paths = write_run(result.run, result.flagged, Path(out),
                                 templates=Path(templates) if templates else None, commit=commit,
                                 scores=result.scores, withheld=result.withheld)
    return result
