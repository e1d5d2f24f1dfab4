"""Block solves (CG, preconditioned CG, LiSSA over all right-hand sides at once), ``pcg`` and ``auto``, against
the column-by-column solves and against exact influence, on binary and multiclass models (scikit-learn's wine,
3 classes; digits, 10 classes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import trained
from sklearn.datasets import load_digits, load_wine

import auditkit as ak
from auditkit.errors import InputError

L2 = 0.01


def _standardised(X: np.ndarray) -> torch.Tensor:
    X = (X - X.mean(0)) / X.std(0).clip(1e-12)
    return torch.tensor(X, dtype=torch.float64)


@pytest.fixture(scope="module")
def wine():
    d = load_wine()
    order = np.random.default_rng(0).permutation(len(d.target))
    X, y = _standardised(d.data)[order], torch.tensor(d.target)[order]
    return X[:130], y[:130], X[130:], y[130:]


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    X, y = torch.tensor(d.data / 16.0), torch.tensor(d.target)
    return X[:400], y[:400], X[400:450], y[400:450]


def _model(kind: str, d: int, classes: int) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "logreg":
        return torch.nn.Linear(d, classes).double()
    return torch.nn.Sequential(torch.nn.Linear(d, 8), torch.nn.Tanh(), torch.nn.Linear(8, classes)).double()


@pytest.fixture(scope="module")
def models(wine, digits):
    X, y, _, _ = wine
    Xd, yd, _, _ = digits
    return {"wine logreg": (trained(_model("logreg", 13, 3), X, y, l2=L2), wine),
            "wine mlp": (trained(_model("mlp", 13, 3), X, y, l2=L2), wine),
            "digits logreg": (trained(_model("logreg", 64, 10), Xd, yd, l2=L2), digits)}


def _engine(model, data, method, **kw):
    X, y, _, _ = data
    return ak.InfluenceEngine(model, "cross_entropy", l2=L2, method=method, **kw).fit(X, y)


def _close(a, b, rel):
    return float(np.abs(a - b).max()) <= rel * float(np.abs(b).max())


@pytest.mark.parametrize("name", ["wine logreg", "wine mlp", "digits logreg"])
@pytest.mark.parametrize("method", ["cg", "pcg"])
def test_block_solves_equal_column_by_column_solves_and_exact(models, name, method):
    model, data = models[name]
    _, _, Xt, yt = data
    exact = _engine(model, data, "exact").influence(Xt, yt)
    block = _engine(model, data, method).influence(Xt, yt)
    columns = _engine(model, data, method, block=False).influence(Xt, yt)
    assert _close(block, exact, 1e-6) and _close(columns, exact, 1e-6) and _close(block, columns, 1e-6)
    one_by_one = _engine(model, data, method)
    rows = np.concatenate([one_by_one.influence(Xt[i:i + 1], yt[i:i + 1]) for i in (0, 7, 19)])
    assert _close(block[[0, 7, 19]], rows, 1e-6)


def test_block_cg_costs_about_one_solve(models):
    """50 test records: no more block steps (passes over the data) than one record's solve, and far fewer
    Hessian-vector products than 50 separate solves."""
    model, data = models["digits logreg"]
    _, _, Xt, yt = data
    one = _engine(model, data, "cg")
    one.influence(Xt[:1], yt[:1])
    many = _engine(model, data, "cg")
    many.influence(Xt, yt)
    columns = _engine(model, data, "cg", block=False)
    columns.influence(Xt, yt)
    s1, s50, c50 = (e.summary()["solver"] for e in (one, many, columns))
    assert len(Xt) == 50 and s50["iterations"] <= s1["iterations"]
    assert s50["hessian_vector_products"] <= c50["hessian_vector_products"] / 3


def test_block_cg_with_dependent_right_hand_sides(models):
    """Identical test records make the block rank-deficient: the directions are dropped, not divided by 0."""
    model, data = models["wine logreg"]
    _, _, Xt, yt = data
    X2, y2 = torch.cat([Xt[:5], Xt[:5], Xt[:1]]), torch.cat([yt[:5], yt[:5], yt[:1]])
    exact = _engine(model, data, "exact").influence(X2, y2)
    for method in ("cg", "pcg"):
        assert _close(_engine(model, data, method).influence(X2, y2), exact, 1e-6)


def test_influence_on_several_measurements_in_one_block(models):
    model, data = models["wine mlp"]
    _, _, Xt, yt = data
    loss = torch.nn.functional.cross_entropy
    measures = [(lambda o, y, c=c: loss(o[y == c], y[y == c]), Xt, yt) for c in range(3)]
    exact = _engine(model, data, "exact").batch(measures=measures).measures
    block = _engine(model, data, "pcg").batch(measures=measures).measures
    for c in range(3):
        assert _close(block[c], exact[c], 1e-6)


def test_lissa_block_equals_row_by_row_and_exact(models):
    model, data = models["wine logreg"]
    _, _, Xt, yt = data
    exact = _engine(model, data, "exact", damping=0.1).influence(Xt[:4], yt[:4])
    block = _engine(model, data, "lissa", tol=1e-9, damping=0.1)
    together = block.influence(Xt[:4], yt[:4])
    alone = np.concatenate([_engine(model, data, "lissa", tol=1e-9, damping=0.1).influence(Xt[i:i + 1], yt[i:i + 1])
                            for i in range(4)])
    assert _close(together, alone, 1e-6) and _close(together, exact, 1e-5)


def test_pcg_summary_states_the_stopping_rule_and_the_measured_residual(models):
    model, data = models["wine mlp"]
    X, y, Xt, yt = data
    eng = _engine(model, data, "pcg")
    B = torch.cat([eng.fn_.per_record_grads(Xt[i:i + 10], yt[i:i + 10]) for i in (0, 10)])
    V = eng.solver_.solve(B)
    H = eng.hessian_.dense()
    measured = float(((V @ H - B).norm(dim=1) / B.norm(dim=1)).max())
    summary = eng.summary()
    assert summary["method_used"] == "pcg" and summary["solver"]["tol_used"] == 1e-8
    assert summary["solver"]["stopping_rule"] == "relative residual ‖b − Hx‖/‖b‖ ≤ tol for every right-hand side"
    assert summary["residual"] <= 1e-8 and summary["residual"] == pytest.approx(measured, rel=1e-3)


def test_auto_chooses_exact_then_pcg_then_cg_and_says_why(models):
    model, data = models["wine logreg"]
    _, _, Xt, yt = data
    exact = _engine(model, data, "exact").influence(Xt, yt)
    small = _engine(model, data, "auto")
    assert small.summary()["method_used"] == "exact"
    assert small.summary()["solver"]["reason"] == ("exact: the dense Hessian fits (p = 42 ≤ max_exact_params = 12000 "
                                                   "and p²·8 bytes = 0.0135 MB ≤ max_exact_mb = 1024) and is formed "
                                                   "from per-record Kronecker blocks, the first trained layer being "
                                                   "an nn.Linear")
    assert _close(small.influence(Xt, yt), exact, 1e-10)
    large = _engine(model, data, "auto", max_exact_params=10)
    assert large.summary()["solver"]["reason"] == ("pcg: the dense Hessian is too large (p = 42 > max_exact_params = "
                                                   "10); every layer is supported by EK-FAC")
    assert _close(large.influence(Xt, yt), exact, 1e-6) and large.summary()["residual"] <= 1e-8
    X, y, _, _ = data
    torch.manual_seed(0)
    normed = torch.nn.Sequential(torch.nn.Linear(13, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 3)).double()
    ak.fit_model(normed, X, y, l2=L2, max_iter=200)                  # near a minimum; damping keeps H ≻ 0
    reference = _engine(normed, data, "exact", damping=0.1).influence(Xt, yt)
    fallback = _engine(normed, data, "auto", max_exact_mb=1e-4, damping=0.1)
    assert fallback.summary()["solver"]["reason"] == (
        "cg: the dense Hessian is too large (p²·8 bytes = 0.0476 MB > max_exact_mb = 0.0001) and EK-FAC cannot "
        "precondition (method='pcg' supports parameters of nn.Linear and nn.Conv2d layers only, not '1.weight' "
        "(LayerNorm), '1.bias' (LayerNorm))")
    assert fallback.summary()["method_used"] == "cg" and _close(fallback.influence(Xt, yt), reference, 1e-6)


@pytest.mark.parametrize(("kw", "message"), [
    ({"preconditioner": "diag"}, "preconditioner='diag' is not allowed: use one of 'ekfac', 'kfac'"),
    ({"block": "yes"}, "block='yes' is not allowed: use True or False"),
    ({"cache_mb": -1}, "cache_mb=-1 is not allowed: it must be a number ≥ 0 (megabytes)"),
])
def test_pcg_bad_options(models, kw, message):
    with pytest.raises(InputError) as info:
        ak.InfluenceEngine(models["wine logreg"][0], "cross_entropy", method="pcg", **kw)
    assert str(info.value) == message


def test_auto_bad_options(models):
    with pytest.raises(InputError) as info:
        ak.InfluenceEngine(models["wine logreg"][0], "cross_entropy", method="auto", max_exact_params=0)
    assert str(info.value) == "max_exact_params=0 is not allowed: it must be a positive integer"


@pytest.mark.parametrize(("method", "kw"), [("exact", {}), ("auto", {}), ("pcg", {}), ("ekfac", {})])
def test_with_ridge_equals_a_fresh_fit_and_exact_makes_no_pass(models, monkeypatch, method, kw):
    """The stability check's refits: another l2 (also per parameter) and damping. exact (and auto choosing it)
    reuse the data term D of H kept from the fit, H' = D + diag(shift'): no pass over the records at all."""
    from auditkit.influence.hessian import HessianOperator
    model, data = models["wine mlp"]
    X, y, Xt, yt = data
    engine = _engine(model, data, method, **kw)
    calls = []
    matvec, dense = HessianOperator.matvec, HessianOperator.dense
    monkeypatch.setattr(HessianOperator, "matvec", lambda self, V: calls.append(len(V)) or matvec(self, V))
    monkeypatch.setattr(HessianOperator, "dense", lambda self: calls.append("dense") or dense(self))
    for l2, damping in [(0.1, 0.0), ({"0": 0.003, "2.weight": 0.05}, 0.02)]:
        calls.clear()
        refit = engine.with_ridge(l2=l2, damping=damping)
        if method in ("exact", "auto"):
            assert calls == [] and refit.summary()["method_used"] == "exact"
        fresh = ak.InfluenceEngine(model, "cross_entropy", l2=l2, method=method, damping=damping, **kw).fit(X, y)
        assert refit.l2 == fresh.l2 and refit.damping == damping
        assert _close(refit.influence(Xt, yt), fresh.influence(Xt, yt), 1e-7)
        assert _close(refit.self_influence(), fresh.self_influence(), 1e-7)
    assert _close(engine.influence(Xt, yt), _engine(model, data, method, **kw).influence(Xt, yt), 1e-7)  # unchanged


def test_with_ridge_without_the_kept_data_term_rebuilds_it_from_the_cholesky_factor(models, monkeypatch):
    from auditkit.influence.solvers.exact import ExactSolver
    monkeypatch.setattr(ExactSolver, "KEEP_DATA_TERM", 0)
    model, data = models["wine mlp"]
    X, y, Xt, yt = data
    engine = _engine(model, data, "exact")
    assert not hasattr(engine.solver_, "data_term_")
    refit = engine.with_ridge(l2={"0": 0.003, "2.weight": 0.05}, damping=0.02)
    fresh = ak.InfluenceEngine(model, "cross_entropy", l2={"0": 0.003, "2.weight": 0.05}, method="exact",
                               damping=0.02).fit(X, y)
    assert _close(refit.self_influence(leverage=True), fresh.self_influence(leverage=True), 1e-7)


@pytest.mark.parametrize("l2_then", [0.0, {"0": 0.0, "2.weight": 0.001}])
def test_a_refused_ridge_names_the_eigenvalues_of_a_full_eigendecomposition(models, monkeypatch, l2_then):
    """The stability check's ridge ×0.1 on an MLP whose H is positive definite only thanks to its L2: the refusal
    names the smallest and largest eigenvalue of ``H − δI``: Lanczos' extreme Ritz values (no ``eigvalsh`` of
    p × p, only of Lanczos' small tridiagonal matrices): those of a full eigendecomposition to the 2 significant
    digits printed, and the suggested damping to 1e-3."""
    import re

    from auditkit.influence.hessian import HessianOperator
    model, data = models["wine mlp"]
    X, y, _, _ = data
    engine = _engine(model, data, "exact")
    fresh = HessianOperator(engine.fn_, engine.train_, l2=ak.InfluenceEngine(model, "cross_entropy", l2=l2_then).l2,
                            damping=0.0, chunk_size=engine.chunk_size)
    want = torch.linalg.eigvalsh((fresh.dense().double() + fresh.dense().double().T) / 2)
    assert want[0] < 0        # the case: without (all of) its L2 this H is not positive definite
    calls = []
    eigvalsh = torch.linalg.eigvalsh
    monkeypatch.setattr(torch.linalg, "eigvalsh", lambda A: calls.append(A.shape) or eigvalsh(A))
    with pytest.raises(ak.SingularHessianError, match="not positive definite") as caught:
        engine.with_ridge(l2=l2_then, damping=0.0)
    found = re.search(r"smallest eigenvalue about (\S+), largest about ([^)]+)\)", str(caught.value)).groups()
    lo, hi = (float(v) for v in found)                                 # printed to 2 significant digits
    assert lo == pytest.approx(float(want[0]), rel=0.05) and hi == pytest.approx(float(want[-1]), rel=0.05)
    from auditkit.influence.solvers.base import suggest_damping
    assert caught.value.suggested_damping == pytest.approx(suggest_damping(float(want[0]), float(want[-1])), rel=1e-3)
    assert all(shape[0] < engine.n_params_ for shape in calls)                # Lanczos' tridiagonal only


def test_top_eigenvalue_by_lanczos_equals_eigvalsh_also_for_a_cluster_at_the_top():
    """The Ritz value does not wait for the eigenvector: a spectrum whose 40 largest eigenvalues lie within 1e-9
    of each other (ARPACK's residual test stalled on such a Hessian) and one with a well separated top."""
    from auditkit.influence.solvers.arnoldi import extreme_eigenvalues
    gen = torch.Generator().manual_seed(0)
    Q = torch.linalg.qr(torch.randn(400, 400, generator=gen, dtype=torch.float64))[0]
    for spectrum in (torch.cat([torch.linspace(1e-4, 1.0, 360, dtype=torch.float64),
                                3.0 + 1e-9 * torch.rand(40, generator=gen, dtype=torch.float64)]),
                     torch.logspace(-6, 1, 400, dtype=torch.float64)):
        A = Q @ torch.diag(spectrum) @ Q.T
        calls = []
        top = extreme_eigenvalues(lambda V, A=A, calls=calls: calls.append(1) or V @ A, 400)[1]
        assert top == pytest.approx(float(spectrum.max()), rel=1e-7) and len(calls) <= 300
