"""Records handed to the engine: tensors, numpy arrays or a torch ``Dataset``, streamed in chunks.

``Records`` checks what it can up front (lengths, NaN/inf, dtypes) and yields ``(x, y)`` chunks on the
engine's device and dtype, so no computation ever holds more than one chunk of records.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import InputError


def _as_tensor(a, name: str, *, features: bool = False) -> torch.Tensor:
    """``a`` as a tensor; numpy features that are integers or booleans become floats (tabular data)."""
    if isinstance(a, torch.Tensor):
        return a.detach()
    try:
        arr = np.asarray(a)
    except Exception as exc:  # noqa: BLE001 - any conversion failure is the caller's input
        raise InputError(f"{name} could not be read as an array ({exc}): pass a numpy array or tensor") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InputError(f"{name} has non-numeric values (dtype {arr.dtype}): encode features as numbers "
                         "before computing influence")
    if features and arr.dtype.kind in "biu":
        arr = arr.astype(np.float64)
    elif not arr.flags.writeable:
        arr = arr.copy()
    return torch.from_numpy(np.ascontiguousarray(arr))


def _check_finite(t: torch.Tensor, name: str, *, block: int = 1 << 22) -> None:
    """Raise if any value is NaN or infinite; checked in blocks of about ``block`` values, because
    ``torch.isfinite`` allocates temporaries the size of its input (a copy of the data, for a large X)."""
    if not t.is_floating_point() or t.numel() == 0:
        return
    t = t.reshape(t.shape[0] if t.ndim else 1, -1)
    step = max(1, block // t.shape[1])
    if all(bool(torch.isfinite(t[s:s + step]).all()) for s in range(0, t.shape[0], step)):
        return
    bad = torch.cat([(~torch.isfinite(t[s:s + step])).any(dim=1) for s in range(0, t.shape[0], step)])
    rows = bad.nonzero().flatten()[:5].tolist()
    raise InputError(f"{name} contains NaN or infinite values in {int(bad.sum())} record(s) "
                     f"(first at rows {rows}): impute or drop them first")


class Records:
    """n records ``(x_i, y_i)``; ``chunks(size)`` yields them in order on a device and dtype."""

    def __init__(self, X, y=None, *, name: str = "X"):
        self.name = name
        self.dataset: Dataset | None = None
        if isinstance(X, Dataset) and not isinstance(X, torch.Tensor):
            if y is not None:
                raise InputError(f"{name} is a torch Dataset yielding (x, y) pairs: do not also pass y")
            self.dataset = X
            self.n = len(X)
            self.X = self.y = None
        else:
            if y is None:
                raise InputError(f"y is missing: pass the targets of {name}, or a Dataset of (x, y) pairs")
            self.X = _as_tensor(X, name, features=True)
            self.y = _as_tensor(y, f"y for {name}")
            if self.X.ndim < 2:
                raise InputError(f"{name} must have one row per record (shape (n, features...)), "
                                 f"got shape {tuple(self.X.shape)}: reshape a single record to (1, -1)")
            if self.y.ndim == 0 or self.y.shape[0] != self.X.shape[0]:
                raise InputError(f"{name} has {self.X.shape[0]} records but its y has shape "
                                 f"{tuple(self.y.shape)}: they must have the same length")
            _check_finite(self.X, name)
            _check_finite(self.y, f"y for {name}")
            self.n = self.X.shape[0]
        if self.n == 0:
            raise InputError(f"{name} has no records: pass at least one")

    def _prepare(self, x: torch.Tensor, y: torch.Tensor, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.to(device=device, dtype=dtype if (x.is_floating_point() or x.dtype == torch.bool) else x.dtype)
        y = y.to(device=device, dtype=dtype if y.is_floating_point() else y.dtype)
        return x, y

    def chunks(self, size: int, *, dtype, device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)`` chunks of at most ``size`` records, in order."""
        if self.dataset is None:
            for start in range(0, self.n, size):
                yield self._prepare(self.X[start:start + size], self.y[start:start + size], dtype, device)
            return
        for batch in DataLoader(self.dataset, batch_size=size, shuffle=False):
            if not (isinstance(batch, (list, tuple)) and len(batch) == 2):
                raise InputError(f"{self.name} must yield (x, y) pairs, got {type(batch).__name__} "
                                 f"of length {len(batch) if hasattr(batch, '__len__') else '?'}")
            x, y = (torch.as_tensor(b) for b in batch)
            _check_finite(x, self.name)
            _check_finite(y, f"y for {self.name}")
            yield self._prepare(x, y, dtype, device)

    def subset(self, index: torch.Tensor, *, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
        """The records at positions ``index`` as one ``(x, y)`` batch."""
        if self.dataset is None:
            return self._prepare(self.X[index], self.y[index], dtype, device)
        items = [self.dataset[int(i)] for i in index]
        x = torch.stack([torch.as_tensor(it[0]) for it in items])
        y = torch.stack([torch.as_tensor(it[1]) for it in items])
        return self._prepare(x, y, dtype, device)

    def head(self, k: int, *, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``k`` records (or fewer), for checks of shape and labels."""
        return next(self.chunks(k, dtype=dtype, device=device))

    def targets(self) -> torch.Tensor:
        """All targets (small: one value per record), for label checks."""
        if self.y is not None:
            return self.y
        return torch.cat([torch.as_tensor(y) for _, y in DataLoader(self.dataset, batch_size=4096)])
