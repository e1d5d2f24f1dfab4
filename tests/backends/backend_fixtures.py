"""Fixtures of the backend tests (imported by each test module; not a conftest.py, whose module name would
shadow the root one): one local Dask cluster of 2 worker processes (1 thread each) for the whole session, and
the heart-disease training records written to Parquet."""

from __future__ import annotations

import pytest
import torch

from auditkit.backends import DaskBackend, write_parquet

_SHARED: list[DaskBackend] = []


@pytest.fixture(scope="session")
def cluster():
    """A ``DaskBackend`` on a local cluster of 2 worker processes with one thread each (one per session, however
    many modules import this fixture)."""
    if not _SHARED or _SHARED[0]._client is None:
        _SHARED[:] = [DaskBackend(workers=2)]
    backend = _SHARED[0]
    backend.client.wait_for_workers(2, timeout=60)
    assert backend.n_workers == 2
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def heart_parquet(heart, tmp_path_factory):
    """The heart-disease training records in a Parquet file (row groups of 100 records)."""
    path = tmp_path_factory.mktemp("parquet") / "train.parquet"
    return write_parquet(heart["X"], heart["y"], path, row_group_size=100)


def group_gap(groups: torch.Tensor):
    """A differentiable measurement: mean loss of group 1 minus mean loss of group 0 (cross-entropy)."""
    def measure(outputs, y):
        losses = torch.nn.functional.cross_entropy(outputs, y, reduction="none")
        return losses[groups == 1].mean() - losses[groups == 0].mean()
    return measure
