"""Per-parameter L2 (``l2={name or prefix: λ_k}``): same results as a number when equal, unpenalised intercepts
match actual retraining, and bad mappings are refused with one-line messages."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from conftest import L2_LR, leave_one_out, logistic, pearson, trained

import auditkit as ak
from auditkit.errors import InputError, SingularHessianError
from auditkit.influence.hessian import HessianOperator
from auditkit.influence.penalty import l2_of_parameters

WEIGHT_ONLY = {"weight": L2_LR}


@pytest.fixture(scope="module")
def heart_lr_free_bias(heart):
    """Logistic regression (one logit, as scikit-learn fits it) trained to a minimum of mean loss + (λ/2)‖w‖², the
    intercept unpenalised. (With two logits and a free intercept, H would be singular along b₀ = b₁.)"""
    return trained(logistic(heart["X"].shape[1], 1), heart["X"], heart["y"], loss="bce", l2=WEIGHT_ONLY)


@pytest.mark.parametrize("method", ["exact", "cg"])
def test_a_mapping_equal_to_a_number_gives_identical_results(heart, heart_lr, method):
    Xt, yt = heart["Xt"][:15], heart["yt"][:15]
    some = np.arange(0, 690, 37)
    results = []
    for l2 in (L2_LR, {"weight": L2_LR, "bias": L2_LR}):
        eng = ak.InfluenceEngine(heart_lr, "cross_entropy", l2=l2, method=method).fit(heart["X"], heart["y"])
        results.append((eng.influence(Xt, yt), eng.self_influence(some), eng.self_influence(some, leverage=True)))
    for a, b in zip(results[0], results[1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_prefixes_and_the_most_specific_key():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    names = [n for n, _ in model.named_parameters()]
    assert l2_of_parameters({"0": 0.5, "0.bias": 0.0, "2.weight": 0.25}, names) == [0.5, 0.0, 0.25, 0.0]
    assert l2_of_parameters(0.1, names) == [0.1] * 4
    X, y = torch.randn(30, 3, dtype=torch.float64), torch.arange(30) % 2
    eng = ak.InfluenceEngine(model, l2={"0": 0.5, "0.bias": 0.0, "2.weight": 0.25}, damping=0.125).fit(X, y)
    expected = torch.cat([torch.full((12,), 0.5), torch.zeros(4), torch.full((8,), 0.25), torch.zeros(2)])
    assert torch.equal(eng.hessian_.l2_vector, expected.double())
    assert torch.equal(eng.hessian_.shift, expected.double() + 0.125)
    # the operator adds diag(λ + damping): H·e_k − (data term)·e_k = (λ_k + damping)·e_k
    data_only = HessianOperator(eng.fn_, eng.train_, l2=0.0, damping=0.0, chunk_size=256)
    eye = torch.eye(eng.n_params_, dtype=torch.float64)
    assert torch.allclose(eng.hessian_.matvec(eye) - data_only.matvec(eye), torch.diag(expected.double() + 0.125))
    assert eng.l2 == {"0": 0.5, "0.bias": 0.0, "2.weight": 0.25}
    assert eng.summary()["l2"] == {"0": 0.5, "0.bias": 0.0, "2.weight": 0.25}


def test_fit_model_with_a_mapping_leaves_the_bias_free(heart):
    """At the minimum of mean loss + (λ/2)‖W‖²: ∇_b mean loss = 0 and ∇_W mean loss = −λ·W."""
    model = logistic(heart["X"].shape[1])
    info = ak.fit_model(model, heart["X"], heart["y"], l2=WEIGHT_ONLY)
    assert info["converged"]
    loss = torch.nn.functional.cross_entropy(model(heart["X"]), heart["y"])
    gw, gb = torch.autograd.grad(loss, [model.weight, model.bias])
    assert float(gb.abs().max()) < 1e-8
    assert torch.allclose(gw, -L2_LR * model.weight.detach(), atol=1e-8)
    # the same as a number when the mapping gives every parameter that number
    a, b = logistic(heart["X"].shape[1]), logistic(heart["X"].shape[1])
    ak.fit_model(a, heart["X"], heart["y"], l2=L2_LR)
    ak.fit_model(b, heart["X"], heart["y"], l2={"weight": L2_LR, "bias": L2_LR})
    assert torch.allclose(a.weight, b.weight, atol=1e-9) and torch.allclose(a.bias, b.bias, atol=1e-9)


def test_unpenalised_bias_matches_actual_retraining(heart, heart_lr_free_bias, sample):
    records, tests = sample
    own, test = leave_one_out(heart_lr_free_bias, heart["X"], heart["y"], heart["Xt"][tests], heart["yt"][tests],
                              records, loss="bce", l2=WEIGHT_ONLY)
    eng = ak.InfluenceEngine(heart_lr_free_bias, "bce", l2=WEIGHT_ONLY).fit(heart["X"], heart["y"])
    s = eng.self_influence()[records]
    S = eng.influence(heart["Xt"][tests], heart["yt"][tests])[:, records]
    assert pearson(s, own) >= 0.99
    assert pearson(S, test) >= 0.99
    assert 0.8 <= np.median(s / own) <= 1.25
    # and the penalised-bias Hessian would be the wrong one: its estimates are measurably further off
    wrong = ak.InfluenceEngine(heart_lr_free_bias, "bce", l2=L2_LR).fit(heart["X"], heart["y"])
    S_wrong = wrong.influence(heart["Xt"][tests], heart["yt"][tests])[:, records]
    assert np.abs(S - test).sum() < np.abs(S_wrong - test).sum()


def test_lissa_with_a_mapping_agrees_with_exact(heart, heart_lr_free_bias):
    Xt, yt = heart["Xt"][:10], heart["yt"][:10]
    exact = ak.InfluenceEngine(heart_lr_free_bias, "bce", l2=WEIGHT_ONLY).fit(heart["X"], heart["y"])
    lissa = ak.InfluenceEngine(heart_lr_free_bias, "bce", l2=WEIGHT_ONLY, method="lissa").fit(heart["X"], heart["y"])
    assert pearson(lissa.influence(Xt, yt), exact.influence(Xt, yt)) >= 0.99


@pytest.mark.parametrize(("l2", "message"), [
    ({"weights": 0.1}, "l2 key 'weights' matches no trainable parameter of the model: use parameter names or name "
                       "prefixes among ['weight', 'bias']"),
    ({"weight": -0.1}, "l2['weight']=-0.1 is not allowed: it must be a finite number ≥ 0"),
    ({"bias": float("inf")}, "l2['bias']=inf is not allowed: it must be a finite number ≥ 0"),
    ({3: 0.1}, "l2 key 3 is not allowed: keys are parameter names or name prefixes (non-empty strings)"),
    ("0.1", "l2='0.1' is not allowed: it must be a finite number ≥ 0 or a mapping {parameter name or prefix: "
            "number ≥ 0}"),
    (-1.0, "l2=-1.0 is not allowed: it must be a finite number ≥ 0"),
])
def test_bad_l2_is_refused_with_a_one_line_message(l2, message):
    model = torch.nn.Linear(3, 2).double()
    for call in (lambda: ak.InfluenceEngine(model, l2=l2),
                 lambda: ak.fit_model(model, torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), l2=l2)):
        with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
            call()


def test_singular_hessian_message_shows_the_mapping():
    torch.manual_seed(0)
    X = torch.randn(40, 3, dtype=torch.float64)
    X = torch.cat([X, X[:, :1]], dim=1)             # a duplicated feature: singular without a penalty on it
    y = torch.randint(2, (40,))
    model = torch.nn.Linear(4, 2).double()
    ak.fit_model(model, X, y, l2={"bias": 0.1})
    with pytest.raises(SingularHessianError, match=re.escape("with l2={'bias': 0.1} and damping=0)")):
        ak.InfluenceEngine(model, l2={"bias": 0.1}).fit(X, y)
