"""The audit's influence questions in one pass: plans collected by ``prefetch`` and answered by one
``engine.batch``; findings identical to the plugins asking one question at a time."""

from __future__ import annotations

import math

import numpy as np
import torch
from conftest import ROOT

import auditkit as ak
from auditkit.audits.base import AuditContext
from auditkit.audits.registry import load_plugin, prefetch, run_plugin
from auditkit.audits.stability import stability
from auditkit.data import DataSpec, age_bands, load_table, prepare_splits

L2 = 0.01
OPTIONS = {"fairness": {"min_group_size": 20, "bootstrap": 50, "intersections": [["sex", "age_band"]]},
           "privacy": {}, "data_quality": {}}


def splits():
    frame = load_table(ROOT / "examples/heart_disease/data/heart_disease_uci.csv")
    frame["disease"] = np.where(frame.pop("num") > 0, "yes", "no")
    frame["id"] = [f"patient-{i:05d}" for i in frame["id"]]
    frame["age_band"] = age_bands(frame["age"], edges=(55,))
    order = np.random.default_rng(0).permutation(len(frame))
    parts = {"train": frame.iloc[order[:560]], "test": frame.iloc[order[560:740]], "holdout": frame.iloc[order[740:]]}
    spec = DataSpec(target="disease", sensitive=("sex", "age_band"), id_column="id", favourable="yes",
                    features=tuple(c for c in frame.columns if c not in ("disease", "id", "age_band")))
    return prepare_splits(parts, spec)


def counted(engine) -> list[int]:
    """A counter of the passes over the engine's training records (calls of their chunk iterator)."""
    calls, chunks = [0], engine.train_.chunks

    def spy(*args, **kwargs):
        calls[0] += 1
        return chunks(*args, **kwargs)

    engine.train_.chunks = spy
    return calls


def audit(data, *, one_pass: bool):
    torch.manual_seed(0)
    X, y = torch.tensor(data["train"].X), torch.tensor(data["train"].y)
    model = torch.nn.Linear(X.shape[1], 2).double()
    assert ak.fit_model(model, X, y, l2=L2)["converged"]
    ctx = AuditContext(model, ak.InfluenceEngine(model, "cross_entropy", l2=L2).fit(X, y), data, l2=L2, seed=0,
                       token_key=b"one key for both audits compared")
    others = {f"ridge ×{f:g}": ak.InfluenceEngine(model, "cross_entropy", l2=L2 * f).fit(X, y) for f in (0.1, 10)}
    passes = [counted(e) for e in (ctx.engine, *others.values())]
    if one_pass:
        prefetch(ctx, OPTIONS)
    findings = {name: run_plugin(name, ctx, options).to_dict() for name, options in OPTIONS.items()}
    rankings = [(name, r) for name, found in findings.items() for r in load_plugin(name)().rankings(found, ctx)]
    findings["stability"] = stability(ctx, rankings, others)
    return findings, [p[0] for p in passes]


def differences(a, b, path=""):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        return [d for k in a for d in differences(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{path}[{i}]")]
    if hasattr(a, "to_dict"):
        return differences(a.to_dict(), b.to_dict(), path)
    if isinstance(a, float) and isinstance(b, float):
        same = (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-10
        return [] if same else [(path, a, b)]
    if isinstance(a, np.ndarray):
        return [] if np.allclose(a, b, rtol=0, atol=1e-10, equal_nan=True) else [(path, a, b)]
    return [] if a == b else [(path, a, b)]


def test_one_pass_for_all_plugins_with_identical_findings():
    data = splits()
    separate, separate_passes = audit(data, one_pass=False)
    combined, combined_passes = audit(data, one_pass=True)
    assert differences(separate, combined) == []
    # fairness gaps (7 attributed here) + explanations + self-influence, and the stability check's own questions
    assert len(combined["fairness"]["attributions"]) >= 5 and combined["fairness"]["explanations"]
    assert combined_passes == [1, 1, 1]                  # the audit's engine once; each other engine once
    assert separate_passes[0] >= len(combined["fairness"]["attributions"]) + 2
