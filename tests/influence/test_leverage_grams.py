"""Leverage-corrected self-influence solves only for a basis of each record's rows [g; A] (``ChunkKernel.grams``):
for cross-entropy g lies in the span of A's rows and softmax has no curvature along (1, …, 1), so a binary model
needs 1 triangular solve per record instead of 3, a 3-class one 2 instead of 4; the answers equal the Woodbury
formula on all rows, and ``(1/n) gᵀ(H ± AᵀA/n)⁻¹g`` from the dense Hessian, to 1e-10."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import auditkit as ak
from auditkit.influence.solvers.exact import ExactSolver


def model_and_data(classes: int, loss: str):
    gen = torch.Generator().manual_seed(3)
    X = torch.randn(60, 4, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 2 if loss == "bce" else classes, (60,), generator=gen)
    y = y.double() if loss == "bce" else y
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 1 if loss == "bce" else classes)).double()
    ak.fit_model(model, X, y, loss=loss, l2=1e-2)
    return model, X, y


@pytest.mark.parametrize(("classes", "loss", "rows"), [(2, "cross_entropy", 1), (3, "cross_entropy", 2), (1, "bce", 1)])
def test_rows_solved_and_values_equal_the_dense_formula(classes, loss, rows, monkeypatch):
    model, X, y = model_and_data(classes, loss)
    engine = ak.InfluenceEngine(model, loss, l2=1e-2, method="exact").fit(X, y)
    seen = []
    factors = ExactSolver.gram_factors
    monkeypatch.setattr(ExactSolver, "gram_factors", lambda self, B: seen.append(len(B)) or factors(self, B))
    inside = engine.self_influence(leverage=True)
    outside = engine.self_influence_of(X[:7], y[:7], leverage=True)
    assert seen == [60 * rows, 7 * rows]                                   # rows solved: inside, then outside
    fn, n = engine.fn_, 60
    H = engine.hessian_.dense()
    G = fn.per_record_grads(X, y)
    A = fn.curvature_factors(X, y)
    for j in range(7):
        for c, got in ((-1, inside[j]), (1, outside[j])):
            want = G[j] @ torch.linalg.solve(H + c * A[j].T @ A[j] / n, G[j]) / n
            assert abs(got - float(want)) <= 1e-10 * abs(float(want)) + 1e-16
    assert np.abs(inside).max() > 1e-4
