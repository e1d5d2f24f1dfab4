"""Multiclass influence against actual leave-one-out retraining: scikit-learn's wine data (3 classes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import leave_one_out, pearson, trained
from sklearn.datasets import load_wine

import auditkit as ak

L2 = 0.1            # wine is nearly separable: a weaker penalty leaves a few records with leverage near 1


@pytest.fixture(scope="module")
def wine():
    d = load_wine()
    X = (d.data - d.data.mean(0)) / d.data.std(0)
    order = np.random.default_rng(0).permutation(len(d.target))
    X, y = torch.tensor(X[order]), torch.tensor(d.target[order])
    return X[:130], y[:130], X[130:], y[130:]


@pytest.mark.parametrize("kind", ["logreg", "mlp"])
def test_multiclass_influence_matches_retraining(wine, kind):
    X, y, Xt, yt = wine
    torch.manual_seed(0)
    model = torch.nn.Linear(13, 3) if kind == "logreg" else torch.nn.Sequential(
        torch.nn.Linear(13, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    model = trained(model.double(), X, y, l2=L2)
    records = np.random.default_rng(1).choice(130, size=10, replace=False)
    own, test = leave_one_out(model, X, y, Xt, yt, records, l2=L2)
    for method in ("exact", "pcg"):
        eng = ak.InfluenceEngine(model, "cross_entropy", l2=L2, method=method).fit(X, y)
        s, S = eng.self_influence()[records], eng.influence(Xt, yt)[:, records]
        assert pearson(s, own) >= 0.98 and pearson(S, test) >= 0.98, (method, pearson(s, own), pearson(S, test))
        # units: the change of loss on removal itself (slope of predicted on actual test-loss changes ≈ 1; the
        # first-order estimate runs ~10-20% low here, measured 0.80 for the MLP and 0.84 for the logreg)
        assert 0.7 <= float(np.polyfit(test.ravel(), S.ravel(), 1)[0]) <= 1.3
