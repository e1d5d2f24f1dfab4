"""Where chunks of influence work run: in this process (the default) or on a Dask cluster.

The influence engine maps picklable chunk functions over the training records through a backend
(``backend.map_chunks`` / ``backend.sum_chunks``, described in ``auditkit.influence.records``); the math never
knows which one runs them.

- :class:`LocalBackend`: this process, one chunk after the other (what the engine uses when given none).
- :class:`DaskBackend`: the workers of a Dask cluster, an existing one (``scheduler="tcp://host:8786"``) or a
  local one (``workers=N``); each worker reads its own shard of the records.
- :class:`ParquetRecords`, :func:`write_parquet`: training records in Parquet files, read shard by shard.

``make_backend(kind, scheduler=..., workers=...)`` builds one from the configuration's ``backend`` section.
Importing this package does not import Dask; a ``DaskBackend`` imports it when it connects.
"""

from __future__ import annotations

from ..errors import InputError
from .local import LocalBackend

__all__ = ["LocalBackend", "DaskBackend", "ParquetRecords", "write_parquet", "make_backend"]


def __getattr__(name: str):
    if name == "DaskBackend":
        from .dask_backend import DaskBackend
        return DaskBackend
    if name in ("ParquetRecords", "write_parquet"):
        from . import parquet
        return getattr(parquet, name)
    raise AttributeError(f"module 'auditkit.backends' has no attribute {name!r}")


def make_backend(kind: str = "local", *, scheduler: str | None = None, workers: int | None = None):
    """``LocalBackend()`` for ``kind="local"``; for ``"dask"``, a ``DaskBackend`` on the scheduler at
    ``scheduler`` or on a local cluster of ``workers`` processes (default: one per CPU core)."""
    if kind == "local":
        if scheduler is not None or workers is not None:
            raise InputError("backend: scheduler and workers need kind 'dask': set kind: dask, or remove them")
        return LocalBackend()
    if kind == "dask":
        from .dask_backend import DaskBackend
        return DaskBackend(scheduler, workers=workers)
    raise InputError(f"backend kind {kind!r} is not allowed: use 'local' or 'dask'")
