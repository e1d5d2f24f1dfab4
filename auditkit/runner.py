"""``run_audit(config) → AuditRun``: the one orchestrator.

data + model → influence engine (damping applied automatically when the Hessian is singular) → plugins →
stability of the key findings under other settings → policy checks (against the previous audit when a
rule asks) → the run document (``run.json``: everything the report shows, no record identifiers) and
the private list of flagged records (tokens with their record ids, for the data owner only).
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
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from os import PathLike
from pathlib import Path

import numpy as np
import torch
import yaml
from pydantic import ValidationError

from . import __version__
from .audits.base import AuditContext
from .audits.jsonsafe import json_safe
from .audits.registry import load_plugin, prefetch, run_plugin, validate_options
from .audits.stability import stability
from .config import AuditConfig, BackendConfig, InMemoryInputs, load_config, parse_config
from .errors import HessianError, InputError, SingularHessianError
from .hashes import file_sha256
from .history import HistoryStore
from .influence import InfluenceEngine
from .inputs import (
    DTYPES,
    ROLES,
    check_stationarity,
    has_holdout,
    in_memory_model,
    in_memory_tables,
    load_data,
    load_model,
    model_builder,
    training_function,
)
from .models.loading import parameters_sha256
from .numerics import nonfinite_paths, numerical_limitations, saturation
from .policy import Policy, check_metrics_available, evaluate, load_policy, observations, overall_status, parse_policy
from .progress import reporter_for
from .redaction import redact_record_ids
from .results import DataQualityResult, FairnessResult, PrivacyResult, data_quality_of, fairness_of, privacy_of
from .tracing import flagged_rows

log = logging.getLogger(__name__)
PACKAGES = ("torch", "numpy", "pandas", "scikit-learn", "fairlearn", "pydantic", "weasyprint", "matplotlib", "jinja2")

#: metric id → plain label of the figures kept in the history store (all observations of the id).
KEY_FIGURES = {"fairness.selection_rate.impact_ratio_max": "four-fifths impact ratio",
               "fairness.accuracy.difference": "accuracy gap", "fairness.tpr.difference": "true-positive-rate gap",
               "privacy.loss.auc": "membership AUC (loss attack)",
               "privacy.self_influence.auc": "membership AUC (self-influence attack)",
               "privacy.flagged_share": "share of training records flagged",
               "data_quality.share_worth_inspecting": "share of records worth inspecting"}


@dataclass
class AuditRun:
    """The run document (``run``, a dict: what ``run.json`` holds) and the private flagged-records rows (with
    record ids). Its findings as tables (:mod:`auditkit.results`): ``fairness`` (``.metrics``,
    ``.disparities``, ``.drivers``), ``privacy`` (``.risk``) and ``data_quality``, each with ``to_frame()``;
    a section that was not audited is None."""

    run: dict
    flagged: list[dict]
    observations: list[dict] = field(default_factory=list)
    paths: dict = field(default_factory=dict)     # output files, once written
    scores: list[dict] = field(default_factory=list)   # every training record's scores (private, with ids)

    @property
    def status(self) -> str:
        """The policy's verdict: ``"pass"``, ``"pass_with_warnings"``, ``"fail"`` or ``"incomplete"``."""
        return self.run["status"]

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
        if holdout == "holdout" and not has_holdout(config):
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


def fit_engine(model, config: AuditConfig, X, y, *, progress=None, backend=None,
               failure: SingularHessianError | None = None) -> tuple[InfluenceEngine, str | None]:
    """Fit the engine; with ``damping: auto`` a singular Hessian gets the suggested damping (and a note).
    ``progress(done, total)`` is called per chunk of the engine's passes over the training records; ``backend``:
    where those chunks are computed (None: in process); ``X`` may then be a record source its workers read.
    ``failure``: the error an engine fitted without damping met when it first solved (an iterative solver such
    as CG finds non-positive curvature only then): fit again with the automatic damping."""
    inf, m = config.influence, config.model

    def make(damping: float) -> InfluenceEngine:
        try:
            return InfluenceEngine(model, m.loss, l2=m.l2, method=inf.method, damping=damping,
                                   dtype=DTYPES[m.dtype], chunk_size=inf.chunk_size, gradients=gradient_source(config),
                                   progress=progress, backend=backend, **inf.options)
        except InputError as exc:
            raise InputError(f"influence: {exc}") from None

    if inf.damping != "auto":
        try:
            return make(float(inf.damping)).fit(X, y), None
        except SingularHessianError as exc:
            raise InputError(f"influence.damping: {exc}; or set 'damping: auto'") from None
    engine = make(0.0)
    try:
        engine.fit(X, y)
        if failure is not None:
            raise failure
        return engine, None
    except SingularHessianError as exc:
        damping = exc.suggested_damping or 1e-3 * engine.hessian_.top_eigenvalue()
        log.info("  the Hessian is not positive definite: damping %.2g applied", damping)
        note = (f"The Hessian of the training objective at the trained parameters is singular or not positive "
                f"definite: the model is not at a strict minimum. A damping of {damping:.2g} (about 1e-3 of the "
                "largest eigenvalue) was added to H, which shrinks influence estimates along flat directions.")
        return make(damping).fit(X, y), note


def scaled_l2(l2: float | dict[str, float], factor: float) -> float | dict[str, float]:
    """The L2 coefficient(s) times ``factor``."""
    return {k: v * factor for k, v in l2.items()} if isinstance(l2, dict) else l2 * factor


def alternative_engines(model, config: AuditConfig, engine: InfluenceEngine, X, y) -> tuple[dict, list[dict]]:
    """Engines for the stability check: the ridge of H (the L2 term and the damping) × each factor, and a
    second solver. Without any ridge (no L2, no damping) the factors scale a nominal damping of 1e-3 of
    H's largest eigenvalue."""
    inf, m = config.influence, config.model
    has_ridge = engine.damping > 0 or any(m.l2.values() if isinstance(m.l2, dict) else [m.l2])
    nominal = 0.0 if has_ridge else 1e-3 * engine.hessian_.top_eigenvalue()
    engines, settings = {}, []

    def add(label: str, method: str, l2, damping: float):
        settings.append({"label": label, "method": method, "l2": l2, "damping": damping})
        try:
            options = inf.options if method == inf.method else {}
            engines[label] = InfluenceEngine(model, m.loss, l2=l2, method=method, damping=damping,
                                             dtype=DTYPES[m.dtype], chunk_size=inf.chunk_size,
                                             gradients=gradient_source(config), backend=engine.backend,
                                             **options).fit(X, y)
        except HessianError as exc:
            engines[label] = exc

    for factor in inf.stability.damping_factors:
        add(f"ridge ×{factor:g}", inf.method, scaled_l2(m.l2, factor), (engine.damping + nominal) * factor)
    second = inf.stability.second_solver
    if second == "auto":
        second = second_solver_for(model, inf.method)
    elif second == inf.method:
        second = "exact" if inf.method != "exact" else "cg"
    if second != "none":
        add(f"solver {second}", second, m.l2, engine.damping)
    return engines, settings


def second_solver_for(model, method: str) -> str:
    """The stability check's default second solver: EK-FAC (self-influence in one pass, an independent
    approximation of H) when every parameter belongs to an ``nn.Linear`` layer, else CG; never the
    audit's own method."""
    linear_only = all(isinstance(mod, torch.nn.Linear) for mod in model.modules()
                      if any(True for _ in mod.parameters(recurse=False)))
    for candidate in (["ekfac"] if linear_only else []) + ["cg", "exact"]:
        if candidate != method:
            return candidate
    return "none"


def _limitations(run: dict, context: AuditContext) -> list[str]:
    """Limitations the run knows of and the report cannot derive from the findings (the report adds the
    damping note, sensitive findings, suppressed groups and the plugins' own notes)."""
    out = []
    if sum(1 for mod in context.model.modules() if isinstance(mod, torch.nn.Linear)) > 1:
        out.append("The model is not convex (it has hidden layers): influence estimates describe the effect of "
                   "removing a record near the trained parameters; retraining from scratch can end elsewhere, and "
                   "records the network has memorised can be underestimated (see the privacy trust check).")
    out.append("Influence estimates are first-order approximations of leave-one-out retraining; their agreement "
               "with actual retraining on this model is stated in the methodology section where it was measured.")
    for s in run["data"]["sensitive"]:
        unknown = sum(s["unknown"].values())
        if unknown:
            out.append(f"{unknown} record(s) have no value for {s['attribute']!r}: they form the group 'unknown' "
                       "and are left out of disparities.")
    fit = run["model"]["training_fit"]
    if not fit["stationary"]:
        out.append(f"The audited weights are not a minimum of the stated objective on the training records as "
                   f"featurized (gradient norm {fit['grad_norm']:.3g}, {fit['relative']:.3g} of its size with shuffled "
                   f"labels, above the {fit['threshold']:g} the audit accepts; model.allow_non_stationary was set): "
                   "influence estimates assume a minimum and may be far from what retraining would do.")
    refits = run["influence"]["refits"]
    if refits["not_converged"]:
        which = ", ".join(f"{k}: {v['not_converged']} of {v['count']}" for k, v in refits["by_purpose"].items()
                          if v["not_converged"])
        out.append(f"{refits['not_converged']} of the {refits['count']} retrainings did not converge ({which}; the "
                   f"largest gradient norm left was {refits['largest_grad_norm']:.3g}, relative "
                   f"{refits['largest_relative']:.3g} against a tolerance of {refits['tolerance']:.3g}): results "
                   "measured by retraining carry that optimisation error.")
    if run.get("fairness"):
        out.append("Sensitive attributes that are not model inputs can still be reached through correlated features "
                   "(proxies); the disparities measured here include such effects, the drivers name records, not "
                   "features.")
    return out


def _score_rows(context: AuditContext) -> list[dict]:
    """Every training record with each score the plugins computed for it (driver scores of each fairness gap,
    privacy risk, data-quality score), for the private ``record_scores.csv``: the full rankings."""
    if not context.record_scores:
        return []
    train = context.train
    classes = [str(c) for c in train.classes]
    rows = []
    for j in range(train.n):
        row = {"token": context.token("train", j), "split": "train", "record_id": str(train.ids[j]),
               "label": classes[train.y[j]], "groups": {c: str(train.groups[c].iat[j]) for c in train.groups.columns}}
        row.update({name: float(values[j]) for name, values in context.record_scores.items()})
        rows.append(row)
    return rows


def _flagged_rows(context: AuditContext, findings: dict) -> list[dict]:
    """Every record token ``findings`` (the run) names, with its id and why (:func:`auditkit.tracing.flagged_rows`)."""
    return flagged_rows(findings, context.tokens)


def run_audit(config: AuditConfig, *, trigger: str = "manual", command: str = "",
              history: HistoryStore | None = None) -> AuditRun:
    """Run the configured audit; nothing is written here (see :mod:`auditkit.writer`). The influence engine's
    chunk work runs where ``config.backend`` says (in process, or on a Dask cluster). Steps and progress are
    logged (INFO, this module's and :mod:`auditkit.progress`'s loggers)."""
    try:
        with influence_backend(config) as (backend, staging):
            return _run_audit(config, trigger=trigger, command=command, history=history, backend=backend,
                              staging=staging)
    except Float32Overflow as exc:             # the whole audit again in float64, the report says why
        log.info("  %d influence values overflowed float32: recomputing in float64", exc.count)
        wider = config.model_copy(update={"model": config.model.model_copy(update={"dtype": "float64"})})
        with influence_backend(wider) as (backend, staging):
            return _run_audit(wider, trigger=trigger, command=command, history=history, backend=backend,
                              staging=staging, notes=(exc.note,))


class Float32Overflow(ArithmeticError):
    """Influence values computed in float32 overflowed (NaN or ±inf); ``run_audit`` recomputes in float64."""

    def __init__(self, count: int):
        super().__init__(f"{count} influence values overflowed float32")
        self.count = count
        self.note = (f"The audit was configured for float32 (model.dtype), but {count} influence values overflowed "
                     "float32 (they were not finite: features or gradients of a magnitude whose squares exceed "
                     "3.4e38). The whole audit was recomputed in float64; every figure in this report comes from "
                     "that float64 run.")


def _run_audit(config: AuditConfig, *, trigger: str, command: str, history: HistoryStore | None, backend,
               staging: Path | None, notes: tuple[str, ...] = ()) -> AuditRun:
    started, steps = time.perf_counter(), []

    def step(name: str):
        steps.append({"name": name, "seconds": None, "_t": time.perf_counter()})
        log.info("%s …", name)

    def done():
        steps[-1]["seconds"] = round(time.perf_counter() - steps[-1].pop("_t"), 3)
        log.debug("%s: %.2f s", steps[-1]["name"], steps[-1]["seconds"])

    policy = check_config(config)
    where = "in process"
    if backend is not None:                     # connects now: an unreachable scheduler fails before any work
        where = f"{backend!r}, {backend.n_workers} worker thread(s)"
        log.info("influence backend: %s", where)
    log.debug("configuration sha256 %s; seed %d; influence method %s, damping %s, dtype %s, chunks of %d records",
              config.sha256, config.seed, config.influence.method, config.influence.damping, config.model.dtype,
              config.influence.chunk_size)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed % 2**32)
    step("load data and model")
    loaded = load_data(config)
    splits = loaded.splits
    model = load_model(config, splits)
    fit = check_stationarity(config, model, splits["train"], featurizer=loaded.featurizer)
    log.info("  training records as the audit sees them: loss %.4g%s; gradient norm of the objective %.3g, %.3g of "
             "its size with shuffled labels", fit["loss"],
             "" if fit["accuracy"] is None else f", accuracy {fit['accuracy']:.4g}", fit["grad_norm"], fit["relative"])
    dtype = DTYPES[config.model.dtype]
    X, y = torch.tensor(splits["train"].X, dtype=dtype), torch.tensor(splits["train"].y)
    saturated = saturation(model, X, y, loss=config.model.loss)
    done()
    step("fit the influence engine")
    reporter = reporter_for("influence")
    if backend is not None:                     # the workers read the training records from Parquet
        X, y = stage_training(X, y, staging, config.influence.chunk_size), None
    engine, damping_note = fit_engine(model, config, X, y, progress=reporter, backend=backend)
    done()
    context = AuditContext(model, engine, splits, loss=config.model.loss, l2=config.model.l2,
                           train_fn=training_function(config), seed=config.seed, relative=fit["relative"])
    findings = {"fairness": None, "privacy": None, "data_quality": None}
    nonfinite: dict[str, list[str]] = {}
    options_by_plugin = plugin_options(config, policy)
    step("influence: one pass over the training gradients")
    try:
        prefetch(context, options_by_plugin)
    except SingularHessianError as exc:         # an iterative solver meets non-positive curvature only now
        if config.influence.damping != "auto" or engine.damping > 0:
            raise InputError(f"influence.damping: {exc}; or set 'damping: auto'") from None
        engine, damping_note = fit_engine(model, config, X, y, progress=reporter, backend=backend, failure=exc)
        context = AuditContext(model, engine, splits, loss=config.model.loss, l2=config.model.l2,
                               train_fn=training_function(config), seed=config.seed, relative=fit["relative"])
        prefetch(context, options_by_plugin)
    overflowed = context.nonfinite_answers()
    if overflowed and config.model.dtype == "float32":
        raise Float32Overflow(overflowed)
    if overflowed:
        raise InputError(f"influence: {overflowed} influence values are not finite (NaN or ±inf) even in float64: "
                         "standardise the features (values of ordinary magnitude) or check the model's weights")
    done()
    for name, options in options_by_plugin.items():
        step(f"audit: {name}")
        raw = run_plugin(name, context, options).to_dict()
        nonfinite[name] = nonfinite_paths(raw)
        findings[name] = json_safe(raw)
        done()
    step("stability of the key findings")
    engines, settings = alternative_engines(model, config, engine, X, y)
    st = config.influence.stability
    stable = stability(context, findings, engines, k=st.top_k, robust_agreement=st.robust_agreement)
    nonfinite["influence"] = nonfinite_paths(stable)
    done()

    created = datetime.now(timezone.utc).replace(microsecond=0)
    m, d, given_model = config.model, config.data, in_memory_model(config)
    train = splits["train"]
    run = {
        "schema": "auditkit.run/1",
        "report_id": f"AK-{created:%Y%m%d}-{secrets.token_hex(4).upper()}",
        "created_utc": created.isoformat().replace("+00:00", "Z"),
        "trigger": trigger, "status": "incomplete", "auditkit_version": __version__,
        "scope": config.report.model_dump(exclude={"sign_off", "independence"}),
        "model": {"name": m.name, "version": m.version,
                  "weights_sha256": file_sha256(config.path(m.weights)) if m.weights and given_model is None else None,
                  "parameters_sha256": parameters_sha256(model),
                  "framework": f"PyTorch {torch.__version__}", "parameters": int(engine.n_params_),
                  "architecture": " ".join(str(model).split())[:300], "builder": model_builder(config), "loss": m.loss,
                  "l2": m.l2, "previous_version": m.previous_version, "training_fit": fit},
        "data": {"target": d.target, "favourable": str(train.classes[train.favourable_index]),
                 "featurizer": loaded.featurizer,
                 "classes": [str(c) for c in train.classes], "n_features": int(train.X.shape[1]),
                 "splits": [{"name": k, "role": ROLES.get(k, k), "source": loaded.sources[k], "rows": v.n,
                             "sha256": loaded.hashes[k]} for k, v in splits.items()],
                 "sensitive": [{"attribute": s.column, "how_obtained": s.how_obtained or (
                     f"derived from {s.from_column} (bands at {', '.join(f'{b:g}' for b in s.bands)})"
                     if s.from_column else "not stated"),
                     "unknown": {k: v.unknown_counts().get(s.column, 0) for k, v in splits.items()}}
                     for s in d.sensitive]},
        "influence": {"method": engine.method, "damping": engine.damping, "damping_note": damping_note,
                      "dtype": m.dtype, "l2": m.l2, "seed": config.seed, "parameters": int(engine.n_params_),
                      "convention": engine.summary()["convention"], "refits": context.refit_summary(),
                      "stability": {"settings": settings, "findings": stable}},
        **findings,
    }
    obs = [o if isinstance(o, dict) else o.to_dict() for o in observations(run)]
    previous = history.previous(m.name) if history is not None else None
    checks = evaluate(policy, obs, previous=previous["observations"] if previous else None) if policy else []
    checks = [c if isinstance(c, dict) else c.to_dict() for c in checks]
    run["checks"] = checks
    run["status"] = overall_status(checks) if policy else "pass"
    run["policy"] = policy.to_dict() if policy else None
    run["key_figures"] = key_figures(obs)
    run["limitations"] = _limitations(run, context) + numerical_limitations(nonfinite, saturated) + list(notes)
    if policy is None:
        run["limitations"].insert(0, "No policy was given: findings are reported without pass/fail checks.")
    run["history"] = [{k: r[k] for k in ("report_id", "created_utc", "model_version", "status", "figures")}
                      for r in (history.runs(m.name) if history is not None else [])]
    run["sign_off"] = {"roles": [s.model_dump() for s in config.report.sign_off],
                       "independence": config.report.independence}
    run["provenance"] = {"hashes": {"model": run["model"]["weights_sha256"] or run["model"]["parameters_sha256"],
                                    "config": config.sha256,
                                    "policy": run["policy"]["sha256"] if policy else None, "data": loaded.hashes},
                         "versions": versions(), "seed": config.seed, "command": command,
                         "config_text": redact_record_ids(config.redacted_text, splits, context.token)}
    run["runtime"] = {"seconds": round(time.perf_counter() - started, 2), "steps": steps, "backend": where}
    return AuditRun(json_safe(run), _flagged_rows(context, run), obs, scores=_score_rows(context))


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
                                 scores=result.scores)
    return result
