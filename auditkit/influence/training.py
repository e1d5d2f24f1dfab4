"""Deterministic full-batch training of the objective the influence contract assumes.

``fit_model`` minimises ``R(θ) = Σ_i w_i ℓ(z_i; θ) / Σ_i w_i + ½ Σ_k λ_k ‖θ_k‖²`` (weights default to 1, so
R is the mean loss plus the L2 term; λ_k = l2 for every parameter tensor when l2 is a number, or per
parameter from a mapping ``{name or prefix: λ_k}``, see ``penalty``) over the model's trainable parameters:
L-BFGS with a strong-Wolfe line search, then, for models of at most ``newton_max_params`` parameters, Newton steps
``θ ← θ − t·∇²R⁻¹ ∇R`` (backtracking on t) until ``‖∇R‖_∞ ≤ tol``. Influence estimates are only
meaningful at such a minimum. The same routine is the ground truth for leave-one-out retraining
(``retrain_without``): drop the records and start from the trained parameters (a warm start).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.func import functional_call, grad, hessian

from .losses import resolve_loss
from .penalty import L2, l2_vector


def fit_model(model: nn.Module, X, y, *, loss="cross_entropy", l2: L2 = 0.0, weights=None,
              tol: float = 1e-9, max_iter: int = 2000, newton_max_params: int = 3000) -> dict:
    """Train ``model`` in place to a minimum of the regularised mean loss; returns what was reached.

    Returns ``{"objective", "grad_norm", "iterations", "converged"}`` where ``grad_norm`` is
    ``‖∇R(θ)‖_∞`` at the end.
    """
    loss_fn = resolve_loss(loss)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = [p for p in model.parameters() if p.requires_grad]
    dtype = params[0].dtype
    X = X.to(dtype) if isinstance(X, torch.Tensor) else torch.as_tensor(X, dtype=dtype)
    y = torch.as_tensor(y)
    if y.is_floating_point():
        y = y.to(dtype)
    w = torch.ones(X.shape[0], dtype=dtype) if weights is None else torch.as_tensor(weights, dtype=dtype)
    w = w / w.sum()
    was_training = model.training
    model.eval()
    sizes = [p.numel() for p in params]
    lam = l2_vector(l2, names, sizes, dtype=dtype, device=params[0].device)

    def objective_flat(theta: torch.Tensor) -> torch.Tensor:
        named = {n: t.view_as(p) for n, t, p in zip(names, torch.split(theta, sizes), params, strict=True)}
        value = (loss_fn(functional_call(model, named, (X,)), y) * w).sum()
        return value + 0.5 * (lam * theta * theta).sum()

    def flat() -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in params])

    def assign(theta: torch.Tensor) -> None:
        with torch.no_grad():
            for p, part in zip(params, torch.split(theta, sizes), strict=True):
                p.copy_(part.view_as(p))

    def grad_norm() -> float:
        return float(grad(objective_flat)(flat()).abs().max())

    opt = torch.optim.LBFGS(params, lr=1, max_iter=max_iter, tolerance_grad=tol, tolerance_change=0,
                            history_size=50, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        value = objective_flat(torch.cat([p.reshape(-1) for p in params]))
        value.backward()
        return value

    iterations = 0
    if grad_norm() > tol:
        opt.step(closure)
        iterations = int(opt.state[opt._params[0]].get("n_iter", 0))
    if grad_norm() > tol and sum(sizes) <= newton_max_params:
        iterations += _newton(objective_flat, flat(), assign, tol=tol)
    final_norm, final_value = grad_norm(), float(objective_flat(flat()))
    model.train(was_training)
    return {"objective": final_value, "grad_norm": final_norm, "iterations": iterations,
            "converged": final_norm <= tol}


def _newton(objective, theta: torch.Tensor, assign, *, tol: float, steps: int = 30) -> int:
    """Newton steps with backtracking from ``theta``; stops early if the Hessian is not positive definite."""
    g_fn = grad(objective)
    for step in range(1, steps + 1):
        g = g_fn(theta)
        if float(g.abs().max()) <= tol:
            return step - 1
        H = hessian(objective)(theta)
        chol, info = torch.linalg.cholesky_ex((H + H.T) / 2)
        if int(info) > 0:
            return step - 1
        direction = torch.cholesky_solve(-g[:, None], chol)[:, 0]
        current, t = float(objective(theta)), 1.0
        while t > 1e-8 and float(objective(theta + t * direction)) > current + 1e-4 * t * float(g @ direction):
            t /= 2
        theta = theta + t * direction
        assign(theta)
    return steps


def retrain_without(model: nn.Module, X, y, remove, *, loss="cross_entropy", l2: L2 = 0.0,
                    tol: float = 1e-9, max_iter: int = 200) -> nn.Module:
    """A copy of ``model`` retrained without the records at positions ``remove``.

    Warm start: training starts from the model's current (trained) parameters and minimises the same
    objective, the mean loss over the remaining records plus ``(l2/2)·‖θ‖²`` (or ``½ Σ_k λ_k ‖θ_k‖²``). This is
    the actual leave-one-out (or leave-group-out) retraining that influence estimates approximate.
    """
    keep = torch.ones(len(y), dtype=torch.bool)
    keep[torch.as_tensor(remove, dtype=torch.long)] = False
    X = torch.as_tensor(X)
    y = torch.as_tensor(y)
    clone = copy.deepcopy(model)
    fit_model(clone, X[keep], y[keep], loss=loss, l2=l2, tol=tol, max_iter=max_iter)
    return clone
