"""TracInCP self-influence against a hand computation with torch.autograd, record by record."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from auditkit.errors import InputError
from auditkit.influence.tracin import tracin_self_influence


def net(hidden: int = 4) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 2)).double()


@pytest.fixture(scope="module")
def run():
    """A small MLP trained by SGD, with its state dict saved every 10 steps (three checkpoints)."""
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(37, 3, generator=gen, dtype=torch.float64)
    y = ((X[:, 0] - X[:, 1] + 0.5 * torch.randn(37, generator=gen, dtype=torch.float64)) > 0).long()
    model = net()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    checkpoints = []
    for step in range(1, 31):
        opt.zero_grad()
        F.cross_entropy(model(X), y).backward()
        opt.step()
        if step % 10 == 0:
            checkpoints.append(copy.deepcopy(model.state_dict()))
    return model, checkpoints, X, y


def by_hand(model, state, X, y) -> np.ndarray:
    """‖∇_θ ℓ(z_i; θ)‖² for each record, one autograd call per record."""
    m = copy.deepcopy(model)
    m.load_state_dict(state)
    out = []
    for i in range(len(y)):
        loss = F.cross_entropy(m(X[i:i + 1]), y[i:i + 1])
        grads = torch.autograd.grad(loss, list(m.parameters()))
        out.append(float(sum((g * g).sum() for g in grads)))
    return np.array(out)


def test_matches_autograd_record_by_record(run):
    model, checkpoints, X, y = run
    rates = [0.5, 0.25, 0.125]
    expected = sum(r * by_hand(model, s, X, y) for r, s in zip(rates, checkpoints, strict=True))
    got = tracin_self_influence(model, checkpoints, X, y, learning_rates=rates)
    assert got.shape == (37,) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)
    assert np.all(got > 0)


def test_chunk_size_does_not_change_the_result(run):
    model, checkpoints, X, y = run
    whole = tracin_self_influence(model, checkpoints, X, y, chunk_size=256)
    for size in (1, 5, 36):
        np.testing.assert_allclose(tracin_self_influence(model, checkpoints, X, y, chunk_size=size), whole,
                                   rtol=0, atol=1e-12)


def test_two_checkpoints_give_the_sum(run):
    model, checkpoints, X, y = run
    a = tracin_self_influence(model, checkpoints[:1], X, y)
    b = tracin_self_influence(model, checkpoints[1:2], X, y)
    both = tracin_self_influence(model, checkpoints[:2], X, y)
    np.testing.assert_allclose(both, a + b, rtol=0, atol=1e-12)
    np.testing.assert_allclose(a, by_hand(model, checkpoints[0], X, y), rtol=0, atol=1e-10)


def test_model_and_numpy_input_left_intact(run):
    model, checkpoints, X, y = run
    before = copy.deepcopy(model.state_dict())
    got = tracin_self_influence(model, checkpoints, X.numpy(), y.numpy())
    np.testing.assert_allclose(got, tracin_self_influence(model, checkpoints, X, y), rtol=0, atol=1e-12)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_last_layer_only(run):
    model, checkpoints, X, y = run
    m = copy.deepcopy(model)
    m.load_state_dict(checkpoints[-1])
    expected = []
    for i in range(len(y)):
        loss = F.cross_entropy(m(X[i:i + 1]), y[i:i + 1])
        grads = torch.autograd.grad(loss, [m[2].weight, m[2].bias])
        expected.append(float(sum((g * g).sum() for g in grads)))
    got = tracin_self_influence(model, checkpoints[-1:], X, y, params=["2"])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)


def raises(message):
    return pytest.raises(InputError, match="^" + re.escape(message) + "$")


def test_state_dict_of_another_architecture(run):
    model, checkpoints, X, y = run
    other = net(hidden=5).state_dict()
    with raises("checkpoint 1 does not match the model's architecture (0.weight has shape (5, 3) but the "
                "model's has (4, 3); 0.bias has shape (5,) but the model's has (4,); 2.weight has shape (2, 5) "
                "but the model's has (2, 4)): pass state dicts saved with model.state_dict() from the same "
                "architecture as the model"):
        tracin_self_influence(model, [checkpoints[0], other], X, y)
    renamed = {"layer." + k: v for k, v in checkpoints[0].items()}
    with raises("checkpoint 0 does not match the model's architecture (missing 0.weight, 0.bias, 2.weight …; "
                "unexpected layer.0.weight, layer.0.bias, layer.2.weight …): pass state dicts saved with "
                "model.state_dict() from the same architecture as the model"):
        tracin_self_influence(model, [renamed], X, y)


def test_bad_arguments(run):
    model, checkpoints, X, y = run
    with raises("checkpoints is empty: pass a list of at least one state dict saved during training "
                "(model.state_dict())"):
        tracin_self_influence(model, [], X, y)
    with raises("checkpoints must be a list of state dicts, got OrderedDict: wrap a single state dict in a list"):
        tracin_self_influence(model, checkpoints[0], X, y)
    with raises("learning_rates has 2 values but there are 3 checkpoints: pass one step size per checkpoint"):
        tracin_self_influence(model, checkpoints, X, y, learning_rates=[1, 2])
    with raises("learning_rates=[1.0, -1.0, 1.0] is not allowed: every step size must be a finite number ≥ 0"):
        tracin_self_influence(model, checkpoints, X, y, learning_rates=[1, -1, 1])
    with raises("checkpoint 0 is a list, not a state dict: pass state dicts saved with model.state_dict() from "
                "the same architecture as the model"):
        tracin_self_influence(model, [[1, 2]], X, y)
    with raises("chunk_size=0 is not allowed: it must be a positive integer"):
        tracin_self_influence(model, checkpoints, X, y, chunk_size=0)
    with raises("y for X has labels in [0, 2] but the model has 2 outputs: labels must lie in 0..1"):
        tracin_self_influence(model, checkpoints, X, torch.cat([y[:-1], torch.tensor([2])]))
