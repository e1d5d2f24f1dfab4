"""A worker killed in the middle of a run does not change the result.

The worker that starts reading the shard at record 288 dies (SIGKILL) on its first attempt: during the pass
over the training gradients for the exact solver, during the curvature fitting (covariance sums) for EK-FAC.
Dask reruns the lost task on the other worker (its nanny restarts the dead one). The answers still equal the
in-process ones (float64, max abs difference ≤ 1e-10).
"""

from __future__ import annotations

import os

import backend_fixtures
import numpy as np
import pytest
from conftest import L2_MLP
from killing import KillingRecords

import auditkit as ak

scheduler, cluster, heart_parquet = (backend_fixtures.scheduler, backend_fixtures.cluster,   # fixtures
                                      backend_fixtures.heart_parquet)


@pytest.mark.parametrize("method", ["exact", "ekfac"])
def test_a_worker_killed_mid_run_does_not_change_the_result(method, heart, heart_mlp, heart_parquet, cluster,
                                                            tmp_path):
    options = dict(l2=L2_MLP, method=method, chunk_size=32)
    Xt, yt = heart["Xt"][:20], heart["yt"][:20]
    local = ak.InfluenceEngine(heart_mlp, "cross_entropy", **options).fit(heart["X"], heart["y"])
    expected = local.batch(test=(Xt, yt), self_influence=True)
    client = cluster.client
    client.wait_for_workers(2, timeout=60)
    pids_before = set(client.run(os.getpid).values())
    marker = tmp_path / "killed"
    records = KillingRecords(heart_parquet, at=288, marker=marker)
    engine = ak.InfluenceEngine(heart_mlp, "cross_entropy", backend=cluster, **options).fit(records)
    got = engine.batch(test=(Xt, yt), self_influence=True)
    assert marker.exists(), "no worker was killed: the shard at record 288 was never read on a worker"
    killed = int(marker.read_text())
    assert killed in pids_before
    assert killed not in set(client.run(os.getpid).values())   # it is gone (its nanny starts a new one)
    assert np.abs(got.self_influence - expected.self_influence).max() <= 1e-10
    assert np.abs(got.test - expected.test).max() <= 1e-10
