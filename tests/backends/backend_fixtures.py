"""Fixtures of the backend tests (imported by each test module; not a conftest.py, whose module name would
shadow the root one): one Dask cluster on localhost for the whole session (a ``dask scheduler`` process and a
``dask worker`` process with 2 worker processes of 1 thread each), and the heart-disease training records
written to Parquet."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from auditkit.backends import DaskBackend, write_parquet

ROOT = Path(__file__).resolve().parents[2]


def _wait_for(path: Path, process: subprocess.Popen, log: Path, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start (exit {process.poll()}): {log.read_text()[-2000:]}")
        time.sleep(0.1)


#: the one cluster of the session, whichever test modules import the fixtures (each import makes its own fixture
#: instance, so the processes are kept here and started once)
_SESSION: dict = {}


def _start_cluster(folder: Path) -> str:
    dask = str(Path(sys.executable).with_name("dask"))
    # the scheduler unpickles task graphs too: both need auditkit and this folder (killing.py) importable
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(Path(__file__).parent)]), "OMP_NUM_THREADS": "1"}
    logs = {name: folder / f"{name}.log" for name in ("scheduler", "worker")}
    processes = _SESSION.setdefault("processes", [])
    with open(logs["scheduler"], "w") as log:
        processes.append(subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file",
             str(folder / "scheduler.json")], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True))
    _wait_for(folder / "scheduler.json", processes[0], logs["scheduler"], "dask scheduler")
    address = json.loads((folder / "scheduler.json").read_text())["address"]
    with open(logs["worker"], "w") as log:
        processes.append(subprocess.Popen(
            [dask, "worker", address, "--nworkers", "2", "--nthreads", "1", "--no-dashboard", "--local-directory",
             str(folder), "--preload", "auditkit.influence"], cwd=ROOT, env=env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True))
    return address


def _stop_cluster() -> None:
    backend = _SESSION.pop("backend", None)
    if backend is not None:
        backend.close()
    processes = _SESSION.pop("processes", [])
    for sig in (signal.SIGTERM, signal.SIGKILL):    # each was started as its own process group (with its children)
        for p in reversed(processes):
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
        for p in processes:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
    _SESSION.clear()


@pytest.fixture(scope="session")
def scheduler(tmp_path_factory):
    """Address of a Dask cluster started as separate processes on localhost: ``dask scheduler`` and ``dask worker``
    with 2 worker processes of one thread each (nannies restart a worker that dies). Stopped at the end."""
    if "address" not in _SESSION:
        try:
            _SESSION["address"] = _start_cluster(tmp_path_factory.mktemp("dask"))
        except BaseException:
            _stop_cluster()
            raise
    yield _SESSION["address"]
    _stop_cluster()


@pytest.fixture(scope="session")
def cluster(scheduler):
    """A ``DaskBackend`` connected to that cluster, with both workers up."""
    if "backend" not in _SESSION:
        _SESSION["backend"] = DaskBackend(scheduler)
    backend = _SESSION["backend"]
    backend.client.wait_for_workers(2, timeout=120)
    assert backend.n_workers == 2
    return backend


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

