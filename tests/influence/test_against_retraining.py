"""The engine against the thing it approximates: actual leave-one-out retraining, and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import L2_LR, L2_MLP, leave_one_out, logistic, pearson, trained

import auditkit as ak
from auditkit.influence import retrain_without
from auditkit.influence.losses import resolve_loss


def _engine(model, heart, *, l2, method="exact", **kw):
    return ak.InfluenceEngine(model, "cross_entropy", l2=l2, method=method, **kw).fit(heart["X"], heart["y"])


def test_exact_logistic_regression_matches_retraining(heart, heart_lr, heart_lr_loo, sample):
    records, tests = sample
    own, test = heart_lr_loo
    eng = _engine(heart_lr, heart, l2=L2_LR)
    s = eng.self_influence()[records]
    S = eng.influence(heart["Xt"][tests], heart["yt"][tests])[:, records]
    assert pearson(s, own) >= 0.98
    assert pearson(S, test) >= 0.98
    # units: the change of loss on removal itself (the 1/n is inside the formula), not a score of another scale
    assert 0.8 <= np.median(s / own) <= 1.25
    slope = float(np.polyfit(test.ravel(), S.ravel(), 1)[0])
    assert 0.8 <= slope <= 1.25


def test_exact_mlp_matches_warm_started_retraining(heart, heart_mlp, heart_mlp_loo, sample):
    records, tests = sample
    own, test = heart_mlp_loo
    eng = _engine(heart_mlp, heart, l2=L2_MLP)
    assert pearson(eng.self_influence()[records], own) >= 0.9
    assert pearson(eng.influence(heart["Xt"][tests], heart["yt"][tests])[:, records], test) >= 0.9


def test_influence_on_a_group_measurement_matches_retraining(heart, heart_lr, sample):
    """e[j] for m = mean test loss of women − mean test loss of men, against retraining."""
    records, _ = sample
    loss_fn = resolve_loss("cross_entropy")
    women = torch.tensor((heart["prepared"].test["sex"] == "Female").to_numpy())

    def gap(outputs, y):
        losses = loss_fn(outputs, y)
        return losses[women].mean() - losses[~women].mean()

    eng = _engine(heart_lr, heart, l2=L2_LR)
    e = eng.influence_on(gap, heart["Xt"], heart["yt"])
    with torch.no_grad():
        base = float(gap(heart_lr(heart["Xt"]), heart["yt"]))
        actual = []
        for j in records:
            m = retrain_without(heart_lr, heart["X"], heart["y"], [int(j)], loss="cross_entropy", l2=L2_LR)
            actual.append(float(gap(m(heart["Xt"]), heart["yt"])) - base)
    assert e.shape == (len(heart["y"]),)
    assert pearson(e[records], actual) >= 0.98
    # removing a set of records: the sum of their effects predicts the retrained change
    top = np.argsort(e)[:15]
    m = retrain_without(heart_lr, heart["X"], heart["y"], top, loss="cross_entropy", l2=L2_LR)
    with torch.no_grad():
        observed = float(gap(m(heart["Xt"]), heart["yt"])) - base
    assert observed < 0
    assert abs(e[top].sum() - observed) <= 0.35 * abs(observed)


@pytest.mark.parametrize("method", ["cg", "lissa"])
def test_iterative_solvers_agree_with_exact(heart, heart_lr, method):
    exact = _engine(heart_lr, heart, l2=L2_LR)
    approx = _engine(heart_lr, heart, l2=L2_LR, method=method)
    Xt, yt = heart["Xt"][:20], heart["yt"][:20]
    assert pearson(approx.influence(Xt, yt), exact.influence(Xt, yt)) >= 0.99
    some = np.arange(0, 690, 23)
    assert pearson(approx.self_influence(some), exact.self_influence()[some]) >= 0.99
    assert np.allclose(approx.self_influence(some), exact.self_influence(some), rtol=1e-3, atol=1e-7)


def test_cg_self_influence_of_all_records_matches_exact(heart, heart_lr):
    exact = _engine(heart_lr, heart, l2=L2_LR).self_influence()
    cg = _engine(heart_lr, heart, l2=L2_LR, method="cg").self_influence()
    assert pearson(cg, exact) >= 0.9999
    assert np.all(exact >= 0)


def test_ridge_regression_matches_closed_form(heart):
    """Linear regression with mse: the engine's numbers equal (1/n) ∇L_testᵀ H⁻¹ ∇L_j written out by hand,
    and track the closed-form leave-one-out refit."""
    X, Xt = heart["X"][:, 1:], heart["Xt"][:, 1:]          # predict age (column 0) from the rest
    y, yt = heart["X"][:, 0], heart["Xt"][:, 0]
    n, d, l2 = X.shape[0], X.shape[1], 0.05
    A = 2 / n * X.T @ X + l2 * torch.eye(d, dtype=torch.float64)
    theta = torch.linalg.solve(A, 2 / n * X.T @ y)
    model = torch.nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(theta[None, :])
    eng = ak.InfluenceEngine(model, "mse", l2=l2).fit(X, y[:, None])
    S = eng.influence(Xt, yt[:, None])

    g_train = -2 * X * (y - X @ theta)[:, None]               # ∇ (y - xᵀθ)²
    g_test = -2 * Xt * (yt - Xt @ theta)[:, None]
    expected = (g_test @ torch.linalg.solve(A, g_train.T) / n).numpy()
    np.testing.assert_allclose(S, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(eng.self_influence(), np.einsum("ij,ji->i", g_train.numpy(),
                               torch.linalg.solve(A, g_train.T).numpy()) / n, rtol=1e-9, atol=1e-12)

    actual = []
    for j in range(0, n, 35):                                 # closed-form refit without record j
        keep = torch.arange(n) != j
        Aj = 2 / (n - 1) * X[keep].T @ X[keep] + l2 * torch.eye(d, dtype=torch.float64)
        tj = torch.linalg.solve(Aj, 2 / (n - 1) * X[keep].T @ y[keep])
        actual.append(((yt - Xt @ tj) ** 2 - (yt - Xt @ theta) ** 2).numpy())
    assert pearson(S[:, ::35], np.array(actual).T) >= 0.99


def test_bce_with_one_logit_matches_retraining(heart):
    X, y = heart["X"], heart["y"].double()
    model = trained(logistic(X.shape[1], out=1), X, y, loss="bce", l2=L2_LR)
    records = np.arange(5, 690, 70)
    own, test = leave_one_out(model, X, y, heart["Xt"][:30], heart["yt"][:30].double(), records,
                              loss="bce", l2=L2_LR)
    eng = ak.InfluenceEngine(model, "bce", l2=L2_LR).fit(X, y)
    assert pearson(eng.self_influence(records), own) >= 0.98
    assert pearson(eng.influence(heart["Xt"][:30], heart["yt"][:30].double())[:, records], test) >= 0.98


def test_last_layer_influence_equals_logistic_regression_on_features(heart, heart_mlp):
    """params=[last layer] is exactly influence in a logistic regression on the frozen hidden features."""
    body, head = heart_mlp[:2], heart_mlp[2]
    eng = ak.InfluenceEngine(heart_mlp, "cross_entropy", l2=L2_MLP, params=["2"]).fit(heart["X"], heart["y"])
    with torch.no_grad():
        F, Ft = body(heart["X"]), body(heart["Xt"][:10])
    lr = torch.nn.Linear(16, 2).double()
    lr.load_state_dict(head.state_dict())
    ref = ak.InfluenceEngine(lr, "cross_entropy", l2=L2_MLP).fit(F, heart["y"])
    np.testing.assert_allclose(eng.influence(heart["Xt"][:10], heart["yt"][:10]),
                               ref.influence(Ft, heart["yt"][:10]), rtol=1e-8, atol=1e-13)
    assert eng.n_params_ == 16 * 2 + 2
