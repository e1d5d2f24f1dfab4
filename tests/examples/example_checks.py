"""Checks shared by the examples' tests: load an example as the audit would, score its committed model."""

from __future__ import annotations

from pathlib import Path

import torch

from auditkit.config import load_config
from auditkit.influence.losses import resolve_loss
from auditkit.influence.penalty import l2_of_parameters
from auditkit.inputs import load_data, load_model

ROOT = Path(__file__).resolve().parents[2]


def load_example(name: str):
    """(configuration, loaded data, model) of ``examples/<name>/audit.yaml``, exactly as ``auditkit run`` has them."""
    torch.set_num_threads(1)
    config = load_config(ROOT / "examples" / name / "audit.yaml")
    data = load_data(config)
    return config, data, load_model(config, data.splits)


def accuracy(model: torch.nn.Module, split) -> float:
    """Share of a split's records whose arg-max prediction is their label."""
    with torch.no_grad():
        predicted = model(torch.tensor(split.X)).argmax(1).numpy()
    return float((predicted == split.y).mean())


def objective_gradient(config, model: torch.nn.Module, split) -> float:
    """‖∇R‖∞ of the audited objective R = mean loss + ½ Σ_k l2_k ‖θ_k‖² at the model's parameters."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    coefficients = l2_of_parameters(config.model.l2, [n for n, _ in named])
    X, y = torch.tensor(split.X), torch.tensor(split.y)
    objective = resolve_loss(config.model.loss)(model(X), y).mean() + 0.5 * sum(
        c * (p * p).sum() for c, p in zip(coefficients, params, strict=True))
    return max(float(g.abs().max()) for g in torch.autograd.grad(objective, params))
