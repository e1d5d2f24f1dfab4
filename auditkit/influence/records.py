"""Records handed to the engine: tensors, numpy arrays or a torch ``Dataset``, streamed in chunks; and where the
chunk-level work on them runs.

``Records`` checks what it can up front (lengths, NaN/inf, dtypes) and yields ``(x, y)`` chunks on the
engine's device and dtype, so no computation ever holds more than one chunk of records. A
:class:`RecordSource` is records that live elsewhere (e.g. Parquet files that workers read shard by shard,
``auditkit.backends.ParquetRecords``): it gives ``n`` and ``read(start, stop)``, and the engine uses it as is.

**Backends.** Every streamed pass over the training records maps a chunk function over them through a
*backend*: ``backend.map_chunks(func, records, *args, size=, dtype=, device=)`` yields
``func(x, y, *args)`` for each chunk of ``size`` records, in record order, and
``backend.sum_chunks(...)`` returns the sum of those results (tensors, or lists/tuples of tensors; the
additive statistics of curvature fitting). :class:`InProcess` (the default) runs them here, one chunk after
the other; ``auditkit.backends.DaskBackend`` runs them on the workers of a Dask cluster. Functions and
arguments given to a backend must be picklable (cloudpickle) for a distributed backend; the math never knows
which backend runs it.
"""

from __future__ import annotations

import math
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
    # one float64 sum per block (a whole-array ``sum(dtype=float64)`` converts a float32 X into a float64 copy
    # first): a NaN or ±inf makes it non-finite, and a finite sum can only come from finite values
    total = sum(float(t[s:s + step].sum(dtype=torch.float64)) for s in range(0, t.shape[0], step))
    if math.isfinite(total):
        return
    if all(bool(torch.isfinite(t[s:s + step]).all()) for s in range(0, t.shape[0], step)):
        return                                              # finite values whose sum overflowed
    bad = torch.cat([(~torch.isfinite(t[s:s + step])).any(dim=1) for s in range(0, t.shape[0], step)])
    rows = bad.nonzero().flatten()[:5].tolist()
    raise InputError(f"{name} contains NaN or infinite values in {int(bad.sum())} record(s) "
                     f"(first at rows {rows}): impute or drop them first")


def prepare_chunk(x: torch.Tensor, y: torch.Tensor, *, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """A chunk on ``device``: floating (and boolean) features in ``dtype``, floating targets in ``dtype``, integer
    targets (class labels) kept as they are."""
    x = x.to(device=device, dtype=dtype if (x.is_floating_point() or x.dtype == torch.bool) else x.dtype)
    y = y.to(device=device, dtype=dtype if y.is_floating_point() else y.dtype)
    return x, y


def chunks_of(X: torch.Tensor, y: torch.Tensor, size: int, *, dtype, device):
    """Yield ``(x, y)`` chunks of at most ``size`` rows of in-memory ``X``, ``y``, in order, prepared."""
    for start in range(0, X.shape[0], size):
        yield prepare_chunk(X[start:start + size], y[start:start + size], dtype=dtype, device=device)


def _add(total, part):
    """``total + part`` for tensors, arrays and numbers, elementwise over lists, tuples and dicts of them."""
    if total is None:
        return part
    if isinstance(part, (list, tuple)):
        return type(part)(_add(t, p) for t, p in zip(total, part, strict=True))
    if isinstance(part, dict):
        return {k: _add(total[k], v) for k, v in part.items()}
    return total + part


class InProcess:
    """The default backend: chunk functions run in this process, one chunk after the other, in record order."""

    in_process = True

    def map_chunks(self, func, records, *args, size: int, dtype, device):
        """``func(x, y, *args)`` for each chunk of ``size`` records of ``records``, yielded in record order."""
        for x, y in records.chunks(size, dtype=dtype, device=device):
            yield func(x, y, *args)

    def sum_chunks(self, func, records, *args, size: int, dtype, device):
        """``Σ_chunks func(x, y, *args)`` (tensors, arrays, or lists/tuples/dicts of them), summed in record
        order; None when there are no records."""
        total = None
        for part in self.map_chunks(func, records, *args, size=size, dtype=dtype, device=device):
            total = _add(total, part)
        return total

    def __repr__(self) -> str:
        return "InProcess()"


class RecordSource:
    """Records that live elsewhere and are read a range at a time (a subclass gives ``n``, ``name`` and
    ``read``). ``read(start, stop)`` returns the raw ``(X, y)`` tensors of records ``start..stop-1``; a
    distributed backend calls it on its workers, each for its own shard, so the records never pass through
    the client. Sources must be picklable (they are descriptions: file names, columns, row counts)."""

    name = "X"
    n = 0

    def read(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def chunks(self, size: int, *, dtype, device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)`` chunks of at most ``size`` records, in order (read here, one range at a time)."""
        for start in range(0, self.n, size):
            x, y = self.read(start, min(self.n, start + size))
            yield prepare_chunk(x, y, dtype=dtype, device=device)

    def subset(self, index: torch.Tensor, *, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
        """The records at positions ``index`` as one ``(x, y)`` batch (each read with its range)."""
        rows = [self.read(int(i), int(i) + 1) for i in index]
        return prepare_chunk(torch.cat([r[0] for r in rows]), torch.cat([r[1] for r in rows]),
                             dtype=dtype, device=device)

    def head(self, k: int, *, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``k`` records (or fewer), for checks of shape and labels."""
        return prepare_chunk(*self.read(0, min(k, self.n)), dtype=dtype, device=device)

    def targets(self) -> torch.Tensor:
        """The targets (for label checks); subclasses may return only the distinct ones."""
        return torch.cat([self.read(s, min(self.n, s + 65536))[1] for s in range(0, self.n, 65536)])


def as_records(X, y=None, *, name: str = "X"):
    """``X`` itself when it is a :class:`RecordSource` (``y`` must then be None), else ``Records(X, y)``."""
    if isinstance(X, RecordSource):
        if y is not None:
            raise InputError(f"{name} is a record source that reads its own targets: do not also pass y")
        if X.n == 0:
            raise InputError(f"{name} has no records: pass at least one")
        return X
    return Records(X, y, name=name)


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
        return prepare_chunk(x, y, dtype=dtype, device=device)

    def read(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The raw ``(X, y)`` of records ``start..stop-1`` (not converted to any dtype or device)."""
        if self.dataset is None:
            return self.X[start:stop], self.y[start:stop]
        items = [self.dataset[i] for i in range(start, stop)]
        x = torch.stack([torch.as_tensor(it[0]) for it in items])
        y = torch.stack([torch.as_tensor(it[1]) for it in items])
        _check_finite(x, self.name)
        _check_finite(y, f"y for {self.name}")
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
