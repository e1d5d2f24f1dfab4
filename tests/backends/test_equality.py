"""The Dask backend computes what the in-process backend computes: float64, max abs difference ≤ 1e-10.

Self-influence, test × train influence and a measurement's influence, for the exact solver (dense Hessian
summed on the workers) and EK-FAC (covariances and eigenvalue corrections summed on the workers), with the
training records read by the workers from Parquet; the chunk tasks must really run on both workers. The
cluster: a ``dask scheduler`` and 2 worker processes (1 thread each) on localhost (``backend_fixtures``).
"""

from __future__ import annotations

import os
import pickle

import backend_fixtures
import numpy as np
import pytest
import torch
from backend_fixtures import group_gap
from conftest import L2_MLP
from distributed import get_task_stream

import auditkit as ak
from auditkit.backends import DaskBackend, LocalBackend, ParquetRecords
from auditkit.influence.records import Records

TOL = 1e-10
scheduler, cluster, heart_parquet = (backend_fixtures.scheduler, backend_fixtures.cluster,   # fixtures
                                      backend_fixtures.heart_parquet)


def answers(engine, heart):
    Xt, yt = heart["Xt"], heart["yt"]
    gap = group_gap(Xt[:, 1] > 0)
    batch = engine.batch(measures={"gap": (gap, Xt, yt)}, test=(Xt[:40], yt[:40]), self_influence=True)
    return {"self": batch.self_influence, "test": batch.test, "gap": batch.measures["gap"],
            "holdout": engine.self_influence_of(Xt, yt, leverage=True)}


@pytest.mark.parametrize("method", ["exact", "ekfac", "pcg"])
def test_dask_equals_in_process(method, heart, heart_mlp, heart_parquet, cluster, monkeypatch):
    options = dict(l2=L2_MLP, method=method, chunk_size=32)
    local = answers(ak.InfluenceEngine(heart_mlp, "cross_entropy", **options).fit(heart["X"], heart["y"]), heart)
    client_reads = []                      # training records read in this process (the workers' reads are theirs)
    read = ParquetRecords.read
    monkeypatch.setattr(ParquetRecords, "read", lambda self, a, b: client_reads.append((a, b)) or read(self, a, b))
    with get_task_stream(cluster.client) as stream:
        engine = ak.InfluenceEngine(heart_mlp, "cross_entropy", backend=cluster, **options).fit(heart_parquet)
        remote = answers(engine, heart)
    for key in local:
        assert remote[key].shape == local[key].shape, key
        assert np.abs(remote[key] - local[key]).max() <= TOL, (key, np.abs(remote[key] - local[key]).max())
    assert np.abs(local["self"]).max() > 1e-4                  # not trivially equal
    tasks = [t for t in stream.data if str(t["key"]).startswith("('auditkit-") or "auditkit-" in str(t["key"])]
    names = {str(t["key"]).split("auditkit-")[1].rsplit("-", 2)[0] for t in tasks}
    assert {"pass_chunk", "quad_forms_chunk"} <= names, names
    # the dense Hessian (exact: Kronecker blocks of the MLP) or the block CG steps (pcg: Hessian-vector products),
    # summed on the workers
    assert ("kron_chunk" in names) == (method == "exact"), names
    assert ("_hvp_chunk" in names) == (method == "pcg"), names
    assert len({t["worker"] for t in tasks}) == 2                  # both workers computed chunks
    assert client_reads == []                                      # no training record was read here


def test_in_memory_records_are_sent_in_shards_and_give_the_same_results(heart, heart_lr, cluster):
    records = Records(heart["X"], heart["y"])
    shard = DaskBackend._shard(records, 64, 128)                  # a shard travels alone, not with all of X
    assert torch.equal(shard[0], heart["X"][64:128]) and len(pickle.dumps(shard[0])) < 64 * 39 * 8 + 1000
    options = dict(l2=0.01, method="exact", chunk_size=64)
    local = ak.InfluenceEngine(heart_lr, "cross_entropy", **options).fit(heart["X"], heart["y"])
    remote = ak.InfluenceEngine(heart_lr, "cross_entropy", backend=cluster, **options).fit(heart["X"], heart["y"])
    assert np.abs(remote.self_influence() - local.self_influence()).max() <= TOL
    assert np.abs(remote.influence(heart["Xt"][:10], heart["yt"][:10])
                  - local.influence(heart["Xt"][:10], heart["yt"][:10])).max() <= TOL


def test_map_chunks_keeps_record_order_and_sum_chunks_adds_every_chunk(heart, heart_parquet, cluster):
    """Chunks come back in record order whichever worker computed them; sums cover every record once."""
    args = dict(size=25, dtype=torch.float64, device=torch.device("cpu"))
    y = torch.cat(list(cluster.map_chunks(lambda x, t: t, heart_parquet, **args)))
    assert torch.equal(y, heart["y"])
    total = cluster.sum_chunks(lambda x, t, w: [x.sum(0) * w, torch.tensor(float(x.shape[0]))], heart_parquet, 2.0,
                               **args)
    assert torch.allclose(total[0], 2 * heart["X"].sum(0), rtol=1e-12, atol=1e-12)
    assert float(total[1]) == heart["X"].shape[0]
    local = LocalBackend().sum_chunks(lambda x, t, w: [x.sum(0) * w], heart_parquet, 2.0, **args)
    assert torch.allclose(total[0], local[0], rtol=1e-12, atol=1e-12)


def test_the_fitted_solver_is_sent_once_per_engine(heart, heart_lr, heart_parquet, cluster):
    """Two passes of one engine reuse the scattered kernel (model function + solver): one scatter, not two."""
    engine = ak.InfluenceEngine(heart_lr, "cross_entropy", l2=0.01, method="exact", backend=cluster).fit(heart_parquet)
    engine.self_influence()
    shipped = cluster._put(engine.kernel_)
    engine.self_influence()
    assert cluster._put(engine.kernel_) is shipped


def test_a_local_cluster_of_n_workers_keeps_glibc_malloc_defaults(heart, heart_parquet):
    """``DaskBackend(workers=N)`` (``backend: {kind: dask, workers: N}``) starts N worker processes of one thread;
    their environment lacks Dask's MALLOC_TRIM_THRESHOLD_ (which made torch's chunk work up to 2x slower)."""
    with DaskBackend(workers=1) as backend:
        assert backend.n_workers == 1
        assert list(backend.client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_").values()) == [None]
        args = dict(size=100, dtype=torch.float64, device=torch.device("cpu"))
        assert torch.equal(torch.cat(list(backend.map_chunks(lambda x, t: t, heart_parquet, **args))), heart["y"])
    assert backend._client is None                                # closed: the local cluster is gone


def test_held_objects_travel_as_bytes_pickled_on_the_client_and_each_thread_computes_with_its_own_copy(heart,
                                                                                                       heart_lr):
    """A worker that fetches the fitted kernel from a peer must not pickle the peer's live object: during
    ``per_record_grads`` (``torch.func``) its model's parameters are transform wrappers, which do not pickle
    (control below); the held object is bytes pickled once on the client, and every thread unpickles its own."""
    import pickle
    import threading

    from auditkit.backends.dask_backend import Held
    engine = ak.InfluenceEngine(heart_lr, "cross_entropy", l2=0.01, method="exact").fit(heart["X"], heart["y"])
    kernel = engine.kernel_
    seen = []

    def pickle_the_model(module, inputs, output):             # runs inside functional_call, under vmap(grad)
        try:
            pickle.dumps(module)
            seen.append("pickled")
        except Exception as exc:                               # noqa: BLE001 - what a peer's transfer met
            seen.append(type(exc).__name__)

    handle = kernel.fn.model.register_forward_hook(pickle_the_model)
    try:
        kernel.fn.per_record_grads(heart["X"][:4], heart["y"][:4])
    finally:
        handle.remove()
    assert seen and seen[0] != "pickled", seen                 # control: the live object is not transferable

    held = Held(kernel)
    assert isinstance(held.blob, bytes) and pickle.loads(pickle.dumps(held)).blob == held.blob
    copies, both = [], threading.Barrier(2)         # both threads alive at once (a finished thread's id is reused)

    def use():
        mine = [held.live(), held.live()]
        both.wait()
        copies.extend(mine)

    threads = [threading.Thread(target=use) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert copies[0] is copies[1] and copies[2] is copies[3] and copies[0] is not copies[2]
    assert copies[0] is not kernel
    x, y = heart["X"][:50], heart["y"][:50]
    np.testing.assert_allclose(copies[0].quad_forms(x, y, 0), kernel.quad_forms(x, y, 0), rtol=0, atol=0)
