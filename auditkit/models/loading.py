"""Build the audited model from ``package.module:function`` and fill it from a weights file.

Weights are read with ``torch.load(..., weights_only=True)``: a weights file can hold tensors and plain
containers only, never code. The builder itself is user code, named in the configuration.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import InputError


def import_object(ref: str, what: str, *, base_dir: str | Path | None = None) -> Any:
    """The object named ``package.module:attribute`` (the configuration key ``what`` names it).

    Modules are looked up on ``sys.path`` with the current working directory first, as ``python -m`` does,
    then ``base_dir`` (the configuration file's folder, where relative file paths are read from too).
    """
    module_name, _, attribute = ref.partition(":")
    folders = [os.getcwd()] + ([str(Path(base_dir).resolve())] if base_dir is not None else [])
    for position, folder in enumerate(folders):
        if folder not in sys.path:
            sys.path.insert(position, folder)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        where = " or the configuration file's folder" if base_dir is not None else ""
        raise InputError(f"{what}: cannot import module {module_name!r} ({exc}): install it, put it on "
                         f"PYTHONPATH, or put it in the current directory{where}") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise InputError(f"{what}: module {module_name!r} has no attribute {attribute!r}: fix the name after "
                         "the colon") from None


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``path``, loaded with ``weights_only=True`` onto the CPU."""
    if not path.is_file():
        raise InputError(f"model.weights: file {str(path)!r} does not exist: give the path of the state dict "
                         "saved with torch.save(model.state_dict(), path)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every reader failure is a problem of the file
        detail = (str(exc).strip().splitlines() or [""])[0][:160]
        raise InputError(f"model.weights: {str(path)!r} is not a weights file torch can load safely "
                         f"({type(exc).__name__}: {detail}): save it with "
                         "torch.save(model.state_dict(), path)") from None
    if isinstance(state, nn.Module) or not isinstance(state, dict):
        raise InputError(f"model.weights: {str(path)!r} holds a {type(state).__name__}, not a state dict: save "
                         "it with torch.save(model.state_dict(), path)")
    return state


def build_model(builder: str, weights: Path | None, *, kwargs: dict | None = None,
                dtype: torch.dtype = torch.float64, base_dir: Path | None = None) -> nn.Module:
    """``builder(**kwargs)`` filled with the weights (if a file is given), in ``dtype``, in eval mode; the
    builder's module is imported as :func:`import_object` does (``base_dir``: the configuration's folder)."""
    make = import_object(builder, "model.builder", base_dir=base_dir)
    if not callable(make):
        raise InputError(f"model.builder: {builder!r} is not callable: name a function that returns an nn.Module")
    try:
        model = make(**(kwargs or {}))
    except Exception as exc:  # noqa: BLE001 - user code: any failure is a problem of the configuration
        detail = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise InputError(f"model.builder: calling {builder!r} failed ({type(exc).__name__}: {detail}): check "
                         "model.builder_args and the builder") from None
    if not isinstance(model, nn.Module):
        raise InputError(f"model.builder: {builder!r} returned a {type(model).__name__}, not a torch nn.Module")
    if weights is None:
        return cast_finite(model, dtype, "model.builder")
    state = load_state_dict(weights)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = next((line.strip() for line in str(exc).splitlines()[1:] if line.strip()), str(exc))[:200]
        raise InputError(f"model.weights: {str(weights)!r} does not fit the model built by {builder!r} "
                         f"({first}): the weights belong to another architecture") from None
    return cast_finite(model, dtype, "model.weights")


def cast_finite(model: nn.Module, dtype: torch.dtype, key: str) -> nn.Module:
    """``model`` in ``dtype`` and eval mode, if every floating-point parameter and buffer is finite; else an
    :class:`InputError` naming the tensor: NaN/inf already in the weights (training diverged), or values that
    overflow ``dtype`` (float64 weights beyond ±3.4e38 cast to float32)."""
    finite_before = {name: bool(torch.isfinite(t).all()) for name, t in model.state_dict().items()
                     if t.is_floating_point()}
    model = model.to(dtype).eval()
    for name, tensor in model.state_dict().items():
        bad = int((~torch.isfinite(tensor)).sum()) if tensor.is_floating_point() else 0
        if bad and finite_before.get(name):
            raise InputError(f"{key}: {name!r} holds {bad} value(s) beyond the range of "
                             f"{str(dtype).removeprefix('torch.')} (non-finite after conversion): set model.dtype: "
                             "float64")
        if bad:
            raise InputError(f"{key}: {name!r} holds {bad} non-finite value(s) (NaN or ±inf): the weights are "
                             "broken (did training diverge?); retrain the model or give other weights")
    return model


def parameters_sha256(model: nn.Module) -> str:
    """SHA-256 of a model's state (names, shapes, dtypes and values of every tensor, in order)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()
