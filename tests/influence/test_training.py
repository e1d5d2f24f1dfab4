"""fit_model reaches the minimum of the contract's objective: checked against scikit-learn."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

import auditkit as ak


def test_fit_model_matches_scikit_learn_logistic_regression(heart):
    X, y = heart["X"].numpy(), heart["y"].numpy()
    n, l2 = len(y), 0.01
    # scikit-learn minimises C·Σ ℓ_i + ½‖w‖², i.e. mean ℓ + (1/(2Cn))‖w‖²: the same objective when C = 1/(n·l2)
    ref = LogisticRegression(C=1 / (n * l2), fit_intercept=False, tol=1e-12, max_iter=10_000).fit(X, y)
    model = torch.nn.Linear(X.shape[1], 1, bias=False).double()
    info = ak.fit_model(model, X, y.astype(np.float64), loss="bce", l2=l2)
    assert info["converged"] and info["grad_norm"] <= 1e-9
    np.testing.assert_allclose(model.weight.detach().numpy()[0], ref.coef_[0], rtol=1e-5, atol=1e-7)


def test_retrain_without_drops_the_records_and_starts_warm(heart):
    X, y = heart["X"][:100], heart["y"][:100]
    model = torch.nn.Linear(X.shape[1], 2).double()
    ak.fit_model(model, X, y, l2=0.05)
    again = ak.influence.retrain_without(model, X, y, [3, 7], l2=0.05)
    cold = torch.nn.Linear(X.shape[1], 2).double()
    keep = [i for i in range(100) if i not in (3, 7)]
    ak.fit_model(cold, X[keep], y[keep], l2=0.05)
    np.testing.assert_allclose(again.weight.detach(), cold.weight.detach(), atol=1e-7)
    assert not torch.equal(again.weight, model.weight)        # the original model is untouched
