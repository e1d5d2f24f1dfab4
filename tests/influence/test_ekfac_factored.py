"""EK-FAC's streamed pass from layer factors (cross terms ``V g_i`` and quad forms ``g_iᵀ H⁻¹ g_i`` without
per-record gradients) against the dense per-record gradients, and ``curvature="sampled"`` against the exact
expectation it estimates."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import Positions, pearson

import auditkit as ak


def _model(arch: str, classes: int) -> tuple[torch.nn.Module, tuple[int, ...]]:
    torch.manual_seed(0)
    if arch == "conv":                     # Conv2d with stride and padding, a bias-free one, then a Linear layer
        return torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, stride=2, padding=1), torch.nn.Tanh(),
                                   torch.nn.Conv2d(3, 2, 2, padding="valid", bias=False), torch.nn.Flatten(),
                                   torch.nn.Linear(2 * 2 * 2, classes)).double(), (2, 5, 5)
    if arch == "positions":
        return Positions(classes).double(), (12,)
    return torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, classes)).double(), (5,)


def _data(shape, classes, n=120, seed=1):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, *shape, generator=gen, dtype=torch.float64)
    return X, torch.randint(0, classes, (n,), generator=gen)


def group_gap(outputs, y):
    """Mean loss of the even rows minus that of the odd rows (a two-group loss gap)."""
    loss = torch.nn.functional.cross_entropy(outputs, y, reduction="none")
    return loss[::2].mean() - loss[1::2].mean()


@pytest.mark.parametrize("arch, classes", [("mlp", 3), ("mlp", 2), ("conv", 3), ("positions", 3)])
@pytest.mark.parametrize("curvature", ["gauss_newton", "sampled"])
def test_factored_pass_equals_the_dense_per_record_gradients(arch, classes, curvature):
    """influence_on, influence and self-influence of a pass over layer factors (one back-propagated cotangent
    per record, no per-record gradient of a training record) equal ``(1/n) V Gᵀ`` and ``(1/n) g_iᵀ H⁻¹ g_i``
    formed from the per-record gradients G, for Linear and Conv2d layers, one or several output positions, and
    both curvatures."""
    model, shape = _model(arch, classes)
    X, y = _data(shape, classes)
    Xt, yt = _data(shape, classes, n=9, seed=2)
    e = ak.InfluenceEngine(model, "cross_entropy", l2=0.05, method="ekfac", curvature=curvature, cache_mb=0,
                           chunk_size=50).fit(X, y)
    rows, grads = [], e.fn_.per_record_grads
    e.fn_.per_record_grads = lambda x, t: rows.append(len(x)) or grads(x, t)
    out = e.batch(measures=[(group_gap, Xt, yt)], test=(Xt, yt), self_influence=True)
    e.fn_.per_record_grads = grads
    assert sum(rows) == len(Xt)                       # the test records' own gradients only, no training record's
    G = e.fn_.per_record_grads(X, y)
    _, gm = e.measure_gradient(group_gap, Xt, yt)
    V = e.solver_.solve(torch.cat([gm[None], e.fn_.per_record_grads(Xt, yt)]))
    dense = (V @ G.T).numpy() / len(y)
    np.testing.assert_allclose(out.measures[0], dense[0], rtol=1e-9, atol=1e-12 * np.abs(dense[0]).max())
    np.testing.assert_allclose(out.test, dense[1:], rtol=1e-9, atol=1e-12 * np.abs(dense[1:]).max())
    np.testing.assert_allclose(out.self_influence, e.solver_.quad_forms(G).numpy() / len(y), rtol=1e-9)


def test_sampled_curvature_estimates_the_gauss_newton_factors():
    """One random combination of the rows of Λ's root per record estimates the Gauss–Newton matrix without bias:
    on 3,000 records of a 3-class MLP its EK-FAC self-influence agrees with the exact expectation's (r > 0.99);
    the draws depend on the seed, and each chunk gets the same draws whether the factors are kept or recomputed.
    With two classes Λ has one row and nothing is drawn: sampled equals gauss_newton."""
    model, shape = _model("mlp", 3)
    X, y = _data(shape, 3, n=3000)

    def fitted(**kw):
        return ak.InfluenceEngine(model, "cross_entropy", l2=0.05, method="ekfac", chunk_size=500, **kw).fit(X, y)

    exact = fitted().self_influence()
    sampled = fitted(curvature="sampled").self_influence()
    assert pearson(sampled, exact) > 0.99
    assert np.abs(sampled / exact - 1).max() > 1e-6                   # an estimate, not the same numbers
    other_seed = fitted(curvature="sampled", seed=1).self_influence()
    assert np.abs(other_seed / sampled - 1).max() > 1e-6
    np.testing.assert_allclose(fitted(curvature="sampled", cache_mb=0).self_influence(), sampled, rtol=1e-10)
    binary, shape = _model("mlp", 2)
    Xb, yb = _data(shape, 2)
    scores = [ak.InfluenceEngine(binary, "cross_entropy", l2=0.05, method="ekfac", curvature=c).fit(Xb, yb)
              .self_influence() for c in ("gauss_newton", "sampled")]
    np.testing.assert_allclose(scores[1], scores[0], rtol=1e-12)


@pytest.mark.parametrize("arch, classes", [("mlp", 3), ("mlp", 2), ("conv", 3), ("logreg", 2)])
@pytest.mark.parametrize("cache_mb", [256.0, 0])
def test_engine_precision_agrees_with_float64_on_a_float32_model(arch, classes, cache_mb):
    """precision='engine' on a float32 model (per-record products in float32, sums and eigendecompositions in
    float64) gives the float64 results to float32 round-off: self-influence, a group-gap attribution and
    test × train influence, with the factors kept or recomputed, including an output layer with one output
    direction (a binary logistic regression: its triangular product in float32)."""
    if arch == "logreg":
        torch.manual_seed(0)
        model, shape = torch.nn.Linear(5, 2), (5,)
    else:
        model, shape = _model(arch, classes)
    model = model.float()
    X, y = _data(shape, classes)
    Xt, yt = _data(shape, classes, n=9, seed=2)
    X, Xt = X.float(), Xt.float()
    results = []
    for precision in ("float64", "engine"):
        e = ak.InfluenceEngine(model, "cross_entropy", l2=0.05, method="ekfac", precision=precision,
                               cache_mb=cache_mb, chunk_size=50).fit(X, y)
        out = e.batch(measures=[(group_gap, Xt, yt)], test=(Xt, yt))
        results.append((e.self_influence(), out.measures[0], out.test))
    for wide, narrow in zip(*results, strict=True):
        np.testing.assert_allclose(narrow, wide, rtol=2e-4, atol=2e-5 * np.abs(wide).max())


def test_kept_factors_merged_into_several_groups_give_the_same_results(monkeypatch):
    """The kept chunks are merged into groups of about ``GROUP`` records before their products: with groups of
    60 records (chunks of 50: uneven groups) the results equal those of one group."""
    from auditkit.influence.solvers import ekfac
    model, shape = _model("mlp", 3)
    X, y = _data(shape, 3)
    results = []
    for group in (4096, 60):
        monkeypatch.setattr(ekfac, "GROUP", group)
        for curvature in ("gauss_newton", "sampled"):
            e = ak.InfluenceEngine(model, "cross_entropy", l2=0.05, method="ekfac", curvature=curvature,
                                   chunk_size=50).fit(X, y)
            results.append(e.self_influence())
    np.testing.assert_allclose(results[2], results[0], rtol=1e-10)
    np.testing.assert_allclose(results[3], results[1], rtol=1e-10)


@pytest.mark.parametrize("arch, classes", [("mlp", 3), ("conv", 3)])
@pytest.mark.parametrize("cache_mb", [0.0, 64.0])
def test_curvature_from_a_subset_equals_ekfac_fitted_on_that_subset_with_every_records_own_quad_form(
        arch, classes, cache_mb):
    """``curvature_records=k``: the factors and corrected eigenvalues are those of EK-FAC fitted on the k records
    drawn (seeded: the same draw for the same seed, another for another seed), and the self-influence of every
    one of the n training records is ``(1/n) g_iᵀ H̃⁻¹ g_i`` with that curvature H̃."""
    model, shape = _model(arch, classes)
    X, y = _data(shape, classes, n=150)
    kw = dict(l2=0.05, method="ekfac", cache_mb=cache_mb, chunk_size=40)
    e = ak.InfluenceEngine(model, "cross_entropy", curvature_records=60, **kw).fit(X, y)
    index = e.solver_.curvature_index_
    assert len(index) == len(set(index.tolist())) == 60 and e.summary()["solver"]["curvature_fitted_on"] == 60
    again = ak.InfluenceEngine(model, "cross_entropy", curvature_records=60, **kw).fit(X, y)
    other = ak.InfluenceEngine(model, "cross_entropy", curvature_records=60, seed=1, **kw).fit(X, y)
    assert torch.equal(again.solver_.curvature_index_, index)
    assert not torch.equal(other.solver_.curvature_index_, index)
    on_subset = ak.InfluenceEngine(model, "cross_entropy", **kw).fit(X[index], y[index])
    for mine, want in zip(e.solver_.factors_, on_subset.solver_.factors_, strict=True):
        for a, b in zip(mine, want, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    want = on_subset.solver_.quad_forms_of_records(X, y).numpy() / len(y)
    np.testing.assert_allclose(e.self_influence(), want, rtol=1e-9)
    full = ak.InfluenceEngine(model, "cross_entropy", **kw).fit(X, y)
    assert not np.allclose(e.self_influence(), full.self_influence(), rtol=1e-3)    # a subset is not all records
    assert pearson(e.self_influence(), full.self_influence()) > 0.9


def test_curvature_records_is_checked():
    model, shape = _model("mlp", 3)
    for bad in (-1, 2.5, True):
        with pytest.raises(ak.InputError, match=r"^curvature_records=.* is not allowed: it must be an integer ≥ 0"):
            ak.InfluenceEngine(model, "cross_entropy", method="ekfac", curvature_records=bad)
