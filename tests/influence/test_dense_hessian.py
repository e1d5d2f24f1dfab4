"""The dense Hessian from per-record Kronecker blocks (``auditkit.influence.dense_hessian``) equals the Hessian of the
regularised objective computed by ``torch.autograd.functional.hessian`` (float64, max abs difference ≤ 1e-10), and
today's p Hessian-vector products: 1- and 2-hidden-layer MLPs, first layer without bias, ``nn.Flatten`` before it,
every built-in loss and a custom one, per-parameter l2, ``params=`` subsets, several chunks; models without the
shape fall back to Hessian-vector products."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from auditkit.influence import dense_hessian
from auditkit.influence.gradients import ModelFunction
from auditkit.influence.hessian import HessianOperator
from auditkit.influence.losses import resolve_loss
from auditkit.influence.penalty import l2_vector
from auditkit.influence.records import as_records

TOL = 1e-10
CPU = torch.device("cpu")


def huber(outputs, targets):
    r = outputs[:, 0] - targets
    return torch.where(r.abs() < 0.5, r ** 2, r.abs() - 0.25)


def operator(model, X, y, loss, *, params=None, l2=1e-3, damping=0.05, dtype=torch.float64):
    fn = ModelFunction(model, resolve_loss(loss), params=params, dtype=dtype, device=CPU)
    return HessianOperator(fn, as_records(X, y, name="X"), l2=l2, damping=damping, chunk_size=7)


def autograd_hessian(op: HessianOperator, X, y) -> torch.Tensor:
    """∇² of ``mean loss + ½ Σ λ_k θ_k² + damping/2 ‖θ‖²`` at θ, by torch.autograd.functional.hessian."""
    fn = op.fn
    known = [n for n, _ in fn.model.named_parameters()]
    lam = l2_vector(op.l2, fn.names, fn.sizes, known=known, dtype=fn.dtype, device=CPU) + op.damping
    x, t = X.to(fn.dtype), y if not y.is_floating_point() else y.to(fn.dtype)

    def objective(theta):
        return fn.losses(theta, x, t).mean() + 0.5 * (lam * theta ** 2).sum()

    return torch.autograd.functional.hessian(objective, fn.theta)


def data(n=40, d=5, *, classes=3, loss="cross_entropy", shape=None):
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(n, d, generator=gen, dtype=torch.float64)
    if loss == "cross_entropy":
        y = torch.randint(0, classes, (n,), generator=gen)
    elif loss == "bce":
        y = torch.randint(0, 2, (n,), generator=gen).double()
    else:
        y = torch.randn(n, generator=gen, dtype=torch.float64)
    return (X.reshape(n, *shape) if shape else X), y


def mlp(*layers):
    torch.manual_seed(0)
    return nn.Sequential(*layers).double()


CASES = {
    "1 hidden, cross-entropy": (lambda: mlp(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)), "cross_entropy", {}),
    "2 hidden, cross-entropy": (lambda: mlp(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3), nn.Softplus(),
                                            nn.Linear(3, 3)), "cross_entropy", {}),
    "no bias, bce": (lambda: mlp(nn.Linear(5, 4, bias=False), nn.Tanh(), nn.Linear(4, 1)), "bce", {}),
    "mse": (lambda: mlp(nn.Linear(5, 3), nn.Sigmoid(), nn.Linear(3, 1)), "mse", {}),
    "custom loss": (lambda: mlp(nn.Linear(5, 3), nn.Tanh(), nn.Linear(3, 1)), huber, {}),
    "logistic regression": (lambda: mlp(nn.Linear(5, 3)), "cross_entropy", {}),
    "bare nn.Linear": (lambda: nn.Linear(5, 3).double(), "cross_entropy", {}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_equals_autograd_hessian_and_hessian_vector_products(case):
    build, loss, _ = CASES[case]
    model = build()
    X, y = data(loss=loss if isinstance(loss, str) else "mse")
    op = operator(model, X, y, loss)
    H = op.dense()
    assert op.dense_method == "kronecker"
    truth = autograd_hessian(op, X, y)
    assert (H - truth).abs().max() <= TOL
    assert (H - op.matvec(torch.eye(op.p, dtype=torch.float64))).abs().max() <= TOL
    assert truth.abs().max() > 1e-2                                       # not trivially equal


@pytest.mark.parametrize("params", [["0.weight"], ["0.bias", "4"], ["2"], ["2.weight", "4.bias"], ["0", "4.weight"]])
def test_params_subsets_and_per_parameter_l2(params):
    model = CASES["2 hidden, cross-entropy"][0]()
    X, y = data()
    op = operator(model, X, y, "cross_entropy", params=params, l2={"0.weight": 1e-2, "2": 3e-3})
    H = op.dense()
    assert op.dense_method == "kronecker"
    assert (H - autograd_hessian(op, X, y)).abs().max() <= TOL


def test_flatten_before_the_first_layer_and_several_chunks(monkeypatch):
    monkeypatch.setattr(dense_hessian, "BUDGET", 8 * 28)           # e(e+1)/2 = 28: 8 records per chunk
    monkeypatch.setattr(dense_hessian, "MIN_CHUNK", 1)
    model = mlp(nn.Flatten(), nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 3))
    X, y = data(d=6, shape=(2, 3))
    op = operator(model, X, y, "cross_entropy")
    split = op.kron_split()
    assert split.lead == ["0"] and split.first == "1" and split.chunk_size == 8
    calls = []
    chunk = dense_hessian.FirstLinearSplit.chunk
    monkeypatch.setattr(dense_hessian.FirstLinearSplit, "chunk", lambda self, x, yy: calls.append(len(x)) or
                        chunk(self, x, yy))
    H = op.dense()
    assert calls == [8, 8, 8, 8, 8]
    assert (H - autograd_hessian(op, X.reshape(40, 6), y)).abs().max() <= TOL


def test_float32_agrees_with_float64():
    model = CASES["1 hidden, cross-entropy"][0]()
    X, y = data()
    H64 = operator(model, X, y, "cross_entropy").dense()
    op32 = operator(model.float(), X.float(), y, "cross_entropy", dtype=torch.float32)
    H32 = op32.dense()
    assert op32.dense_method == "kronecker" and H32.dtype == torch.float64     # the blocks' products in float64
    assert (H32 - H64).abs().max() <= 1e-5 * H64.abs().max()


def test_float32_features_whose_squares_overflow_float32_give_a_finite_hessian():
    """Features of magnitude 1e19: x̃x̃ᵀ (1e38 per entry, summed over records) overflows float32, not float64."""
    model = CASES["1 hidden, cross-entropy"][0]().float()
    X, y = data()
    X = X.float() * 1e19
    H = operator(model, X, y, "cross_entropy", dtype=torch.float32).dense()
    assert torch.isfinite(H).all()
    ref = operator(model.double(), X.double(), y, "cross_entropy").dense()
    assert (H - ref).abs().max() <= 1e-4 * ref.abs().max()


class NotSequential(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(5, 4), nn.Linear(4, 3)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


def tied():
    model = mlp(nn.Linear(5, 5), nn.Tanh(), nn.Linear(5, 5), nn.Tanh(), nn.Linear(5, 3))
    model[2].weight = model[0].weight
    return model


@pytest.mark.parametrize("build", [lambda: NotSequential().double(), tied,
                                   lambda: mlp(nn.LayerNorm(5), nn.Linear(5, 3))],
                         ids=["not Sequential", "tied weights", "first trained layer not Linear"])
def test_other_shapes_fall_back_to_hessian_vector_products(build):
    model = build()
    X, y = data()
    op = operator(model, X, y, "cross_entropy")
    H = op.dense()
    assert op.kron_split() is None and op.dense_method == "hvp"
    assert (H - autograd_hessian(op, X, y)).abs().max() <= TOL


def test_too_large_for_the_memory_budget_falls_back(monkeypatch):
    monkeypatch.setattr(dense_hessian, "BUDGET", 15 * 21)           # e(e+1)/2 = 21: 15 records < MIN_CHUNK
    op = operator(CASES["1 hidden, cross-entropy"][0](), *data(), "cross_entropy")
    assert op.kron_split() is None
    op.dense()
    assert op.dense_method == "hvp"
