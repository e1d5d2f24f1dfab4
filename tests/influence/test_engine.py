"""The engine's behaviour beyond accuracy: inputs it accepts, streaming, precision, devices, purity."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import L2_LR, L2_MLP, logistic, trained
from torch.utils.data import TensorDataset

import auditkit as ak
from auditkit.influence.gradients import ModelFunction


@pytest.fixture(scope="module")
def small(heart):
    """First 200 heart-disease training records and a logistic regression trained on them."""
    X, y = heart["X"][:200], heart["y"][:200]
    return X, y, heart["Xt"][:15], heart["yt"][:15], trained(logistic(X.shape[1]), X, y, l2=L2_LR)


def test_numpy_tensor_and_dataset_inputs_agree(small):
    X, y, Xt, yt, m = small
    ref = ak.InfluenceEngine(m, "cross_entropy", l2=L2_LR).fit(X, y)
    from_numpy = ak.InfluenceEngine(m, "cross_entropy", l2=L2_LR).fit(X.numpy(), y.numpy())
    from_dataset = ak.InfluenceEngine(m, "cross_entropy", l2=L2_LR).fit(TensorDataset(X, y))
    S = ref.influence(Xt, yt)
    np.testing.assert_allclose(from_numpy.influence(Xt.numpy(), yt.numpy()), S, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(from_dataset.influence(TensorDataset(Xt, yt)), S, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(from_dataset.self_influence([3, 1, 4]), ref.self_influence()[[3, 1, 4]], rtol=1e-12)


def test_gradients_are_streamed_in_chunks(small, monkeypatch):
    """No more than chunk_size per-record gradients exist at once, and the answer does not depend on it."""
    X, y, Xt, yt, m = small
    seen = []
    original = ModelFunction.per_record_grads

    def spy(self, x, yy):
        seen.append(x.shape[0])
        return original(self, x, yy)

    monkeypatch.setattr(ModelFunction, "per_record_grads", spy)
    chunked = ak.InfluenceEngine(m, "cross_entropy", l2=L2_LR, chunk_size=7).fit(X, y)
    S7, s7 = chunked.influence(Xt, yt), chunked.self_influence()
    assert max(seen) == 7 and sum(seen) == 2 * 200 + 15
    whole = ak.InfluenceEngine(m, "cross_entropy", l2=L2_LR, chunk_size=1000).fit(X, y)
    np.testing.assert_allclose(S7, whole.influence(Xt, yt), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(s7, whole.self_influence(), rtol=1e-10)


def test_float32_agrees_with_float64(small):
    X, y, Xt, yt, m = small
    m32 = logistic(X.shape[1]).float()
    m32.load_state_dict({k: v.float() for k, v in m.state_dict().items()})
    e64 = ak.InfluenceEngine(m, "cross_entropy", l2=L2_LR).fit(X, y)
    e32 = ak.InfluenceEngine(m32, "cross_entropy", l2=L2_LR, method="cg").fit(X.float(), y)
    assert e32.dtype == torch.float32
    S64, S32 = e64.influence(Xt, yt), e32.influence(Xt.float(), yt)
    assert np.abs(S32 - S64).max() <= 1e-4 * np.abs(S64).max()
    # and float64 on a float32 model when asked
    up = ak.InfluenceEngine(m32, "cross_entropy", l2=L2_LR, dtype=torch.float64).fit(X, y)
    assert np.abs(up.influence(Xt, yt) - S64).max() <= 1e-5 * np.abs(S64).max()


def test_callable_loss_equals_builtin(small):
    X, y, Xt, yt, m = small

    def my_ce(outputs, targets):
        return -torch.log_softmax(outputs, dim=-1).gather(-1, targets[:, None]).squeeze(-1)

    a = ak.InfluenceEngine(m, my_ce, l2=L2_LR).fit(X, y)
    b = ak.InfluenceEngine(m, "cross_entropy", l2=L2_LR).fit(X, y)
    np.testing.assert_allclose(a.influence(Xt, yt), b.influence(Xt, yt), rtol=1e-10, atol=1e-15)


def test_multilayer_model_with_buffers_and_mode_restored(heart):
    """BatchNorm (buffers) + two layers: influence uses eval-mode statistics and leaves the mode as it was."""
    X, y = heart["X"][:300], heart["y"][:300]
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 8), torch.nn.BatchNorm1d(8), torch.nn.Tanh(),
                                torch.nn.Linear(8, 2)).double()
    model.train()
    with torch.no_grad():
        model(X)                                          # populate running statistics
    model[1].momentum = 0.0                               # freeze them for training below
    trained(model, X, y, l2=L2_MLP)
    model.train()
    eng = ak.InfluenceEngine(model, "cross_entropy", l2=L2_MLP).fit(X, y)
    s = eng.self_influence()
    assert model.training
    assert eng.n_params_ == sum(p.numel() for p in model.parameters())
    assert np.all(s > 0)
    # the same numbers as a model whose batch norm is folded into the first layer by hand
    bn = model[1]
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    folded = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double()
    with torch.no_grad():
        folded[0].weight.copy_(model[0].weight * scale[:, None])
        folded[0].bias.copy_((model[0].bias - bn.running_mean) * scale + bn.bias)
        folded[2].load_state_dict(model[3].state_dict())
    np.testing.assert_allclose(model.eval()(X[:5]).detach(), folded(X[:5]).detach(), rtol=1e-10)
    # last layer only: identical in both parameterisations
    a = ak.InfluenceEngine(model, "cross_entropy", l2=L2_MLP, params=["3"]).fit(X, y).self_influence()
    b = ak.InfluenceEngine(folded, "cross_entropy", l2=L2_MLP, params=["2."]).fit(X, y).self_influence()
    np.testing.assert_allclose(a, b, rtol=1e-8)


def test_self_influence_subset_matches_full(small):
    X, y, _, _, m = small
    eng = ak.InfluenceEngine(m, "cross_entropy", l2=L2_LR, chunk_size=16).fit(X, y)
    full = eng.self_influence()
    idx = np.array([199, 0, 57, 57, -1])
    np.testing.assert_allclose(eng.self_influence(idx), full[[199, 0, 57, 57, 199]], rtol=1e-12)


def test_fit_returns_self_and_summary_states_the_convention(small):
    X, y, _, _, m = small
    eng = ak.InfluenceEngine(m, "cross_entropy", l2=L2_LR, method="cg")
    assert eng.fit(X, y) is eng
    summary = eng.summary()
    assert summary["method"] == "cg" and summary["n_train"] == 200 and summary["residual"] is None   # no solve yet
    assert "removed" in summary["convention"] and "(1/n)" in summary["convention"]
    eng.influence(X[:3], y[:3])
    assert 0 < eng.summary()["residual"] == eng.summary()["solver"]["residual"] <= 1e-8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(small):
    X, y, Xt, yt, m = small
    cpu = ak.InfluenceEngine(m, "cross_entropy", l2=L2_LR).fit(X, y).influence(Xt, yt)
    gpu = ak.InfluenceEngine(m, "cross_entropy", l2=L2_LR, method="cg", device="cuda").fit(X, y)
    np.testing.assert_allclose(gpu.influence(Xt, yt), cpu, rtol=1e-6, atol=1e-12)


def test_math_core_imports_no_io_report_or_dask():
    code = ("import sys, auditkit, auditkit.influence; "
            "bad = [m for m in ('yaml', 'jinja2', 'dask', 'weasyprint', 'pandas', 'matplotlib') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_self_influence_of_outside_records_equals_self_influence_of_the_same_records(small):
    X, y, Xt, yt, m = small
    eng = ak.InfluenceEngine(m, "cross_entropy", l2=L2_LR, chunk_size=8).fit(X, y)
    np.testing.assert_allclose(eng.self_influence_of(X[:20], y[:20]), eng.self_influence()[:20], rtol=1e-12)
    outside = eng.self_influence_of(Xt, yt)
    G = eng.fn_.per_record_grads(Xt, yt)
    H = eng.hessian_.dense()
    expected = torch.einsum("ip,ip->i", G, torch.linalg.solve(H, G.T).T) / 200
    np.testing.assert_allclose(outside, expected.numpy(), rtol=1e-9)


def test_leverage_corrected_self_influence_equals_the_hessian_without_the_record(small):
    """s̃_j = (1/n) g_jᵀ (H − ∇²ℓ_j/n)⁻¹ g_j, written out densely (for a linear model GN = ∇²ℓ exactly)."""
    X, y, Xt, yt, m = small
    eng = ak.InfluenceEngine(m, "cross_entropy", l2=L2_LR, chunk_size=16).fit(X, y)
    n, H = 200, eng.hessian_.dense()
    fn = eng.fn_
    idx = [0, 5, 77, 199]
    got = eng.self_influence(idx, leverage=True)
    for k, j in enumerate(idx):
        g = fn.per_record_grads(X[j:j + 1], y[j:j + 1])[0]
        xj, yj = X[j:j + 1], y[j:j + 1]
        own = torch.func.hessian(lambda t, xj=xj, yj=yj: fn.loss_sum(t, xj, yj))(fn.theta)
        assert got[k] == pytest.approx(float(g @ torch.linalg.solve(H - own / n, g)) / n, rel=1e-8)
        assert got[k] >= eng.self_influence([j])[0]
    np.testing.assert_allclose(eng.self_influence(leverage=True)[idx], got, rtol=1e-10)
    # outside records: their curvature is added, as if they were members
    g = fn.per_record_grads(Xt[:1], yt[:1])[0]
    own = torch.func.hessian(lambda t: fn.loss_sum(t, Xt[:1], yt[:1]))(fn.theta)
    assert eng.self_influence_of(Xt[:1], yt[:1], leverage=True)[0] == pytest.approx(
        float(g @ torch.linalg.solve(H + own / n, g)) / n, rel=1e-8)
