"""A worker keeps the shards it read for the next pass, and a rewritten file is read again."""

from __future__ import annotations

import os

import torch

from auditkit.backends import write_parquet
from auditkit.backends.dask_backend import read_shard


def test_a_shard_is_read_once_per_file_version(tmp_path):
    X, y = torch.arange(40, dtype=torch.float64).reshape(20, 2), torch.arange(20) % 2
    source = write_parquet(X, y, tmp_path / "t.parquet", row_group_size=8)
    first = read_shard(source, 8, 16)
    assert torch.equal(first[0], X[8:16]) and torch.equal(first[1], y[8:16])
    assert read_shard(source, 8, 16)[0] is first[0]                         # kept: not read again
    assert torch.equal(read_shard(source, 0, 8)[0], X[:8])                  # another shard: its own entry
    write_parquet(X + 100, y, tmp_path / "t.parquet", row_group_size=8)     # the file rewritten
    stat = os.stat(tmp_path / "t.parquet")
    os.utime(tmp_path / "t.parquet", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    again = read_shard(source, 8, 16)
    assert again[0] is not first[0] and torch.equal(again[0], X[8:16] + 100)
