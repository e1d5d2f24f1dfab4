"""Failures of a Dask cluster reach the user in plain words: every worker lost, a task whose workers all died, the
scheduler gone, packages of other versions on the cluster. An error of the computation itself passes unchanged.

An in-process cluster (threads, no processes: it starts in a fraction of a second) stands in for a real one; the
failures Dask reports from processes that die (``KilledWorker``, a closed connection) are raised where Dask raises
them, on the client.
"""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import pytest
import torch
from reliability_support import make_case

from auditkit.backends import DaskBackend
from auditkit.cli import main
from auditkit.errors import BackendError, InputError
from auditkit.influence.records import Records

distributed = pytest.importorskip("distributed")

X = torch.arange(40, dtype=torch.float64).reshape(20, 2)
Y = torch.zeros(20, dtype=torch.long)


def total(x, y):
    return x.sum()


def broken(x, y):
    raise ValueError("a bug in the chunk function")


@pytest.fixture
def cluster():
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None,
                                       silence_logs=logging.ERROR)
    client = distributed.Client(cluster)
    yield cluster, client
    client.close()
    cluster.close()


def _sum(backend):
    return backend.sum_chunks(total, Records(X, Y), size=4, dtype=torch.float64, device="cpu")


def test_every_worker_lost_is_named(cluster):
    cluster, client = cluster
    backend = DaskBackend(client=client, connect_timeout=0.5)
    assert float(_sum(backend)) == float(X.sum())                  # the cluster works
    cluster.scale(0)
    while client.nthreads():
        time.sleep(0.05)
    with pytest.raises(BackendError) as caught:
        _sum(backend)
    assert str(caught.value) == ("every Dask worker of the Dask cluster of the given client was lost and none joined "
                                 "again within 0.5 s: the workers may have run out of memory or been stopped; restart "
                                 "them (give them more memory, or a smaller influence.chunk_size) and rerun")


def test_a_task_whose_workers_all_died_is_named(cluster, monkeypatch):
    from distributed.scheduler import KilledWorker

    _, client = cluster
    backend = DaskBackend(client=client)
    died = KilledWorker("auditkit-total-0", SimpleNamespace(address="tcp://10.0.0.7:40123"), 3)
    monkeypatch.setattr(client, "gather", lambda futures: (_ for _ in ()).throw(died))
    with pytest.raises(BackendError) as caught:
        _sum(backend)
    assert str(caught.value).startswith("Dask workers were lost: each worker that ran one task of the influence "
                                        "computation died (Attempted to run task 'auditkit-total-0' on 4 different "
                                        "workers, but all those workers died while running it.")
    assert str(caught.value).endswith("they may have run out of memory or been killed: give the workers more memory "
                                      "(or a smaller influence.chunk_size) and rerun")


def test_the_scheduler_gone_is_named(cluster, monkeypatch):
    from distributed.comm.core import CommClosedError

    _, client = cluster
    backend = DaskBackend(client=client)
    monkeypatch.setattr(distributed.Future, "result",
                        lambda self, timeout=None: (_ for _ in ()).throw(CommClosedError("in <TCP (closed)>: Stream is "
                                                                                         "closed")))
    with pytest.raises(BackendError) as caught:
        list(backend.map_chunks(total, Records(X, Y), size=4, dtype=torch.float64, device="cpu"))
    assert str(caught.value) == ("the connection to the Dask cluster of the given client was lost while computing "
                                 "(CommClosedError: in <TCP (closed)>: Stream is closed): check that the scheduler is "
                                 "running and reachable, and rerun")


def test_an_error_of_the_computation_itself_passes_unchanged(cluster):
    _, client = cluster
    with pytest.raises(ValueError, match="^a bug in the chunk function$"):
        DaskBackend(client=client).sum_chunks(broken, Records(X, Y), size=4, dtype=torch.float64, device="cpu")


def test_packages_of_other_versions_on_the_cluster_are_refused_on_connecting(cluster, monkeypatch):
    cluster, _ = cluster
    table = ("Mismatched versions found\n\n+---------+--------+-----------+---------+\n| Package | Client | "
             "Scheduler | Workers |\n+---------+--------+-----------+---------+\n| torch   | 2.13.0 | 2.4.0     "
             "| 2.4.0   |\n+---------+--------+-----------+---------+")

    def mismatch(self, check=False, packages=None):
        raise ValueError(table)

    monkeypatch.setattr(distributed.Client, "get_versions", mismatch)
    backend = DaskBackend(scheduler=cluster.scheduler_address, connect_timeout=5)
    with pytest.raises(InputError) as caught:
        backend._connect()
    assert str(caught.value) == (f"the Dask cluster at {cluster.scheduler_address} runs other versions of its packages "
                                 "than this machine (| Package | Client | Scheduler | Workers |; | torch | 2.13.0 | "
                                 "2.4.0 | 2.4.0 |): install the same versions of dask, distributed, Python, torch and "
                                 "auditkit on this machine, the scheduler and the workers")


def test_the_command_line_says_what_failed_and_claims_nothing_else(tmp_path, capsys, monkeypatch):
    config = make_case(tmp_path)

    def lost(*args, **kwargs):
        raise BackendError("every Dask worker of the Dask scheduler at tcp://10.0.0.5:8786 was lost and none joined "
                           "again within 30 s: restart them and rerun")

    monkeypatch.setattr("auditkit.runner.run_audit", lost)
    assert main(["run", str(config), "--out", str(tmp_path / "runs/report"), "--quiet"]) == 3
    assert capsys.readouterr().err == (
        "auditkit: runtime failure: every Dask worker of the Dask scheduler at tcp://10.0.0.5:8786 was lost and none "
        "joined again within 30 s: restart them and rerun (rerun with --debug for details)\n")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "history.sqlite").exists()
