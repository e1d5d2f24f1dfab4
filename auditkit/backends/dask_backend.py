"""The Dask backend: chunk-level influence work on the workers of a Dask cluster.

A pass over n records with chunks of ``size`` records is cut into shards, each a whole number of chunks
(about ``tasks_per_worker`` per worker), and each shard is one task: the worker reads its own records
(``records.read(start, stop)``: a :class:`~auditkit.backends.ParquetRecords` reads its row groups from the
files; in-memory records travel inside their shard's task), runs ``func(x, y, *args)`` on each chunk in
order, and returns the list of results (``map_chunks``) or their sum (``sum_chunks``: additive statistics
such as EK-FAC's covariances and the Hessian's products are summed on the worker). The client collects the
shards in record order and yields or sums them in that order, so results do not depend on which worker ran
what, nor on a worker lost mid-run: Dask reruns a lost worker's tasks elsewhere, and every task computes
the same numbers wherever it runs.

``func`` and every non-scalar argument (the engine's fitted model function and solver, the right-hand sides
of a pass) are sent to the cluster once, as a task that holds the object (``hold``), and remembered while the
object lives: the fitted solver is sent once per engine, not once per task or per pass; workers that need it
fetch it from a peer. (Not ``Client.scatter``: scattered data has no lineage, and Dask's active memory manager
drops broadcast replicas, so losing the one worker that holds it would fail the run. A held object's task
stays on the scheduler and is rerun if its worker is lost.)

What is held is the object **pickled once on the client** (:class:`Held`: a token and bytes), and each
worker thread unpickles its own copy (``Held.live``, kept for later tasks). Holding the live object instead
let a worker pickle it for a peer while a task was computing with it: ``torch.func.functional_call`` swaps
a module's parameters for transform wrappers during a call (and EK-FAC registers hooks), so the transfer
failed ("Cannot access storage of TensorWrapper") and the run waited for ever; threads sharing one live
object would also see each other's swapped parameters.

Failures are named in plain words (:class:`~auditkit.errors.BackendError`, or ``InputError`` for a setup
problem found on connecting): every worker lost (none rejoined within the connection timeout), a task whose
workers all died (Dask's ``KilledWorker``: out of memory, or killed), the scheduler gone (connection closed),
and, on connecting, packages whose versions differ between this machine, the scheduler and the workers. An error
raised by the computation itself passes through unchanged.

Import cost: this module imports ``distributed`` only when a backend connects.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import re
import threading
import uuid
import warnings
import weakref
from collections import OrderedDict
from concurrent.futures import CancelledError
from contextlib import contextmanager

import torch

from ..errors import BackendError, InputError
from ..influence.records import Records, _add, prepare_chunk

SCHEDULER = re.compile(r"^[a-z][a-z0-9+]*://\S+$")


def shard_bounds(n: int, *, chunk: int, shards: int) -> list[tuple[int, int]]:
    """About ``shards`` ranges ``[start, stop)`` covering records ``0..n-1``, each a whole number of chunks (so
    every record is computed in the same chunk as in process); the last one may be shorter."""
    if n <= 0:
        return []
    per = max(1, math.ceil(math.ceil(n / chunk) / max(1, shards))) * chunk
    return [(s, min(n, s + per)) for s in range(0, n, per)]


def hold(obj):
    """The object itself: a task whose result is ``obj``, so the scheduler can recompute it if it is lost."""
    return obj


#: per worker process: the live copies of held objects, one per (token, thread), most recently used last
LIVE_COPIES = 16
_live: OrderedDict = OrderedDict()
_live_lock = threading.Lock()


class Held:
    """An object pickled once (on the client): immutable bytes travel between workers, never a live object
    that a task may be using. ``live()`` is this thread's own unpickled copy, kept for the next tasks."""

    def __init__(self, obj):
        import cloudpickle  # a dependency of distributed: pickles the engine's lambdas
        self.token, self.blob = uuid.uuid4().hex, cloudpickle.dumps(obj)

    def live(self):
        key = (self.token, threading.get_ident())
        with _live_lock:
            obj = _live.get(key)
            if obj is not None:
                _live.move_to_end(key)
                return obj
        obj = pickle.loads(self.blob)
        with _live_lock:
            _live[key] = obj
            while len(_live) > LIVE_COPIES:
                _live.popitem(last=False)
        return obj


def _resolve(value):
    return value.live() if isinstance(value, Held) else value


#: bytes of shards a worker process keeps between passes (records do not change during an audit)
SHARD_CACHE_BYTES = 1 << 30
_shards: OrderedDict = OrderedDict()


def read_shard(source, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``source.read(start, stop)``, kept in this worker process (least recently used first out, at most
    ``SHARD_CACHE_BYTES``) for the next pass over the same records: an iterative solver or several questions
    make many passes, and re-reading and decoding the Parquet row groups each time costs a tenth of a pass."""
    paths = getattr(source, "paths", None)
    if paths is None:                                   # only file-backed sources are kept: files have a key
        return source.read(start, stop)
    stamps = tuple((p, os.stat(p).st_mtime_ns, os.stat(p).st_size) for p in paths)   # a rewritten file: a miss
    key = (type(source).__name__, stamps, getattr(source, "target", None),
           tuple(getattr(source, "features", None) or ()), start, stop)
    hit = _shards.get(key)
    if hit is not None:
        _shards.move_to_end(key)
        return hit
    X, y = source.read(start, stop)
    _shards[key] = (X, y)
    while sum(a.nbytes + b.nbytes for a, b in _shards.values()) > SHARD_CACHE_BYTES and len(_shards) > 1:
        _shards.popitem(last=False)
    return X, y


def run_shard(func, source, start: int, stop: int, size: int, dtype, device, args: tuple, reduce: bool):
    """On a worker: ``func(x, y, *args)`` for each chunk of ``size`` records of ``start..stop-1``; the list of
    results, or their sum when ``reduce``. ``source`` is a record source (read here, kept for later passes) or
    the shard's own ``(X, y)`` tensors. ``func``, ``source`` and ``args`` may be :class:`Held` (this thread's
    live copy is used)."""
    func, source, args = _resolve(func), _resolve(source), tuple(_resolve(a) for a in args)
    X, y = source if isinstance(source, tuple) else read_shard(source, start, stop)
    out = None if reduce else []
    for s in range(0, X.shape[0], size):
        x, t = prepare_chunk(X[s:s + size], y[s:s + size], dtype=dtype, device=device)
        result = func(x, t, *args)
        if reduce:
            out = _add(out, result)
        else:
            out.append(result)
    return out


class DaskBackend:
    """Runs the engine's chunk functions on a Dask cluster (see the module docstring).

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler, e.g. ``"tcp://10.0.0.5:8786"`` (started with ``dask scheduler``, by
        dask-kubernetes, dask-jobqueue, ...). Without it, a local cluster is started.
    workers : int, optional
        Worker processes of the local cluster (one thread each; default: the number of CPU cores).
    client : distributed.Client, optional
        An existing client to use instead (neither ``scheduler`` nor ``workers`` then).
    tasks_per_worker : int
        Shards per worker thread in a pass (default 2: measured on Adult, 2 workers, 0.60 s per pass with 2 against
        0.76 s with 4, each shard paying its own Parquet read and task round trip; a lost worker costs its shard).
    connect_timeout : float, optional
        Seconds to wait for the scheduler, and for at least one worker to join it (default: Dask's
        ``distributed.comm.timeouts.connect``, 30 s unless configured, e.g. by
        ``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=5s``).
    """

    in_process = False

    def __init__(self, scheduler: str | None = None, *, workers: int | None = None, client=None,
                 tasks_per_worker: int = 2, connect_timeout: float | None = None):
        if scheduler is not None and (not isinstance(scheduler, str) or not SCHEDULER.match(scheduler)):
            raise InputError(f"scheduler={scheduler!r} is not a scheduler address: give one like "
                             "'tcp://host:8786'")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise InputError(f"workers={workers!r} is not allowed: give a positive number of worker processes")
        if sum(v is not None for v in (scheduler, workers, client)) > 1:
            raise InputError("give one of scheduler (an existing cluster), workers (a local cluster) or client, "
                             f"not several (got scheduler={scheduler!r}, workers={workers!r})")
        if isinstance(tasks_per_worker, bool) or not isinstance(tasks_per_worker, int) or tasks_per_worker < 1:
            raise InputError(f"tasks_per_worker={tasks_per_worker!r} is not allowed: give a positive integer")
        self.scheduler, self.workers, self.tasks_per_worker = scheduler, workers, tasks_per_worker
        self.connect_timeout = connect_timeout
        self._client, self._cluster, self._own_client = client, None, client is None
        self._cache: dict[int, tuple[weakref.ref, object]] = {}

    # ------------------------------------------------------------------------------------ connection
    @property
    def client(self):
        """The ``distributed.Client`` (connected, or the local cluster started, on first use)."""
        if self._client is None:
            self._connect()
        return self._client

    def _connect(self) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise InputError("the Dask backend needs dask.distributed: pip install 'auditkit[dask]'") from None
        if self.scheduler is None:
            import dask
            n = self.workers or os.cpu_count() or 1
            # Dask's nannies set MALLOC_TRIM_THRESHOLD_=65536 in their workers, which also switches off glibc's
            # dynamic mmap threshold: every large temporary of torch is then a fresh mmap (page faults, system
            # time), which slows the chunk functions 1.5-2x. The local cluster's workers keep glibc's defaults.
            with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}), \
                    warnings.catch_warnings():      # a second local cluster's health server takes another port
                warnings.filterwarnings("ignore", message="Port .* is already in use")
                self._cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                             dashboard_address=None, silence_logs=logging.ERROR)
            self._client = Client(self._cluster)
            return
        import dask
        from dask.utils import parse_timedelta
        timeout = self.connect_timeout
        if timeout is None:
            timeout = parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), default="s")
        try:
            self._client = Client(self.scheduler, timeout=timeout)
        except (OSError, TimeoutError) as exc:
            why = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise InputError(f"cannot reach the Dask scheduler at {self.scheduler} ({why}): start it with "
                             f"`dask scheduler` and workers with `dask worker {self.scheduler}`, or fix the address "
                             "(backend.scheduler or --scheduler)") from None
        try:
            self._client.wait_for_workers(1, timeout=timeout)
        except (OSError, TimeoutError):
            self.close()
            raise InputError(f"the Dask scheduler at {self.scheduler} has no workers (waited "
                             f"{timeout:g} s): start some with `dask worker {self.scheduler}`") from None
        self._check_versions()

    def _check_versions(self) -> None:
        """Refuse a cluster whose required packages differ in version from this machine's (Dask's own check)."""
        try:
            self._client.get_versions(check=True)
        except ValueError as exc:
            self.close()
            lines = [" ".join(line.split()) for line in str(exc).splitlines() if set(line.strip()) - set("+-| ")]
            detail = "; ".join(lines[1:4])[:200] or lines[0] if lines else "versions differ"
            raise InputError(f"the Dask cluster at {self.scheduler} runs other versions of its packages than this "
                             f"machine ({detail}): install the same versions of dask, distributed, Python, torch and "
                             "auditkit on this machine, the scheduler and the workers") from None

    def close(self) -> None:
        """Disconnect (and stop the local cluster, if this backend started one)."""
        self._cache.clear()
        if self._client is not None and self._own_client:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._client = self._cluster = None

    def __enter__(self) -> DaskBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.scheduler or (f"local cluster of {self.workers or os.cpu_count()} worker(s)")
        return f"DaskBackend({where})"

    @property
    def n_workers(self) -> int:
        """Worker threads of the cluster now."""
        with self._plain_failures():
            return sum(self.client.nthreads().values())

    def _where(self) -> str:
        if self.scheduler:
            return f"the Dask scheduler at {self.scheduler}"
        return "the local Dask cluster" if self._own_client else "the Dask cluster of the given client"

    def _workers(self) -> list[str]:
        """Addresses of the cluster's workers; when none is left, wait for one to join (a nanny restarts a lost
        local worker) up to the connection timeout, then fail in plain words."""
        workers = sorted(self.client.scheduler_info()["workers"])
        if workers:
            return workers
        import dask
        from dask.utils import parse_timedelta
        timeout = self.connect_timeout
        if timeout is None:
            timeout = parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), default="s")
        try:
            self.client.wait_for_workers(1, timeout=timeout)
        except (OSError, TimeoutError):
            raise BackendError(f"every Dask worker of {self._where()} was lost and none joined again within "
                               f"{timeout:g} s: the workers may have run out of memory or been stopped; restart them "
                               "(give them more memory, or a smaller influence.chunk_size) and rerun") from None
        return sorted(self.client.scheduler_info()["workers"])

    @contextmanager
    def _plain_failures(self):
        """Cluster failures met while computing, as a :class:`BackendError` in plain words."""
        try:
            yield
        except (BackendError, InputError):
            raise
        except Exception as exc:
            plain = self._explain(exc)
            if plain is None:
                raise
            raise plain from exc

    def _explain(self, exc: Exception) -> BackendError | None:
        """A plain-words error for a failure of the cluster (None: not one, e.g. an error of the computation)."""
        from distributed.comm.core import CommClosedError
        from distributed.scheduler import KilledWorker

        detail = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        if isinstance(exc, KilledWorker):
            return BackendError(f"Dask workers were lost: each worker that ran one task of the influence computation "
                                f"died ({detail}); they may have run out of memory or been killed: give the workers "
                                "more memory (or a smaller influence.chunk_size) and rerun")
        if isinstance(exc, (CommClosedError, CancelledError, OSError, TimeoutError)):
            return BackendError(f"the connection to {self._where()} was lost while computing ({type(exc).__name__}: "
                                f"{detail}): check that the scheduler is running and reachable, and rerun")
        return None

    # ------------------------------------------------------------------------------------ shipping
    def _put(self, obj):
        """``obj`` sent to the cluster once while it lives, as a held task (scalars and None go as they are)."""
        if obj is None or isinstance(obj, (bool, int, float, str, torch.dtype, torch.device)):
            return obj
        key = id(obj)
        hit = self._cache.get(key)
        if hit is not None and hit[0]() is obj:
            return hit[1]
        with warnings.catch_warnings():      # a large fitted solver is meant to travel once, inside its task
            warnings.filterwarnings("ignore", message=".*[Ll]arge graph.*")
            future = self.client.submit(hold, Held(obj), key=f"auditkit-{type(obj).__name__}-{uuid.uuid4().hex}",
                                        pure=False)
        try:
            ref = weakref.ref(obj, lambda _r, key=key, cache=self._cache: cache.pop(key, None))
        except TypeError:                       # not weak-referenceable: sent again next time
            return future
        self._cache[key] = (ref, future)
        return future

    def _submit(self, func, records, args: tuple, *, size: int, dtype, device, reduce: bool) -> list:
        """One task per shard of ``records``; the futures, in record order."""
        client = self.client
        bounds = shard_bounds(records.n, chunk=size, shards=self.tasks_per_worker * max(1, self.n_workers))
        in_memory = isinstance(records, Records) and records.X is not None
        source = None if in_memory else self._put(records)
        remote_func, remote_args = self._put(func), tuple(self._put(a) for a in args)
        tag = f"auditkit-{getattr(func, '__name__', 'chunks')}-{uuid.uuid4().hex[:8]}"
        # shards dealt round-robin to the workers: left to itself the scheduler runs them all where the held
        # solver lives (data locality), one after the other; allow_other_workers lets a lost worker's go elsewhere
        workers = self._workers()
        return [client.submit(run_shard, remote_func, self._shard(records, a, b) if in_memory else source, a, b,
                              size, dtype, device, remote_args, reduce, key=f"{tag}-{i}", pure=False,
                              workers=[workers[i % len(workers)]], allow_other_workers=True)
                for i, (a, b) in enumerate(bounds)]

    @staticmethod
    def _shard(records: Records, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """In-memory records ``start..stop-1`` as tensors of their own (a slice would pickle all of X's storage)."""
        return tuple(t.clone() for t in records.read(start, stop))

    # ------------------------------------------------------------------------------------ the API
    def map_chunks(self, func, records, *args, size: int, dtype, device):
        """``func(x, y, *args)`` for each chunk of ``size`` records, computed on the workers, yielded here in
        record order (a shard's results as soon as it and every shard before it are done)."""
        with self._plain_failures():
            futures = self._submit(func, records, args, size=size, dtype=dtype, device=device, reduce=False)
        try:
            for i in range(len(futures)):
                with self._plain_failures():
                    results = futures[i].result()
                futures[i] = None
                yield from results
        finally:
            pending = [f for f in futures if f is not None]
            if pending and self._client is not None and self._client.status == "running":
                self.client.cancel(pending)

    def sum_chunks(self, func, records, *args, size: int, dtype, device):
        """``Σ_chunks func(x, y, *args)``: each shard summed on its worker, the shards' sums here in record
        order; None when there are no records."""
        total = None
        with self._plain_failures():
            parts = self.client.gather(self._submit(func, records, args, size=size, dtype=dtype, device=device,
                                                    reduce=True))
        for part in parts:
            total = _add(total, part)
        return total
