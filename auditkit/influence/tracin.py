"""TracInCP self-influence: how hard each record pulled on the parameters while the model was trained.

For checkpoints ``θ_1 … θ_C`` saved during training, with step sizes ``η_c`` (default 1), TracInCP
(Pruthi et al. 2020) scores a record by the sum over checkpoints of the squared norm of its gradient:

    ``tracin(z_i) = Σ_c η_c ‖∇_θ ℓ(z_i; θ_c)‖²``

This is the first-order estimate of the drop of ``ℓ(z_i)`` caused by the steps taken on ``z_i`` itself.
Why it helps next to the engine's self-influence ``(1/n) g_iᵀ H⁻¹ g_i``: that one is taken at the final
parameters only, where a record the model has memorised (an outlier fitted exactly, a flipped label
learnt by heart) already has a near-zero loss and gradient, so it looks harmless. TracInCP sees the record
at earlier checkpoints, while it was being memorised and its gradient was still large.

Units: loss × step size, not a change of the loss after retraining; no ``1/n`` and no Hessian. Rank
records by it; do not compare it with leave-one-out retraining. Records are streamed in chunks, one
checkpoint at a time, so memory is bounded in n.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from .dtypes import DTYPES as _DTYPES
from .gradients import ModelFunction, _select
from .losses import check_targets, resolve_loss
from .records import Records

_FIX = "pass state dicts saved with model.state_dict() from the same architecture as the model"


def _shape(t) -> tuple:
    return tuple(t.shape) if hasattr(t, "shape") else ()


def _check_checkpoint(index: int, state, reference: dict) -> None:
    """Raise a one-line InputError unless ``state`` has exactly the model's keys and shapes."""
    if not isinstance(state, Mapping):
        raise InputError(f"checkpoint {index} is a {type(state).__name__}, not a state dict: {_FIX}")
    missing = [k for k in reference if k not in state]
    unexpected = [k for k in state if k not in reference]
    wrong = [k for k in reference if k in state and _shape(state[k]) != tuple(reference[k].shape)]
    problems = []
    if missing:
        problems.append(f"missing {', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}")
    if unexpected:
        problems.append(f"unexpected {', '.join(unexpected[:3])}{' …' if len(unexpected) > 3 else ''}")
    for k in wrong[:3]:
        problems.append(f"{k} has shape {_shape(state[k])} but the model's has {tuple(reference[k].shape)}")
    if problems:
        raise InputError(f"checkpoint {index} does not match the model's architecture ({'; '.join(problems)}): "
                         f"{_FIX}")


def _learning_rates(learning_rates, n: int) -> list[float]:
    if learning_rates is None:
        return [1.0] * n
    if isinstance(learning_rates, (int, float)) and not isinstance(learning_rates, bool):
        rates = [float(learning_rates)] * n
    else:
        try:
            rates = [float(r) for r in learning_rates]
        except (TypeError, ValueError):
            raise InputError(f"learning_rates={learning_rates!r} is not allowed: pass one number ≥ 0 per "
                             "checkpoint") from None
    if len(rates) != n:
        raise InputError(f"learning_rates has {len(rates)} values but there are {n} checkpoints: pass one "
                         "step size per checkpoint")
    if any(not np.isfinite(r) or r < 0 for r in rates):
        raise InputError(f"learning_rates={rates!r} is not allowed: every step size must be a finite number ≥ 0")
    return rates


def tracin_self_influence(model: nn.Module, checkpoints: Sequence[Mapping], X, y=None, *,
                          loss: str | Callable = "cross_entropy", learning_rates=None, params=None,
                          chunk_size: int = 256, dtype=None) -> np.ndarray:
    """``Σ_c η_c ‖∇_θ ℓ(z_i; θ_c)‖²`` for every record ``z_i = (X[i], y[i])``; numpy float64 (n,).

    Parameters
    ----------
    model : torch.nn.Module
        The architecture; each checkpoint is loaded into a deep copy of it (the model is not changed).
    checkpoints : list of state dicts
        Parameters saved during training (``model.state_dict()`` at a few epochs), all of this architecture.
    X, y : tensors, numpy arrays, or a torch Dataset of (x, y) pairs (then y is omitted)
        The records to score.
    loss : ``"cross_entropy"``, ``"bce"``, ``"mse"`` or a callable ``loss(outputs, targets) -> (n,)``
        The per-record training loss ℓ.
    learning_rates : number or one number per checkpoint, optional
        The step sizes ``η_c`` in force around each checkpoint (default 1).
    params : list of names or prefixes, optional
        Take gradients with respect to these parameters only (e.g. the last layer).
    chunk_size : int
        Records per chunk of per-record gradients; memory grows with it, not with n.
    dtype : torch.float32 or torch.float64, optional
        Precision of the computation (default: the model's).
    """
    if not isinstance(model, nn.Module):
        raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}: wrap the model "
                         "in an nn.Module first")
    if isinstance(checkpoints, Mapping) or not isinstance(checkpoints, Sequence):
        raise InputError(f"checkpoints must be a list of state dicts, got {type(checkpoints).__name__}: "
                         "wrap a single state dict in a list")
    if len(checkpoints) == 0:
        raise InputError("checkpoints is empty: pass a list of at least one state dict saved during training "
                         "(model.state_dict())")
    rates = _learning_rates(learning_rates, len(checkpoints))
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise InputError(f"chunk_size={chunk_size!r} is not allowed: it must be a positive integer")
    if dtype is not None and dtype not in _DTYPES:
        raise InputError(f"dtype={dtype!r} is not allowed: use torch.float32 or torch.float64")
    loss_fn = resolve_loss(loss)
    _select(model, params)
    first = next(p for p in model.parameters() if p.requires_grad)
    dtype = _DTYPES[dtype] if dtype is not None else (
        first.dtype if first.dtype in (torch.float32, torch.float64) else torch.float32)
    device = first.device
    reference = model.state_dict()
    for c, state in enumerate(checkpoints):
        _check_checkpoint(c, state, reference)
    records = Records(X, y, name="X")

    out = np.zeros(records.n, dtype=np.float64)
    for c, (state, rate) in enumerate(zip(checkpoints, rates, strict=True)):
        net = copy.deepcopy(model)
        net.load_state_dict(state)
        net.eval()
        fn = ModelFunction(net, loss_fn, params=params, dtype=dtype, device=device)
        if c == 0:
            x, _ = records.head(4, dtype=dtype, device=device)
            try:
                with torch.no_grad():
                    outputs = fn.outputs(fn.theta, x)
            except Exception as exc:  # noqa: BLE001 - any failure here means the records do not fit the model
                line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise InputError(f"the model cannot be applied to X (records of shape {tuple(x.shape[1:])}): "
                                 f"{line}. Check that the features match the model's input") from None
            check_targets(loss, outputs, records.targets(), name="y for X")
        if rate == 0:
            continue
        start = 0
        for xb, yb in records.chunks(chunk_size, dtype=dtype, device=device):
            G = fn.per_record_grads(xb, yb)
            out[start:start + G.shape[0]] += rate * (G * G).sum(dim=1).double().cpu().numpy()
            start += G.shape[0]
    return out
