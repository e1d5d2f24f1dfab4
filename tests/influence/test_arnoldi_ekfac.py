"""``method="arnoldi"``, ``"ekfac"`` and ``"kfac"`` against exact influence on real data (heart disease)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from conftest import L2_LR, L2_MLP, Positions, pearson

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


def test_arnoldi_rank_chosen_from_the_captured_spectrum(heart, heart_mlp, exact_mlp):
    """Default rank: the Ritz pairs that converged. Every kept pair is an eigenpair of H to ritz_tol (checked with
    the dense Hessian); with iterations = p all converge and the result is exact; more iterations, more kept."""
    S, s = exact_mlp
    p = sum(t.numel() for t in heart_mlp.parameters())
    full, Sa, sa = scores(heart_mlp, heart, L2_MLP, method="arnoldi", iterations=p)
    assert full.summary()["solver"]["rank_used"] == p
    np.testing.assert_allclose(Sa, S, rtol=1e-6, atol=1e-6 * np.abs(S).max())
    ranks = []
    for iterations in (60, 150):
        e, Sa, _ = scores(heart_mlp, heart, L2_MLP, method="arnoldi", iterations=iterations)
        summary = e.summary()["solver"]
        ranks.append(summary["rank_used"])
        assert summary["rank"] is None and summary["rank_rule"] == ("every Ritz pair with relative residual ≤ "
                                                                    "ritz_tol=0.0001, at most max_rank=1000")
        H = e.hessian_.dense()
        V, lam = e.solver_.vectors_, e.solver_.values_
        true = ((V @ H - lam[:, None] * V).norm(dim=1) / lam).max()
        assert summary["max_relative_ritz_residual"] <= 1e-4 and float(true) <= 1e-4 * 1.01
    assert ranks[0] < ranks[1] < 150
    capped = scores(heart_mlp, heart, L2_MLP, method="arnoldi", iterations=150, max_rank=7)[0].summary()["solver"]
    assert capped["rank_used"] == 7


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
                    "['rank', 'iterations', 'complement', 'seed', 'ritz_tol', 'max_rank']"),
    ({"ritz_tol": 0}, "ritz_tol=0 is not allowed: it must be a positive number"),
])
def test_arnoldi_bad_options(heart_lr, kw, message):
    with raises(InputError, message):
        ak.InfluenceEngine(heart_lr, "cross_entropy", l2=L2_LR, method="arnoldi", **kw)


def test_arnoldi_refuses_a_non_positive_kept_eigenvalue(heart):
    X, y = heart["X"][:100], heart["y"][:100]
    model = torch.nn.Linear(X.shape[1], 2).double()         # untrained, no l2: H is singular (one-hot columns)
    with pytest.raises(SingularHessianError, match="^method='arnoldi' kept an eigenvalue .* ≤ 0 among the top 80"):
        ak.InfluenceEngine(model, "cross_entropy", method="arnoldi", rank=80).fit(X, y)


# -------------------------------------------------------------------------------------------- ekfac, kfac
@pytest.mark.parametrize("method", ["ekfac", "kfac"])
def test_ekfac_on_logistic_regression_correlates_with_exact(heart, heart_lr, exact_lr, method):
    """Measured (heart disease, l2=0.01, 40 test records): EK-FAC 0.984 test × train, 0.993 self; K-FAC 0.981, 0.990."""
    S, s = exact_lr
    _, Sa, sa = scores(heart_lr, heart, L2_LR, method=method)
    assert pearson(Sa, S) >= 0.975 and pearson(sa, s) >= 0.985
    assert 0.9 < np.median(sa / s) < 1.1


@pytest.mark.parametrize("method", ["ekfac", "kfac"])
def test_ekfac_on_an_mlp(heart, heart_mlp, exact_mlp, method):
    """Measured (16 tanh units, l2=0.03, 40 test records): EK-FAC 0.968 test × train, 0.993 self; K-FAC 0.969, 0.990."""
    S, s = exact_mlp
    _, Sa, sa = scores(heart_mlp, heart, L2_MLP, method=method)
    assert pearson(Sa, S) >= 0.95 and spearman(sa, s) >= 0.95


def test_ekfac_diagonal_is_the_hessian_diagonal_in_the_kronecker_eigenbasis(heart, heart_lr):
    """For one Linear layer the Gauss–Newton matrix is the data term of H, so the re-fitted eigenvalues are
    exactly diag(Qᵀ (H − l2·I) Q) with Q = Q_S ⊗ Q_A (row-major θ: W then b, appended as ã's last column)."""
    e = ak.InfluenceEngine(heart_lr, "cross_entropy", l2=L2_LR, method="ekfac").fit(heart["X"], heart["y"])
    (block,), ((QS, QA, D),) = e.solver_.blocks_, e.solver_.factors_
    H = e.hessian_.dense() - L2_LR * torch.eye(e.n_params_, dtype=torch.float64)
    idx = block.index.reshape(-1)
    Q = torch.kron(QS, QA)
    np.testing.assert_allclose((Q.T @ H[idx][:, idx] @ Q).diagonal().reshape(D.shape), D - L2_LR, atol=1e-12)


@pytest.mark.parametrize("method", ["ekfac", "kfac"])
def test_self_influence_in_one_pass_agrees_with_per_record_quad_forms(heart, heart_mlp, method):
    e = ak.InfluenceEngine(heart_mlp, "cross_entropy", l2=L2_MLP, method=method, chunk_size=64).fit(heart["X"],
                                                                                                    heart["y"])
    s = e.self_influence()                                    # rank-1 factors, no per-record gradient formed
    G = e.fn_.per_record_grads(heart["X"], heart["y"])
    np.testing.assert_allclose(s, e.solver_.quad_forms(G).numpy() / e.n_train_, rtol=1e-10)
    np.testing.assert_allclose(s, (e.solver_.solve(G) * G).sum(1).numpy() / e.n_train_, rtol=1e-10)
    np.testing.assert_allclose(e.self_influence([5, 2, 600]), s[[5, 2, 600]], rtol=1e-12)
    lev = e.self_influence(np.arange(10), leverage=True)      # the Woodbury path uses solve()
    assert np.all(lev >= s[:10])


def test_ekfac_last_layer_only_and_unpenalised_bias(heart, heart_mlp):
    """params=['2'] keeps one block; with l2 on weights only, each bias is its own block S ⊗ [1]."""
    X, y = heart["X"], heart["y"]
    e = ak.InfluenceEngine(heart_mlp, "cross_entropy", l2=L2_MLP, method="ekfac", params=["2"]).fit(X, y)
    ex = ak.InfluenceEngine(heart_mlp, "cross_entropy", l2=L2_MLP, params=["2"]).fit(X, y)
    assert [b["layer"] for b in e.summary()["solver"]["blocks"]] == ["2"]
    assert pearson(e.self_influence(), ex.self_influence()) > 0.98
    split = ak.InfluenceEngine(heart_mlp, "cross_entropy", l2={"0.weight": L2_MLP, "2.weight": L2_MLP},
                               damping=1e-3, method="ekfac").fit(X, y)
    blocks = [(b["layer"], b["parameters"], b["shift"]) for b in split.summary()["solver"]["blocks"]]
    assert blocks == [("0", "weight", L2_MLP + 1e-3), ("0", "bias", 1e-3), ("2", "weight", L2_MLP + 1e-3),
                      ("2", "bias", 1e-3)]
    # the output layer's weight-only and bias-only blocks take the fixed-direction path (triangular factor);
    # the general form Σ P²/D of the per-record gradients must agree
    G = split.fn_.per_record_grads(X, y)
    np.testing.assert_allclose(split.self_influence(), split.solver_.quad_forms(G).numpy() / len(y), rtol=1e-10)


class WithBatchNorm(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(39, 4)
        self.bn = torch.nn.BatchNorm1d(4)
        self.scale = torch.nn.Parameter(torch.ones(2))
        self.out = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.out(torch.tanh(self.bn(self.fc(x)))) * self.scale


class Twice(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(torch.tanh(self.fc(x)))


def test_ekfac_refuses_other_layer_types(heart):
    X, y = heart["X"][:50], heart["y"][:50]
    model = WithBatchNorm().double()
    with raises(InputError, "method='ekfac' supports parameters of nn.Linear and nn.Conv2d layers only, not 'scale' "
                            "(a bare parameter of WithBatchNorm), 'bn.weight' (BatchNorm1d), 'bn.bias' (BatchNorm1d): "
                            "restrict influence to those layers with params=[...] (e.g. params=['fc', 'out']), "
                            "or use method='cg' or method='arnoldi'"):
        ak.InfluenceEngine(model, "cross_entropy", l2=0.1, method="ekfac").fit(X, y)
    e = ak.InfluenceEngine(model, "cross_entropy", l2=0.1, method="kfac", params=["fc", "out"]).fit(X, y)
    assert e.self_influence().shape == (50,)


def test_ekfac_refuses_conv2d_settings_it_cannot_factorise():
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 2, 3, groups=2, padding_mode="circular", padding=1),
                                torch.nn.Flatten(), torch.nn.Linear(32, 2)).double()
    X, y = torch.randn(20, 2, 4, 4, dtype=torch.float64), torch.arange(20) % 2
    with raises(InputError, "method='kfac' cannot factorise the Conv2d layer '0' (groups=2, padding_mode='circular'): "
                            "restrict influence to other layers with params=[...], or use method='cg' or "
                            "method='arnoldi'"):
        ak.InfluenceEngine(model, "cross_entropy", l2=0.1, method="kfac").fit(X, y)


def test_ekfac_refuses_a_layer_applied_twice():
    X, y = torch.randn(20, 2, dtype=torch.float64), torch.arange(20) % 2
    with raises(InputError, "method='ekfac' needs each layer applied once per record, but 'fc' is applied "
                            "several times: use method='cg' or method='arnoldi'"):
        ak.InfluenceEngine(Twice().double(), "cross_entropy", l2=0.1, method="ekfac").fit(X, y)


def test_ekfac_refuses_a_singular_factor_and_suggests_damping(heart):
    X, y = heart["X"][:100], heart["y"][:100]                  # one-hot columns: E[ããᵀ] is singular, no l2
    with pytest.raises(SingularHessianError, match=r"^method='kfac' found the curvature of the model \(one "
                                                   r"Linear layer\) singular "
                                                   r"\(smallest eigenvalue \S+, largest \S+, l2 \+ damping = 0\): "
                                                   r"pass damping=\S+ \(about 1e-3 of the largest eigenvalue\)$"):
        ak.InfluenceEngine(torch.nn.Linear(X.shape[1], 2).double(), "cross_entropy", method="kfac").fit(X, y)


@pytest.mark.parametrize("kw, message", [
    ({"curvature": "fisher"}, "curvature='fisher' is not allowed: use one of 'gauss_newton', 'empirical', "
                              "'sampled'"),
    ({"rank": 5}, "option(s) ['rank'] are not known to method='ekfac': allowed options are ['curvature', 'basis', "
                  "'cache_mb', 'seed', 'precision', 'curvature_records']"),
    ({"seed": -1}, "seed=-1 is not allowed: it must be an integer ≥ 0"),
    ({"precision": "half"}, "precision='half' is not allowed: use one of 'float64', 'engine'"),
    ({"basis": "fisher"}, "basis='fisher' is not allowed: use one of 'weighted', 'kfac'"),
    ({"cache_mb": -1}, "cache_mb=-1 is not allowed: it must be a number ≥ 0 (megabytes)"),
])
def test_ekfac_bad_options(heart_lr, kw, message):
    with raises(InputError, message):
        ak.InfluenceEngine(heart_lr, "cross_entropy", l2=L2_LR, method="ekfac", **kw)


def _hand_cross_entropy(outputs, targets):
    """Cross-entropy written out, so the solver cannot recognise it: Λ comes from autograd."""
    return torch.logsumexp(outputs, dim=1) - outputs.gather(1, targets.long()[:, None])[:, 0]


def _model(arch: str, classes: int) -> tuple[torch.nn.Module, tuple[int, ...]]:
    torch.manual_seed(0)
    if arch == "conv":                     # Conv2d with stride, padding and dilation, then a Linear layer
        return torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, stride=2, padding=1), torch.nn.Tanh(),
                                   torch.nn.Conv2d(3, 2, 2, dilation=(1, 2), padding="valid", bias=False),
                                   torch.nn.Flatten(), torch.nn.Linear(2 * 2 * 1, classes)).double(), (2, 5, 5)
    if arch == "positions":
        return Positions(classes).double(), (12,)
    return torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, classes)).double(), (5,)


@pytest.mark.parametrize("arch, loss, classes", [
    ("mlp", "cross_entropy", 2), ("mlp", "cross_entropy", 3), ("mlp", "bce", 1), ("mlp", "mse", 2),
    ("mlp", _hand_cross_entropy, 3), ("conv", "cross_entropy", 2), ("conv", "cross_entropy", 3),
    ("positions", "cross_entropy", 3)])
@pytest.mark.parametrize("cache_mb", [256.0, 0])
def test_ekfac_factors_match_the_gauss_newton_blocks_for_every_loss(arch, loss, classes, cache_mb):
    """Against an independent computation (per-record Jacobians by ``jacrev``, Λ by autograd): the re-fitted
    eigenvalues of every block are diag(Qᵀ GN_block Q), GN = (1/n) Σ_i J_iᵀ Λ_i J_i, and self-influence from the
    layer factors equals g_iᵀ H⁻¹ g_i of the per-record gradients; for Linear and Conv2d layers (patches,
    several output positions), kept factors or a second pass alike."""
    gen = torch.Generator().manual_seed(classes)
    model, shape = _model(arch, classes)
    X = torch.randn(120, *shape, generator=gen, dtype=torch.float64)
    y = (torch.randint(0, max(classes, 2), (120,), generator=gen) if loss != "mse"
         else torch.randn(120, classes, generator=gen, dtype=torch.float64))
    if loss == "bce":
        y = y.double()
    e = ak.InfluenceEngine(model, loss, l2=0.05, method="ekfac", cache_mb=cache_mb, chunk_size=50).fit(X, y)
    A = e.fn_.curvature_factors(X, y)                                               # (n, C, p)
    for block, (QS, QA, D) in zip(e.solver_.blocks_, e.solver_.factors_, strict=True):
        idx = block.index.reshape(-1)
        GN = torch.einsum("ncp,ncq->pq", A[:, :, idx], A[:, :, idx]) / len(y)
        Q = torch.kron(QS, QA)
        np.testing.assert_allclose((Q.T @ GN @ Q).diagonal().reshape(D.shape), D - 0.05, atol=1e-12)
    G = e.fn_.per_record_grads(X, y)
    np.testing.assert_allclose(e.self_influence(), e.solver_.quad_forms(G).numpy() / len(y), rtol=1e-10)


def test_ekfac_is_exact_on_binary_logistic_regression(heart, heart_lr, exact_lr):
    """Two classes: every Λ_i ∝ (1, −1)(1, −1)ᵀ, so the block is one Kronecker product; the weighted basis finds
    it and EK-FAC equals exact influence (the basis of George et al. does not: r 0.98 on this model)."""
    S, s = exact_lr
    _, Sa, sa = scores(heart_lr, heart, L2_LR, method="ekfac")
    np.testing.assert_allclose(Sa, S, rtol=1e-7, atol=1e-9 * np.abs(S).max())
    np.testing.assert_allclose(sa, s, rtol=1e-7)
    _, Sk, _ = scores(heart_lr, heart, L2_LR, method="ekfac", basis="kfac")
    assert pearson(Sk, S) < 0.999


def test_symmetric_and_triangular_products_equal_plain_matrix_products():
    """The BLAS shortcuts of the Kronecker factors (dsyrk: upper triangle of xᵀx; dtrmm: x L for lower L; the
    weighted Gram of (a, 1) without forming it) against plain torch products; under ``blas_threads`` SciPy's
    BLAS uses torch's thread count."""
    from threadpoolctl import threadpool_info

    from auditkit.influence.solvers import ekfac
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(300, 40, generator=gen, dtype=torch.float64)
    w = torch.rand(300, generator=gen, dtype=torch.float64)
    L = torch.randn(40, 40, generator=gen, dtype=torch.float64).tril()
    with ekfac.blas_threads():
        scipy_blas = [i for i in threadpool_info() if i["user_api"] == "blas" and "scipy" in i["filepath"]]
        assert scipy_blas and all(i["num_threads"] == torch.get_num_threads() for i in scipy_blas)
        np.testing.assert_allclose(ekfac._gram(x).triu(), (x.T @ x).triu(), rtol=1e-13, atol=1e-12)
        np.testing.assert_allclose(ekfac._times_lower(x, L), x @ L, rtol=1e-13, atol=1e-12)
        xa = torch.cat([x, torch.ones(300, 1, dtype=torch.float64)], 1)
        for weights in (None, w):
            full = xa.T @ (xa * (1 if weights is None else weights[:, None]))
            got = ekfac._augmented_gram(x, weights, bias=True)
            np.testing.assert_allclose(got.triu(), full.triu(), rtol=1e-13, atol=1e-12)
    assert ekfac._gram(x.float()).dtype == torch.float32          # other dtypes: plain matmul
