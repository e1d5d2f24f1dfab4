"""Per-record losses ``loss(outputs, targets) -> (n,)`` and the checks of their targets.

Built-in names:

- ``"cross_entropy"``: ``ℓ = -log softmax(o)[y]``; outputs ``(n, C)``, integer labels ``0 ≤ y < C``.
- ``"bce"``: ``ℓ = -y·log σ(o) - (1-y)·log(1-σ(o))``; one logit per record, outputs ``(n,)`` or
  ``(n, 1)``, targets in ``[0, 1]``.
- ``"mse"``: ``ℓ = mean_k (o_k - y_k)²`` over a record's output dimensions; targets shaped like outputs.

A callable ``loss(outputs, targets)`` returning one loss per record is accepted as it is. Losses are
written for a batch, and auditkit also calls them on a batch of one inside ``torch.func.vmap``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..errors import InputError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``-log softmax(outputs)[targets]`` per record."""
    return F.cross_entropy(outputs, targets.long(), reduction="none")


def bce(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on one logit per record."""
    logits = outputs.reshape(outputs.shape[0])
    return F.binary_cross_entropy_with_logits(logits, targets.reshape(logits.shape).to(logits.dtype),
                                              reduction="none")


def mse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over a record's output dimensions of ``(outputs - targets)²``."""
    diff = outputs - targets.reshape(outputs.shape).to(outputs.dtype)
    return (diff * diff).reshape(outputs.shape[0], -1).mean(dim=1)


BUILTIN_LOSSES: dict[str, LossFn] = {"cross_entropy": cross_entropy, "bce": bce, "mse": mse}


def resolve_loss(loss: str | LossFn) -> LossFn:
    """Return the per-record loss named by ``loss`` (a built-in name or a callable)."""
    if callable(loss):
        return loss
    if isinstance(loss, str) and loss in BUILTIN_LOSSES:
        return BUILTIN_LOSSES[loss]
    allowed = ", ".join(repr(k) for k in BUILTIN_LOSSES)
    raise InputError(f"loss={loss!r} is not known: use one of {allowed}, or a callable "
                     "loss(outputs, targets) returning one loss per record")


def check_targets(loss: str | LossFn, outputs: torch.Tensor, targets: torch.Tensor, *, name: str) -> None:
    """Check ``targets`` (called ``name`` in messages) against the model's ``outputs`` for ``loss``.

    ``outputs`` are the model's outputs for the first few records; ``targets`` are all of them.
    """
    if not isinstance(loss, str):
        return
    if loss == "cross_entropy":
        if outputs.ndim != 2:
            raise InputError(f"loss='cross_entropy' needs model outputs of shape (n, classes), got "
                             f"{tuple(outputs.shape)}: use loss='bce' for a model with one logit")
        n_classes = outputs.shape[1]
        if targets.ndim != 1:
            raise InputError(f"{name} must be a 1-d vector of class labels for loss='cross_entropy', "
                             f"got shape {tuple(targets.shape)}")
        if targets.is_floating_point() and not torch.equal(targets, targets.round()):
            raise InputError(f"{name} must hold integer class labels for loss='cross_entropy', "
                             "found non-integer values")
        low, high = targets.min().item(), targets.max().item()
        if low < 0 or high >= n_classes:
            raise InputError(f"{name} has labels in [{low:g}, {high:g}] but the model has {n_classes} "
                             f"outputs: labels must lie in 0..{n_classes - 1}")
    elif loss == "bce":
        if outputs.ndim > 2 or (outputs.ndim == 2 and outputs.shape[1] != 1):
            raise InputError(f"loss='bce' needs one logit per record (outputs of shape (n,) or (n, 1)), "
                             f"got {tuple(outputs.shape)}: use loss='cross_entropy' for several classes")
        low, high = targets.min().item(), targets.max().item()
        if low < 0 or high > 1:
            raise InputError(f"{name} has values in [{low:g}, {high:g}]: loss='bce' needs targets in [0, 1]")
    elif loss == "mse":
        if targets.numel() != targets.shape[0] * outputs[0].numel():
            raise InputError(f"{name} of shape {tuple(targets.shape)} does not match the model's outputs "
                             f"of shape (n, {', '.join(map(str, outputs.shape[1:]))}) for loss='mse'")
