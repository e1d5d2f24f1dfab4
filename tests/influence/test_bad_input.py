"""Bad input: every case gives one clear line naming the problem and the fix (asserted word for word)."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch

import auditkit as ak
from auditkit.errors import ConvergenceWarning, InputError, ModelTooLargeError, NotFittedError, SingularHessianError


@pytest.fixture(scope="module")
def data():
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(60, 3, generator=gen, dtype=torch.float64)
    y = ((X[:, 0] + torch.randn(60, generator=gen, dtype=torch.float64)) > 0).long()  # not separable
    model = torch.nn.Linear(3, 2).double()
    assert ak.fit_model(model, X, y, l2=0.1)["converged"]
    return X, y, model


def engine(model, **kw):
    kw.setdefault("l2", 0.1)
    return ak.InfluenceEngine(model, "cross_entropy", **kw)


def raises(error, message):
    return pytest.raises(error, match="^" + re.escape(message) + "$")


def test_one_dimensional_features(data):
    X, y, m = data
    with raises(InputError, "X_train must have one row per record (shape (n, features...)), got shape (60,): "
                            "reshape a single record to (1, -1)"):
        engine(m).fit(X[:, 0], y)


def test_mismatched_lengths(data):
    X, y, m = data
    with raises(InputError, "X_train has 60 records but its y has shape (10,): they must have the same length"):
        engine(m).fit(X, y[:10])


def test_nan_in_features(data):
    X, y, m = data
    bad = X.clone()
    bad[3, 1] = float("nan")
    bad[7, 0] = float("inf")
    with raises(InputError, "X_train contains NaN or infinite values in 2 record(s) (first at rows [3, 7]): "
                            "impute or drop them first"):
        engine(m).fit(bad, y)


def test_nan_in_test_targets(data):
    X, y, m = data
    with raises(InputError, "y for X_test contains NaN or infinite values in 1 record(s) (first at rows [0]): "
                            "impute or drop them first"):
        engine(m).fit(X, y).influence(X[:2], torch.tensor([float("nan"), 1.0]))


def test_labels_out_of_range(data):
    X, y, m = data
    with raises(InputError, "y for X_train has labels in [1, 2] but the model has 2 outputs: labels must lie in 0..1"):
        engine(m).fit(X, y + 1)


def test_non_integer_labels(data):
    X, y, m = data
    with raises(InputError, "y for X_train must hold integer class labels for loss='cross_entropy', "
                            "found non-integer values"):
        engine(m).fit(X, y.double() + 0.5)


def test_bce_targets_out_of_range(data):
    X, y, _ = data
    one_logit = torch.nn.Linear(3, 1).double()
    with raises(InputError, "y for X_train has values in [0, 2]: loss='bce' needs targets in [0, 1]"):
        ak.InfluenceEngine(one_logit, "bce").fit(X, 2.0 * y)


def test_bce_on_two_outputs(data):
    X, y, m = data
    with raises(InputError, "loss='bce' needs one logit per record (outputs of shape (n,) or (n, 1)), got (4, 2): "
                            "use loss='cross_entropy' for several classes"):
        ak.InfluenceEngine(m, "bce").fit(X, y)


def test_features_that_do_not_fit_the_model(data):
    _, y, m = data
    with raises(InputError, "the model cannot be applied to X_train (records of shape (5,)): mat1 and mat2 shapes "
                            "cannot be multiplied (4x5 and 3x2). Check that the features match the model's input"):
        engine(m).fit(torch.randn(60, 5, dtype=torch.float64), y)


def test_non_numeric_features(data):
    _, y, m = data
    with raises(InputError, "X_train has non-numeric values (dtype <U1): encode features as numbers before "
                            "computing influence"):
        engine(m).fit(np.array([["a", "b", "c"]] * 60), y.numpy())


def test_empty_data(data):
    X, y, m = data
    with raises(InputError, "X_train has no records: pass at least one"):
        engine(m).fit(X[:0], y[:0])


def test_model_without_trainable_parameters():
    frozen = torch.nn.Linear(3, 2)
    for p in frozen.parameters():
        p.requires_grad_(False)
    with raises(InputError, "the model has no trainable parameters (all have requires_grad=False): influence "
                            "needs at least one parameter to differentiate"):
        ak.InfluenceEngine(frozen, "cross_entropy")


def test_not_a_module():
    with raises(InputError, "model must be a torch.nn.Module, got str: wrap the model in an nn.Module first"):
        ak.InfluenceEngine("model.pt")


def test_unknown_method(data):
    with raises(InputError, "method='newton' is not known: use one of 'exact', 'cg', 'lissa', 'arnoldi', "
                            "'ekfac', 'kfac', 'pcg', 'auto'"):
        engine(data[2], method="newton")


def test_unknown_loss(data):
    with raises(InputError, "loss='hinge' is not known: use one of 'cross_entropy', 'bce', 'mse', or a callable "
                            "loss(outputs, targets) returning one loss per record"):
        ak.InfluenceEngine(data[2], "hinge")


def test_unknown_solver_option(data):
    with raises(InputError, "option(s) ['tolerance'] are not known to method='cg': allowed options are "
                            "['tol', 'max_iter', 'block']"):
        engine(data[2], method="cg", tolerance=3)


@pytest.mark.parametrize("kw, message", [
    ({"damping": -1}, "damping=-1 is not allowed: it must be a finite number ≥ 0"),
    ({"l2": float("nan")}, "l2=nan is not allowed: it must be a finite number ≥ 0"),
    ({"chunk_size": 0}, "chunk_size=0 is not allowed: it must be a positive integer"),
    ({"dtype": "float16"}, "dtype='float16' is not allowed: use torch.float32 or torch.float64"),
    ({"method": "cg", "max_iter": 0}, "max_iter=0 is not allowed: it must be a positive integer"),
    ({"method": "lissa", "depth": 2.5}, "depth=2.5 is not allowed: it must be a positive integer"),
    ({"params": ["fc"]}, "params=['fc'] names no trainable parameter (['fc'] not found): choose names or prefixes "
                         "among ['weight', 'bias']"),
])
def test_bad_options(data, kw, message):
    with raises(InputError, message):
        engine(data[2], **kw)


def test_unfitted_engine(data):
    X, y, m = data
    with raises(NotFittedError, "this InfluenceEngine is not fitted yet: call fit(X_train, y_train) first"):
        engine(m).influence(X, y)


def test_singular_hessian_without_damping_suggests_damping(data):
    X, y, _ = data
    Xd = torch.cat([X, X[:, :1]], dim=1)            # a duplicated feature: H is singular when l2 = 0
    model = torch.nn.Linear(4, 2, bias=False).double()
    ak.fit_model(model, Xd, y, l2=0.0)
    with pytest.raises(SingularHessianError, match=r"^the Hessian is singular \(smallest eigenvalue .*, largest "
                                                   r".*, with l2=0 and damping=0\): pass damping=\S+ \(about 1e-3 "
                                                   r"of the largest eigenvalue\)$"):
        ak.InfluenceEngine(model, "cross_entropy").fit(Xd, y)
    # the suggested damping works
    eng = ak.InfluenceEngine(model, "cross_entropy", damping=1e-3).fit(Xd, y)
    assert np.all(eng.self_influence() >= 0)


def test_model_not_at_a_minimum(data):
    X, y, _ = data
    torch.manual_seed(1)
    untrained = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double()
    with pytest.raises(SingularHessianError, match=r"^the Hessian is not positive definite .*train to convergence "
                                                   r"with the same l2\), or pass damping=\S+ or more$"):
        ak.InfluenceEngine(untrained, "cross_entropy").fit(X, y)
    with pytest.raises(SingularHessianError, match=r"^method='cg' met non-positive curvature"):
        ak.InfluenceEngine(untrained, "cross_entropy", method="cg").fit(X, y).influence(X[:3], y[:3])


def test_too_large_for_exact(data):
    X, y, m = data
    with raises(ModelTooLargeError, "method='exact' forms the dense 8×8 Hessian, too large for a model with 8 "
                                    "parameters (max_params=3): use method='cg' or method='lissa', or restrict "
                                    "influence to some layers with params=[...] (e.g. the last layer)"):
        engine(m, max_params=3).fit(X, y)


def test_measure_must_be_scalar(data):
    X, y, m = data
    with raises(InputError, "measure must return a scalar tensor, got Tensor(2,)"):
        engine(m).fit(X, y).influence_on(lambda out, t: out.sum(0), X, y)


def test_measure_must_use_outputs(data):
    X, y, m = data
    with raises(InputError, "measure does not depend on the model's outputs (no gradient): compute it from the "
                            "outputs it receives, with torch operations"):
        engine(m).fit(X, y).influence_on(lambda out, t: torch.tensor(1.0), X, y)


def test_indices_out_of_range(data):
    X, y, m = data
    with raises(InputError, "indices must lie in 0..59 (the training records), got values in [1000, 1000]"):
        engine(m).fit(X, y).self_influence([1000])


def test_cg_reports_non_convergence_with_residual(data):
    X, y, m = data
    eng = engine(m, method="cg", max_iter=1).fit(X, y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        eng.influence(X[:3], y[:3])
    [warning] = [w.message for w in caught if isinstance(w.message, ConvergenceWarning)]
    assert 0.01 < warning.residual < 1
    assert re.fullmatch(r"method='cg' stopped after max_iter=1 iterations at relative residual \S+ > tol=1e-08: "
                        r"raise max_iter, add damping, or loosen tol", str(warning))


def test_lissa_reports_non_convergence(data):
    X, y, m = data
    eng = engine(m, method="lissa", depth=3).fit(X, y)
    with pytest.warns(ConvergenceWarning, match=r"^method='lissa' reached relative residual \S+ > residual_tol=0.001 "
                                                r"after 3 steps"):
        eng.influence(X[:3], y[:3])


def test_lissa_divergence_is_named(data):
    X, y, m = data
    eng = engine(m, method="lissa", scale=1e-3).fit(X, y)
    with pytest.raises(ak.HessianError, match=r"^method='lissa' diverged after \d+ steps with scale=0.001: pass a "
                                              r"larger scale"):
        eng.influence(X[:3], y[:3])


def test_finite_check_accepts_huge_finite_values_and_finds_every_kind_of_non_finite_one():
    """The check first sums (one pass); a sum that overflows from finite values must not be taken for bad data."""
    from auditkit.influence.records import _check_finite
    _check_finite(torch.full((10, 3), 1e308, dtype=torch.float64), "X")
    for bad in (float("nan"), float("inf"), -float("inf")):
        X = torch.zeros(10, 3, dtype=torch.float64)
        X[4, 1] = bad
        with pytest.raises(InputError, match=r"^X contains NaN or infinite values in 1 record\(s\) \(first at rows "
                                             r"\[4\]\)"):
            _check_finite(X, "X")


def test_lissa_that_cannot_converge_within_depth_says_so_early_and_suggests_damping():
    """A trained MLP with a tiny ridge (smallest eigenvalue 1e-6 against a largest of 0.36): the full-Hessian
    recursion would need far more than ``depth`` steps. It stops at the first check that shows it (step 500),
    not after ``depth`` passes, with a damping the audit's ``damping: auto`` applies; with more damping it
    converges within depth (control)."""
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(60, 3, generator=gen, dtype=torch.float64)
    y = ((X[:, 0] + torch.randn(60, generator=gen, dtype=torch.float64)) > 0).long()
    torch.manual_seed(1)
    m = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double()
    ak.fit_model(m, X, y, l2=1e-6)
    eng = engine(m, l2=1e-6, method="lissa", depth=1000).fit(X, y)
    with pytest.raises(ak.SingularHessianError, match=r"^method='lissa' cannot converge within depth=1000: at the "
                                                      r"rate its estimate settles after 500 steps") as caught:
        eng.influence(X[:3], y[:3])
    assert eng.solver_.steps_ == 0 and caught.value.suggested_damping > 0
    damped = engine(m, l2=1e-6, method="lissa", depth=1000, damping=0.01).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        damped.influence(X[:3], y[:3])
    assert damped.solver_.residual_ < 1e-3
