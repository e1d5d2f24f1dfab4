"""``stationarity``: the gradient of mean loss + L2 at the given weights, against its closed form for logistic
regression (softmax, two classes) on real data, and its size relative to shuffled labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from auditkit import fit_model
from auditkit.influence.stationarity import stationarity


def closed_form(model: torch.nn.Linear, X: np.ndarray, y: np.ndarray, l2: float) -> tuple[float, float, float]:
    """(‖∇R‖₂, mean loss, accuracy) of softmax regression: ∇_W R = (P − Y)ᵀX / n + l2·W, ∇_b R = mean(P − Y) + l2·b."""
    W, b = model.weight.detach().numpy(), model.bias.detach().numpy()
    logits = X @ W.T + b
    P = np.exp(logits - logits.max(1, keepdims=True))
    P /= P.sum(1, keepdims=True)
    Y = np.eye(2)[y]
    gW = (P - Y).T @ X / len(y) + l2 * W
    gb = (P - Y).mean(0) + l2 * b
    loss = -np.log(P[np.arange(len(y)), y]).mean()
    return float(np.sqrt((gW ** 2).sum() + (gb ** 2).sum())), float(loss), float((P.argmax(1) == y).mean())


@pytest.fixture(scope="module")
def data(heart):
    return heart["X"].numpy(), heart["y"].numpy()


def test_gradient_loss_and_accuracy_equal_the_closed_form_away_from_a_minimum(data):
    X, y = data
    torch.manual_seed(1)
    model = torch.nn.Linear(X.shape[1], 2).double()          # random weights: far from any minimum
    got = stationarity(model, X, y, l2=0.01, seed=3, chunk_size=100)    # several chunks
    norm, loss, accuracy = closed_form(model, X, y, 0.01)
    assert got["grad_norm"] == pytest.approx(norm, rel=1e-10)
    assert got["loss"] == pytest.approx(loss, rel=1e-12) and got["accuracy"] == pytest.approx(accuracy)
    shuffled = y[np.random.default_rng(3).permutation(len(y))]
    assert got["reference_norm"] == pytest.approx(closed_form(model, X, shuffled, 0.01)[0], rel=1e-10)
    assert got["relative"] == pytest.approx(norm / got["reference_norm"])
    penalty = 0.005 * sum(float((p.detach() ** 2).sum()) for p in model.parameters())
    assert got["objective"] == pytest.approx(loss + penalty, rel=1e-12)


def test_a_trained_minimum_is_stationary_and_the_wrong_l2_or_features_are_not(data):
    X, y = data
    model = torch.nn.Linear(X.shape[1], 2).double()
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.zeros_(model.bias)
    assert fit_model(model, torch.tensor(X), torch.tensor(y), l2=0.01)["converged"]
    assert stationarity(model, X, y, l2=0.01)["relative"] < 1e-8
    assert stationarity(model, X, y, l2=0.1)["relative"] > 0.05                  # l2 ten times too large
    binary = np.all(np.isin(X, (0.0, 1.0)), axis=0)                             # the one-hot columns
    restandardised = X.copy()
    restandardised[:, binary] = (X[:, binary] - X[:, binary].mean(0)) / X[:, binary].std(0, ddof=1)
    assert stationarity(model, restandardised, y, l2=0.01)["relative"] > 0.05
    assert model.training is True                                                 # mode restored
