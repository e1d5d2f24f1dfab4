"""engine.batch: many test records, several measurements and self-influence from ONE pass over the training
gradients, equal to the one-question methods; progress reported per chunk."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import L2_LR, L2_MLP

import auditkit as ak
from auditkit.errors import InputError


def mean_loss(outputs, y):
    return torch.nn.functional.cross_entropy(outputs[:50], y[:50])


def selection(outputs, y):
    return torch.softmax(outputs, dim=1)[10:80, 1].mean()


class Spy:
    """Counts passes over the training records (calls of their chunk iterator) and the training gradients
    computed (rows given to per_record_grads from a training chunk)."""

    def __init__(self, engine):
        self.passes, self.rows, self.train_chunk = 0, 0, False
        records, fn = engine.train_, engine.fn_
        chunks, grads = records.chunks, fn.per_record_grads

        def counted_chunks(*args, **kwargs):
            self.passes += 1
            for chunk in chunks(*args, **kwargs):
                self.train_chunk = chunk[0]
                yield chunk

        def counted_grads(x, y):
            if x is self.train_chunk:
                self.rows += x.shape[0]
            return grads(x, y)

        records.chunks = counted_chunks
        fn.per_record_grads = counted_grads


@pytest.mark.parametrize("model, l2, method", [("heart_lr", L2_LR, "exact"), ("heart_mlp", L2_MLP, "exact"),
                                               ("heart_mlp", L2_MLP, "ekfac")])
def test_one_pass_answers_everything_and_equals_the_separate_methods(request, heart, model, l2, method):
    net = request.getfixturevalue(model)
    X, y, Xt, yt = heart["X"], heart["y"], heart["Xt"], heart["yt"]
    e = ak.InfluenceEngine(net, "cross_entropy", l2=l2, method=method, chunk_size=100).fit(X, y)
    spy = Spy(e)
    out = e.batch(measures={"loss": (mean_loss, Xt, yt), "sel": (selection, Xt, yt)}, test=(Xt, yt),
                  self_influence=True, leverage=True)
    assert (spy.passes, spy.rows, out.passes) == (1, e.n_train_, 1)      # each training gradient computed once
    assert out.test.shape == (len(Xt), e.n_train_) and set(out.measures) == {"loss", "sel"}
    # reference: the full gradient matrix, formed here only because the data are small
    G = e.fn_.per_record_grads(X, y)
    _, g_loss = e.measure_gradient(mean_loss, Xt, yt)
    np.testing.assert_allclose(out.measures["loss"], (e.solver_.solve(g_loss[None]) @ G.T)[0].numpy() / e.n_train_,
                               rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(out.test, (e.solver_.solve(e.fn_.per_record_grads(Xt, yt)) @ G.T).numpy() / e.n_train_,
                               rtol=1e-10, atol=1e-14)
    with torch.no_grad():
        assert out.values["sel"] == pytest.approx(float(selection(net(Xt), yt)), abs=1e-12)
    # and the one-question methods give the same numbers
    np.testing.assert_allclose(out.measures["sel"], e.influence_on(selection, Xt, yt), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(out.test[:7], e.influence(Xt[:7], yt[:7]), rtol=1e-10, atol=1e-15)
    idx = np.arange(0, e.n_train_, 37)
    np.testing.assert_allclose(out.self_influence[idx], e.self_influence(idx, leverage=True), rtol=1e-12)
    plain = e.batch(self_influence=True).self_influence
    np.testing.assert_allclose(plain, e.self_influence(), rtol=1e-12)
    assert np.all(out.self_influence >= plain - 1e-12)


def test_ekfac_self_influence_alone_forms_no_per_record_gradient(heart, heart_mlp):
    """The layer factors kept from fitting answer self-influence without another pass; without the cache
    (cache_mb=0) it takes one pass, and still no per-record gradient. Both equal the per-record formula."""
    X, y = heart["X"], heart["y"]
    kept = ak.InfluenceEngine(heart_mlp, "cross_entropy", l2=L2_MLP, method="ekfac").fit(X, y)
    spy = Spy(kept)
    s_kept = kept.batch(self_influence=True).self_influence
    assert (spy.passes, spy.rows) == (0, 0)
    streamed = ak.InfluenceEngine(heart_mlp, "cross_entropy", l2=L2_MLP, method="ekfac", cache_mb=0).fit(X, y)
    spy = Spy(streamed)
    s_streamed = streamed.batch(self_influence=True).self_influence
    assert (spy.passes, spy.rows) == (1, 0)
    G = kept.fn_.per_record_grads(X, y)
    np.testing.assert_allclose(s_kept, kept.solver_.quad_forms(G).numpy() / kept.n_train_, rtol=1e-10)
    np.testing.assert_allclose(s_streamed, s_kept, rtol=1e-10)


def test_a_sequence_of_measures_and_nothing_asked(heart, heart_lr):
    e = ak.InfluenceEngine(heart_lr, "cross_entropy", l2=L2_LR).fit(heart["X"], heart["y"])
    spy = Spy(e)
    empty = e.batch()
    assert (empty.passes, spy.passes, empty.test, empty.self_influence) == (0, 0, None, None)
    out = e.batch(measures=[(mean_loss, heart["Xt"], heart["yt"])])
    assert list(out.measures) == [0] and out.test is None and out.self_influence is None


def test_progress_is_called_per_chunk(heart, heart_lr):
    calls = []
    e = ak.InfluenceEngine(heart_lr, "cross_entropy", l2=L2_LR, chunk_size=200,
                           progress=lambda done, total: calls.append((done, total))).fit(heart["X"], heart["y"])
    n = e.n_train_
    e.self_influence()
    assert calls == [(min(k, n), n) for k in range(200, n + 200, 200)]
    calls.clear()
    e.influence(heart["Xt"][:3], heart["yt"][:3])
    assert calls[-1] == (n, n) and len(calls) == -(-n // 200)


def test_bad_batch_arguments_are_named(heart, heart_lr):
    e = ak.InfluenceEngine(heart_lr, "cross_entropy", l2=L2_LR).fit(heart["X"], heart["y"])
    with pytest.raises(InputError, match=r"^measures must be a mapping \{key: \(measure, X, y\)\} or a list of "
                                         r"\(measure, X, y\), got function$"):
        e.batch(measures=mean_loss)
    with pytest.raises(InputError, match=r"^measures\['a'\] must be \(measure, X, y\) or \(measure, dataset\), "
                                         r"got function$"):
        e.batch(measures={"a": mean_loss})
    with pytest.raises(InputError, match=r"^self_influence and leverage must be True or False, got 1 and False$"):
        e.batch(self_influence=1)
    with pytest.raises(InputError, match=r"^progress must be a callable progress\(done, total\) or None, got int$"):
        ak.InfluenceEngine(heart_lr, "cross_entropy", progress=3)
    with pytest.raises(InputError, match=r"^gradients=int is not a gradient source: it needs the methods "):
        ak.InfluenceEngine(heart_lr, "cross_entropy", gradients=3)


def test_ekfac_reports_progress_of_its_fitting_pass(heart, heart_mlp):
    """EK-FAC's one pass over the data is its fit: progress per chunk there; self-influence then needs no pass."""
    calls = []
    e = ak.InfluenceEngine(heart_mlp, "cross_entropy", l2=L2_MLP, method="ekfac", chunk_size=200,
                           progress=lambda done, total: calls.append((done, total))).fit(heart["X"], heart["y"])
    n = e.n_train_
    assert calls == [(min(k, n), n) for k in range(200, n + 200, 200)]
    calls.clear()
    e.self_influence()
    assert calls == [(n, n)]
