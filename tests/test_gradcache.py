"""The on-disk gradient cache: a second run reads it (no per-record gradient computed), a changed model or
changed data misses it, results equal; projected gradients within their stated error bound."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import L2_LR, L2_MLP

import auditkit as ak
from auditkit.errors import InputError
from auditkit.gradcache import GradientCache


def gap(outputs, y):
    p = torch.softmax(outputs, dim=1)[:, 1]
    return p[:40].mean() - p[40:].mean()


def spy_grads(engine) -> list[int]:
    """Rows of per-record gradients the engine computes from now on."""
    rows, grads = [0], engine.fn_.per_record_grads

    def counted(x, y):
        rows[0] += x.shape[0]
        return grads(x, y)

    engine.fn_.per_record_grads = counted
    return rows


def ask(engine, heart, *, leverage=False):
    return engine.batch(measures={"gap": (gap, heart["Xt"], heart["yt"])}, test=(heart["Xt"][:20], heart["yt"][:20]),
                        self_influence=True, leverage=leverage)


@pytest.mark.parametrize("model, l2", [("heart_lr", L2_LR), ("heart_mlp", L2_MLP)])
def test_second_run_reads_the_cache_and_gives_the_same_results(request, tmp_path, heart, model, l2):
    net = request.getfixturevalue(model)
    X, y = heart["X"], heart["y"]
    plain = ak.InfluenceEngine(net, "cross_entropy", l2=l2, chunk_size=100).fit(X, y)
    expected = ask(plain, heart, leverage=True)
    cache = GradientCache(tmp_path)
    first = ak.InfluenceEngine(net, "cross_entropy", l2=l2, chunk_size=100, gradients=cache).fit(X, y)
    ask(first, heart)
    assert (cache.hits, cache.misses) == (0, 1) and len(list(tmp_path.glob("*.npy"))) == 1
    G = np.load(cache.last["path"], mmap_mode="r")
    np.testing.assert_array_equal(G, first.fn_.per_record_grads(X, y).numpy())
    # a new engine (another run) with the same model and data: nothing recomputed, same numbers
    second = ak.InfluenceEngine(net, "cross_entropy", l2=l2, chunk_size=64,
                                gradients=GradientCache(tmp_path)).fit(X, y)
    rows = spy_grads(second)
    got = ask(second, heart, leverage=True)
    assert second.gradients.hits == 1 and rows[0] == 20                  # the 20 test records' gradients only
    np.testing.assert_allclose(got.measures["gap"], expected.measures["gap"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.test, expected.test, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.self_influence, expected.self_influence, rtol=0, atol=1e-12)


def test_a_changed_model_or_changed_data_misses(tmp_path, heart, heart_lr):
    X, y = heart["X"], heart["y"]
    cache = GradientCache(tmp_path)

    def run(model, X, y):
        ak.InfluenceEngine(model, "cross_entropy", l2=L2_LR, damping=1e-3, gradients=cache).fit(X, y).self_influence()

    run(heart_lr, X, y)
    other = torch.nn.Linear(X.shape[1], 2).double()
    other.load_state_dict(heart_lr.state_dict())
    with torch.no_grad():
        other.bias[0] += 1e-9
    run(other, X, y)
    X2 = X.clone()
    X2[17, 3] += 1e-9
    run(heart_lr, X2, y)
    y2 = y.clone()
    y2[5] = 1 - y2[5]
    run(heart_lr, X, y2)
    assert (cache.hits, cache.misses) == (0, 4) and len(list(tmp_path.glob("*.npy"))) == 4
    run(heart_lr, X, y)
    assert cache.hits == 1


def test_projected_gradients_stay_within_the_stated_bound(tmp_path, heart, heart_mlp):
    X, y, Xt, yt = heart["X"], heart["y"], heart["Xt"], heart["yt"]
    exact = ak.InfluenceEngine(heart_mlp, "cross_entropy", l2=L2_MLP).fit(X, y)
    S = exact.influence(Xt[:30], yt[:30])
    d = 128
    for kind in ("gaussian", "rademacher"):
        cache = GradientCache(tmp_path, projection_dim=d, projection=kind, seed=1)
        e = ak.InfluenceEngine(heart_mlp, "cross_entropy", l2=L2_MLP, gradients=cache).fit(X, y)
        out = e.batch(test=(Xt[:30], yt[:30]), self_influence=True)
        # standard error ≤ √(2/d)·‖H⁻¹∇ℓ_i‖·‖g_j‖/n: every entry within 6 of them
        a = e.solver_.solve(e.fn_.per_record_grads(Xt[:30], yt[:30])).norm(dim=1).numpy()
        b = e.fn_.per_record_grads(X, y).norm(dim=1).numpy()
        bound = np.sqrt(2 / d) * np.outer(a, b) / e.n_train_
        assert np.all(np.abs(out.test - S) <= 6 * bound)
        assert np.corrcoef(out.test.ravel(), S.ravel())[0, 1] > 0.75
        np.testing.assert_allclose(out.self_influence, exact.self_influence(), rtol=1e-12)   # never projected
        assert np.load(cache.last["path"], mmap_mode="r").shape == (e.n_train_, d)
        again = ak.InfluenceEngine(heart_mlp, "cross_entropy", l2=L2_MLP, gradients=cache).fit(X, y)
        np.testing.assert_array_equal(again.influence(Xt[:30], yt[:30]), out.test)
        assert (cache.hits, cache.misses) == (1, 1)


def test_an_interrupted_pass_leaves_no_entry(tmp_path, heart, heart_lr):
    cache = GradientCache(tmp_path)
    e = ak.InfluenceEngine(heart_lr, "cross_entropy", l2=L2_LR, chunk_size=50, gradients=cache).fit(heart["X"],
                                                                                                  heart["y"])
    stream = cache.stream(e, e._chunks(e.train_))
    next(stream)
    stream.close()
    assert list(tmp_path.iterdir()) == []


def test_bad_options_are_named(tmp_path):
    with pytest.raises(InputError, match=r"^projection_dim=0 is not allowed: it must be a positive integer or None$"):
        GradientCache(tmp_path, projection_dim=0)
    with pytest.raises(InputError, match=r"^projection='sparse' is not allowed: use one of \['gaussian', "
                                         r"'rademacher'\]$"):
        GradientCache(tmp_path, projection="sparse")
