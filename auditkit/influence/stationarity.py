"""Is the trained θ̂ a minimum of the stated objective on the given records? (Checked before any influence.)

Influence functions assume ``∇R(θ̂) = 0`` for ``R(θ) = (1/n) Σ_i ℓ(z_i; θ) + ½ Σ_k λ_k ‖θ_k‖²`` on the records as
featurized. :func:`stationarity` measures, in one streamed pass of full-batch gradients (no per-record
gradients), at the given parameters:

- ``grad_norm = ‖∇R(θ̂)‖₂`` on the records with their labels;
- ``reference_norm = ‖∇R̃(θ̂)‖₂`` with R̃ the same objective on the same records with their labels shuffled
  (a seeded permutation): the gradient the same weights show on data whose labels they were not trained on;
- ``relative = grad_norm / reference_norm``: about 0 where θ̂ is a minimum (converged training reaches
  1e-6 and less; training stopped early or by SGD typically 1e-3 to 1e-2), and of order 0.1 to 1 when the
  records are not those the weights were trained on as they are given (other feature encoding, other split),
  or the loss or the L2 coefficient differ from those of training;
- the mean training loss, the objective R(θ̂) and, for classification losses, the training accuracy.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.func import grad

from .gradients import ModelFunction
from .losses import resolve_loss
from .penalty import L2, check_l2, l2_vector

#: ``relative`` above which the given parameters are not called a minimum of the objective
STATIONARITY_THRESHOLD = 0.05


def _accuracy(outputs: torch.Tensor, y: torch.Tensor, loss) -> int | None:
    """Correct predictions in a chunk (None for a loss that is not a classification loss)."""
    if loss == "cross_entropy":
        return int((outputs.argmax(dim=-1) == y).sum())
    if loss == "bce":
        return int(((outputs.reshape(-1) > 0).to(y.dtype) == y.reshape(-1)).sum())
    return None


def stationarity(model: nn.Module, X, y, *, loss="cross_entropy", l2: L2 = 0.0, seed: int = 0,
                 chunk_size: int = 4096, dtype: torch.dtype | None = None) -> dict:
    """The stationarity of the model's parameters for the regularised mean loss on ``(X, y)``.

    Parameters
    ----------
    model : torch.nn.Module
        The trained model (its trainable parameters are θ̂); left unchanged.
    X, y : array-like
        The training records as the model takes them, and their targets.
    loss : str or callable
        The per-record loss ℓ (``"cross_entropy"``, ``"bce"``, ``"mse"`` or ``loss(outputs, y) -> (n,)``).
    l2 : float or mapping
        The L2 coefficient(s) of the objective (see ``auditkit.influence.penalty``).
    seed : int
        Seeds the permutation of the labels for ``reference_norm``.
    chunk_size : int
        Records per chunk (memory grows with it, not with n).
    dtype : torch dtype, optional
        Precision (default: the model's).

    Returns
    -------
    dict
        ``{"grad_norm", "reference_norm", "relative", "loss", "objective", "accuracy", "n"}`` as described in the
        module docstring (``accuracy`` is None for a regression loss).
    """
    loss_fn = resolve_loss(loss)
    first = next(p for p in model.parameters() if p.requires_grad)
    dtype = dtype or (first.dtype if first.dtype in (torch.float32, torch.float64) else torch.float64)
    was_training = model.training
    model.eval()
    try:
        fn = ModelFunction(model, loss_fn, dtype=dtype, device=first.device)
        lam = l2_vector(check_l2(l2), fn.names, fn.sizes, dtype=dtype, device=first.device)
        if not isinstance(X, torch.Tensor):
            X = np.asarray(X)                              # converted chunk by chunk: no second copy of all of X
        y = (y if isinstance(y, torch.Tensor) else torch.tensor(np.asarray(y))).to(first.device)
        if y.is_floating_point() or loss in ("bce", "mse"):
            y = y.to(dtype)
        n = X.shape[0]
        perm = torch.as_tensor(np.random.default_rng(seed).permutation(n), device=first.device)
        shuffled = y[perm]
        total = torch.zeros_like(fn.theta)
        total_shuffled = torch.zeros_like(fn.theta)
        loss_sum, correct = 0.0, 0
        gradient = grad(lambda t, xb, yb: fn.loss_sum(t, xb, yb), has_aux=False)
        for start in range(0, n, chunk_size):
            xb = torch.as_tensor(np.array(X[start:start + chunk_size]) if isinstance(X, np.ndarray)
                                 else X[start:start + chunk_size]).to(device=first.device, dtype=dtype)
            yb, sb = y[start:start + chunk_size], shuffled[start:start + chunk_size]
            total += gradient(fn.theta, xb, yb)
            total_shuffled += gradient(fn.theta, xb, sb)
            with torch.no_grad():
                out = fn.outputs(fn.theta, xb)
                loss_sum += float(loss_fn(out, yb).sum())
                hits = _accuracy(out, yb, loss)
                correct = None if hits is None or correct is None else correct + hits
        penalty = lam * fn.theta
        grad_norm = float((total / n + penalty).norm())
        reference = float((total_shuffled / n + penalty).norm())
    finally:
        model.train(was_training)
    mean_loss = loss_sum / n
    relative = grad_norm / reference if reference > 0 else (0.0 if grad_norm == 0 else math.inf)
    return {"grad_norm": grad_norm, "reference_norm": reference, "relative": relative, "loss": mean_loss,
            "objective": mean_loss + 0.5 * float((lam * fn.theta * fn.theta).sum()),
            "accuracy": None if correct is None else correct / n, "n": int(n)}
