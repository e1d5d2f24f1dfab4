"""Shared fixtures: the bundled real data sets, models trained to a minimum, and actual retraining."""

from __future__ import annotations

import http.server
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "report"))

# The report tests' fixtures (sample run, hostile run, rendered report): a plugin module rather than a second
# conftest.py, whose module name would shadow this one for `from conftest import ...`.
pytest_plugins = ["report_fixtures"]

import auditkit as ak  # noqa: E402
from auditkit.influence import retrain_without  # noqa: E402
from auditkit.influence.losses import resolve_loss  # noqa: E402
from examples.datasets import prepare  # noqa: E402

# The models here are tiny: one thread avoids oversubscription on small CI machines (10-100x faster).
torch.set_num_threads(1)

L2_LR = 0.01
L2_MLP = 0.03


@pytest.fixture(scope="session")
def heart():
    """UCI Heart Disease, split and encoded; tensors in float64."""
    d = prepare("heart_disease")
    return {"X": torch.tensor(d.X_train), "y": torch.tensor(d.y_train),
            "Xt": torch.tensor(d.X_test), "yt": torch.tensor(d.y_test), "prepared": d}


def trained(model: torch.nn.Module, X, y, *, loss="cross_entropy", l2: float) -> torch.nn.Module:
    info = ak.fit_model(model, X, y, loss=loss, l2=l2)
    assert info["converged"], info
    return model


def logistic(d: int, out: int = 2) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Linear(d, out).double()


def mlp(d: int, hidden: int = 16) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 2)).double()


@pytest.fixture(scope="session")
def heart_lr(heart):
    return trained(logistic(heart["X"].shape[1]), heart["X"], heart["y"], l2=L2_LR)


@pytest.fixture(scope="session")
def heart_mlp(heart):
    return trained(mlp(heart["X"].shape[1]), heart["X"], heart["y"], l2=L2_MLP)


def leave_one_out(model, X, y, Xt, yt, records, *, loss="cross_entropy", l2):
    """Actual retraining without each record: (change of own loss (k,), change of test losses (m, k))."""
    loss_fn = resolve_loss(loss)
    with torch.no_grad():
        base_own, base_test = loss_fn(model(X), y), loss_fn(model(Xt), yt)
    own, test = [], []
    for j in records:
        m = retrain_without(model, X, y, [int(j)], loss=loss, l2=l2)
        with torch.no_grad():
            own.append(float(loss_fn(m(X[j:j + 1]), y[j:j + 1])[0] - base_own[j]))
            test.append((loss_fn(m(Xt), yt) - base_test).numpy())
    return np.array(own), np.array(test).T


@pytest.fixture(scope="session")
def sample():
    """The ~20 training records retrained without, and the 40 test records observed."""
    return np.random.default_rng(0).choice(690, size=20, replace=False), slice(0, 40)


@pytest.fixture(scope="session")
def heart_lr_loo(heart, heart_lr, sample):
    records, tests = sample
    return leave_one_out(heart_lr, heart["X"], heart["y"], heart["Xt"][tests], heart["yt"][tests], records, l2=L2_LR)


@pytest.fixture(scope="session")
def heart_mlp_loo(heart, heart_mlp, sample):
    records, tests = sample
    return leave_one_out(heart_mlp, heart["X"], heart["y"], heart["Xt"][tests], heart["yt"][tests], records,
                         l2=L2_MLP)


def pearson(a, b) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


@pytest.fixture
def listener():
    """A local HTTP server recording every request it receives."""
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()


class Positions(torch.nn.Module):
    """A Linear layer applied at 3 positions of each record (input (b, 3, 4)), then averaged."""

    def __init__(self, classes):
        super().__init__()
        self.fc, self.out = torch.nn.Linear(4, 3), torch.nn.Linear(3, classes)

    def forward(self, x):
        return self.out(torch.tanh(self.fc(x.reshape(-1, 3, 4))).mean(1))
