"""The last step of a run: its findings and facts assembled into the run document (a JSON-safe dict).

The run document states facts (what was audited, how influence was fitted, which values could not be computed,
which seeds were used); the report composes its sentences from them (:mod:`auditkit.report`). The private rows
(record ids with their tokens) are made here too, for flagged_records.csv and record_scores.csv.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pandas as pd
import torch

from ._version import __version__
from .audits.base import AuditContext
from .config import AuditConfig
from .hashes import file_sha256
from .influence import InfluenceEngine
from .inputs import ROLES, LoadedData
from .models.loading import parameters_sha256

SCHEMA = "auditkit.run/1"
#: the plugins whose findings are top-level sections of the run document; any other plugin's go under "plugins"
BUILT_IN_SECTIONS = ("fairness", "privacy", "data_quality")


@dataclass
class RunFacts:
    """What the steps of a run found, for the document: the inputs, the fitted engine and how it was fitted, the
    stability check, the numerical conditions, the seeds and the key of the record tokens."""

    loaded: LoadedData
    model: torch.nn.Module
    given_model: torch.nn.Module | None
    builder: str
    training_fit: dict
    engine: InfluenceEngine
    fitting: dict
    stability: dict
    numerics: dict
    seeds: dict[str, int]
    token_key: str
    findings: dict[str, dict | None] = field(default_factory=dict)


def hidden_layers(model: torch.nn.Module) -> bool:
    """Whether the model has more than one layer with parameters of its own (a non-convex objective)."""
    return sum(1 for mod in model.modules() if any(True for _ in mod.parameters(recurse=False))) > 1


def model_section(config: AuditConfig, facts: RunFacts) -> dict:
    """The audited model: name, version, hashes, architecture, loss, L2, fit on the training records."""
    m, model = config.model, facts.model
    weights = file_sha256(config.path(m.weights)) if m.weights and facts.given_model is None else None
    return {"name": m.name, "version": m.version, "weights_sha256": weights,
            "parameters_sha256": parameters_sha256(model), "framework": f"PyTorch {torch.__version__}",
            "parameters": int(facts.engine.n_params_), "architecture": " ".join(str(model).split())[:300],
            "builder": facts.builder, "loss": m.loss, "l2": m.l2, "previous_version": m.previous_version,
            "training_fit": facts.training_fit, "hidden_layers": hidden_layers(model)}


def data_section(config: AuditConfig, loaded: LoadedData) -> dict:
    """The data: target, classes, featurizer, the splits with their sources and hashes, the sensitive
    attributes with how they were obtained and how many records have no value."""
    d, splits = config.data, loaded.splits
    train = splits["train"]

    def obtained(s) -> str:
        if s.how_obtained:
            return s.how_obtained
        if s.from_column:
            return f"derived from {s.from_column} (bands at {', '.join(f'{b:g}' for b in s.bands)})"
        return "not stated"

    return {"target": d.target, "favourable": str(train.classes[train.favourable_index]),
            "featurizer": loaded.featurizer, "classes": [str(c) for c in train.classes],
            "n_features": int(train.X.shape[1]),
            "splits": [{"name": k, "role": ROLES.get(k, k), "source": loaded.sources[k], "rows": v.n,
                        "sha256": loaded.hashes[k]} for k, v in splits.items()],
            "sensitive": [{"attribute": s.column, "how_obtained": obtained(s),
                           "unknown": {k: v.unknown_counts().get(s.column, 0) for k, v in splits.items()}}
                          for s in d.sensitive],
            "label_definition": d.label_definition, "features": feature_rows(config, loaded)}


def feature_rows(config: AuditConfig, loaded: LoadedData) -> list[dict]:
    """The datasheet's feature list: for each model input column, its kind (categorical or numeric), whether it is
    a sensitive attribute or the source of one, what it may stand in for (``data.proxies``), and how many records
    of each split have no value in it (missing: NaN or None in the table as read)."""
    d, splits = config.data, loaded.splits
    frame = loaded.splits["train"].frame
    names = list(d.features) if d.features else [str(c) for c in frame.columns
                                                 if c not in (d.target, d.id_column)]
    sensitive = {s.column for s in d.sensitive} | {s.from_column for s in d.sensitive if s.from_column}
    rows = []
    for name in names:
        kind = "categorical" if name in d.categorical or not pd.api.types.is_numeric_dtype(frame[name]) else "numeric"
        rows.append({"name": name, "kind": kind, "sensitive": name in sensitive, "proxy": d.proxies.get(name),
                     "missing": {k: int(v.frame[name].isna().sum()) if name in v.frame.columns else 0
                                 for k, v in splits.items()}})
    return rows


def solver_used(engine: InfluenceEngine) -> dict:
    """What ``method: auto`` chose and why, and the measured relative residual ‖b − Hx‖/‖b‖ of the iterative
    solvers (None for direct ones), from the engine's summary."""
    summary = engine.summary()
    solver = summary.get("solver") or {}
    return {"method_used": summary.get("method_used", engine.method), "method_reason": solver.get("reason"),
            "residual": summary.get("residual"), "stopping_rule": solver.get("stopping_rule"),
            "tol": solver.get("tol_used")}


def influence_section(config: AuditConfig, facts: RunFacts, context: AuditContext) -> dict:
    """How influence was computed: method, damping, dtype, the fitting steps, retrainings and stability."""
    engine = facts.engine
    return {"method": engine.method, **solver_used(engine), "damping": engine.damping,
            "dtype": config.model.dtype, "l2": config.model.l2,
            "seed": config.seed, "parameters": int(engine.n_params_), "convention": engine.summary()["convention"],
            "fitting": facts.fitting, "refits": context.refit_summary(), "stability": facts.stability}


def run_document(config: AuditConfig, facts: RunFacts, context: AuditContext, *, trigger: str) -> dict:
    """The run document before the policy is applied (status "incomplete"): identity, scope, model, data,
    influence, the findings (built-in sections, and ``plugins`` for the others) and the numerical facts."""
    created = datetime.now(timezone.utc).replace(microsecond=0)
    builtin = {name: facts.findings.get(name) for name in BUILT_IN_SECTIONS}
    others = {name: f for name, f in facts.findings.items() if name not in BUILT_IN_SECTIONS}
    return {"schema": SCHEMA, "report_id": f"AK-{created:%Y%m%d}-{secrets.token_hex(4).upper()}",
            "created_utc": created.isoformat().replace("+00:00", "Z"), "trigger": trigger, "status": "incomplete",
            "auditkit_version": __version__,
            "scope": config.report.model_dump(exclude={"sign_off", "independence"}),
            "model": model_section(config, facts), "data": data_section(config, facts.loaded),
            "influence": influence_section(config, facts, context), **builtin, "plugins": others,
            "numerics": facts.numerics}


def provenance(config: AuditConfig, run: dict, facts: RunFacts, *, versions: dict, command: str,
               config_text: str) -> dict:
    """Hashes of model, configuration, policy and data; versions; the seed and the seeds derived from it; what
    keys the record tokens; the command and the configuration's text (record ids replaced by tokens)."""
    return {"hashes": {"model": run["model"]["weights_sha256"] or run["model"]["parameters_sha256"],
                       "config": config.sha256, "policy": run["policy"]["sha256"] if run.get("policy") else None,
                       "data": facts.loaded.hashes},
            "versions": versions, "seed": config.seed, "seeds": dict(sorted(facts.seeds.items())),
            "token_key": facts.token_key, "command": command, "config_text": config_text}


def score_rows(context: AuditContext) -> list[dict]:
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
