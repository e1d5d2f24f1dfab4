"""``method="arnoldi"``, ``"ekfac"`` and ``"kfac"`` against exact influence on real data (heart disease)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from conftest import L2_LR, L2_MLP, pearson

import auditkit as ak
from auditkit.errors import InputError, SingularHessianError


def raises(error, message):
    return pytest.raises(error, match="^" + re.escape(message) + "$")


def spearman(a, b) -> float:
    rank = lambda v: np.argsort(np.argsort(np.ravel(v)))  # noqa: E731
    return pearson(rank(a), rank(b))


@pytest.fixture(scope="module")
def exact_lr(heart, heart_lr):
    e = ak.InfluenceEngine(heart_lr, "cross_entropy", l2=L2_LR).fit(heart["X"], heart["y"])
    return e.influence(heart["Xt"][:40], heart["yt"][:40]), e.self_influence()


@pytest.fixture(scope="module")
def exact_mlp(heart, heart_mlp):
    e = ak.InfluenceEngine(heart_mlp, "cross_entropy", l2=L2_MLP).fit(heart["X"], heart["y"])
    return e.influence(heart["Xt"][:40], heart["yt"][:40]), e.self_influence()


def scores(model, heart, l2, **kw):
    e = ak.InfluenceEngine(model, "cross_entropy", l2=l2, **kw).fit(heart["X"], heart["y"])
    return e, e.influence(heart["Xt"][:40], heart["yt"][:40]), e.self_influence()


# ------------------------------------------------------------------------------------------------ arnoldi
def test_arnoldi_at_full_rank_equals_exact(heart, heart_lr, heart_mlp, exact_lr, exact_mlp):
    for model, l2, (S, s) in [(heart_lr, L2_LR, exact_lr), (heart_mlp, L2_MLP, exact_mlp)]:
        p = sum(t.numel() for t in model.parameters())
        e, Sa, sa = scores(model, heart, l2, method="arnoldi", rank=p, iterations=p)
        np.testing.assert_allclose(Sa, S, rtol=1e-6, atol=1e-6 * np.abs(S).max())
        np.testing.assert_allclose(sa, s, rtol=1e-6)
        assert e.summary()["solver"]["rank_used"] == p


def test_arnoldi_degrades_gracefully_with_rank(heart, heart_mlp, exact_mlp):
    """Correlation with exact influence grows with the rank kept; self-influence (dropped complement) from below."""
    S, s = exact_mlp
    test_corr, self_corr = [], []
    for rank in (5, 20, 50):
        _, Sa, sa = scores(heart_mlp, heart, L2_MLP, method="arnoldi", rank=rank)
        test_corr.append(pearson(Sa, S))
        self_corr.append(pearson(sa, s))
        assert np.all(sa <= s * (1 + 1e-9) + 1e-15)          # complement dropped: gᵀH⁻¹g underestimated
    assert test_corr == sorted(test_corr) and self_corr == sorted(self_corr)
    assert test_corr[0] > 0.5 and test_corr[-1] > 0.99 and self_corr[-1] > 0.99


def test_arnoldi_self_influence_matches_per_record_solves(heart, heart_mlp):
    e = ak.InfluenceEngine(heart_mlp, "cross_entropy", l2=L2_MLP, method="arnoldi", rank=20,
                           complement="smallest").fit(heart["X"], heart["y"])
    s = e.self_influence()
    G = e.fn_.per_record_grads(heart["X"][:30], heart["y"][:30])
    direct = (e.solver_.solve(G) * G).sum(1).numpy() / e.n_train_
    np.testing.assert_allclose(s[:30], direct, rtol=1e-10)
    np.testing.assert_allclose(e.self_influence(np.arange(30)), s[:30], rtol=1e-12)


def test_arnoldi_summary_reports_the_spectrum(heart, heart_lr):
    e = ak.InfluenceEngine(heart_lr, "cross_entropy", l2=L2_LR, method="arnoldi", rank=10).fit(heart["X"], heart["y"])
    summary = e.summary()["solver"]
    assert summary["method"] == "arnoldi" and summary["rank"] == 10 and summary["iterations_used"] == 30
    assert summary["largest_eigenvalue"] >= summary["smallest_kept_eigenvalue"] > L2_LR
    assert summary["max_relative_ritz_residual"] < 1e-3


@pytest.mark.parametrize("kw, message", [
    ({"rank": 0}, "rank=0 is not allowed: it must be a positive integer"),
    ({"rank": 2.5}, "rank=2.5 is not allowed: it must be a positive integer"),
    ({"rank": 10, "iterations": 5}, "iterations=5 is not allowed: it must be ≥ rank=10 (each iteration adds one "
                                    "vector to the Krylov space the eigenpairs come from)"),
    ({"complement": "zero"}, "complement='zero' is not allowed: use one of 'drop', 'smallest'"),
    ({"seed": "a"}, "seed='a' is not allowed: it must be an integer"),
    ({"tol": 1e-3}, "option(s) ['tol'] are not known to method='arnoldi': allowed options are "
                    "['rank', 'iterations', 'complement', 'seed']"),
])
def test_arnoldi_bad_options(heart_lr, kw, message):
    with raises(InputError, message):
        ak.InfluenceEngine(heart_lr, "cross_entropy", l2=L2_LR, method="arnoldi", **kw)


def test_arnoldi_refuses_a_non_positive_kept_eigenvalue(heart):
    X, y = heart["X"][:100], heart["y"][:100]
    model = torch.nn.Linear(X.shape[1], 2).double()         # untrained, no l2: H is singular (one-hot columns)
    with pytest.raises(SingularHessianError, match="^method='arnoldi' kept an eigenvalue .* ≤ 0 among the top 80"):
        ak.InfluenceEngine(model, "cross_entropy", method="arnoldi", rank=80).fit(X, y)
