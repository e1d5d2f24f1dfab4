"""Retrainings in worker processes: the reference models and the privacy trust check's leave-one-out models.

A *job* is a dict: ``model`` (the audited model), ``train_fn``, ``X`` and ``y`` (numpy), ``members`` (K, n)
boolean masks of the rows each model is trained on, ``seed``, ``cold`` (start from a fresh initialisation,
:func:`cold_start`, or from a copy of the audited weights), ``build`` (the builder, or None). Model ``k`` is
``train_fn(start_k, X[members[k]], y[members[k]])`` with torch's generator seeded from
``SeedSequence([seed, k, 1])``; the same job gives the same models in this process and in workers.

Workers are new ("spawned") processes, each with one torch thread: a process forked after torch ran OpenMP
threads can hang. A job that cannot be pickled (e.g. a training function defined inside a function), or that a
worker cannot load, is trained in this process instead. The job reaches the workers through a temporary file,
not the pipe that starts them: a worker that dies while starting (e.g. a script without an
``if __name__ == "__main__":`` guard, which every spawned process runs again) then breaks the pool, and the
models are trained here with a warning, where a large job written into the pipe of a dead worker could block
for ever.
"""

from __future__ import annotations

import copy
import multiprocessing
import os
import pickle
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import torch
from torch import nn

from ...errors import AuditkitWarning, InputError


def cold_start(model: nn.Module, seed, build=None) -> nn.Module:
    """An untrained model shaped like ``model``, initialised under the torch seed ``SeedSequence(seed)``: ``build()``
    (the model's builder, e.g. ``BuiltTrainer.build``) when given, else a copy of ``model`` with every layer
    re-initialised by its ``reset_parameters()`` (what its layers do when built). None of the trained weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(np.random.SeedSequence(list(seed)).generate_state(1)[0]))
        if build is not None:
            net = build()
            shapes = {n: tuple(p.shape) for n, p in net.state_dict().items()}
            if shapes != {n: tuple(p.shape) for n, p in model.state_dict().items()}:
                raise InputError("the reference models cannot be cold-started: the builder makes a model whose "
                                 "parameters differ from the audited model's (names or shapes)")
            return net.to(next(model.parameters()).dtype)
        net = copy.deepcopy(model)
        bare = [name or type(m).__name__ for name, m in net.named_modules()
                if any(True for _ in m.parameters(recurse=False))
                and not callable(getattr(m, "reset_parameters", None))]
        if bare:
            raise InputError(f"the reference models cannot be cold-started: module(s) {bare[:3]} hold parameters "
                             "but have no reset_parameters(); give them one (re-initialise as the builder does), "
                             "or use initialisation='warm'")
        for m in net.modules():
            if any(True for _ in m.parameters(recurse=False)):
                m.reset_parameters()
    return net


#: What the reference-model workers train (set here, or in each worker process by ``_load_job``).
_JOB: dict = {}
#: Processes are started only when the models left would take longer than this one after the other (seconds):
#: a worker process needs a few seconds to start (it imports torch).
PARALLEL_MIN_S = 10.0


def _load_job(path: str) -> None:
    with open(path, "rb") as f:
        job = pickle.load(f)
    _JOB.clear()
    _JOB.update(job)
    torch.set_num_threads(1)


def _train_one(k: int) -> tuple[int, dict, float]:
    """Train reference model ``k`` of ``_JOB`` (one torch thread): its state dict and the seconds it took."""
    job = _JOB
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        started = time.perf_counter()
        seed = (job["seed"], k)
        net = cold_start(job["model"], seed, job["build"]) if job["cold"] else copy.deepcopy(job["model"])
        rows = job["members"][k]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(np.random.SeedSequence([*seed, 1]).generate_state(1)[0]))
            trained = job["train_fn"](net, job["X"][rows], job["y"][rows])
        net = trained if trained is not None else net
        if not isinstance(net, nn.Module):
            raise InputError(f"train_fn returned {type(net).__name__}: it must return the trained model "
                             "(a torch.nn.Module) or None after training the copy it receives in place")
        return k, {n: t.detach().clone() for n, t in net.state_dict().items()}, time.perf_counter() - started
    finally:
        torch.set_num_threads(threads)


def available_workers() -> int:
    """CPUs this process may run on (1 where that cannot be told)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _write_job(path: str) -> bool:
    """Pickle ``_JOB`` to ``path`` for the workers; False when it cannot be pickled (e.g. a training function
    defined inside a function)."""
    try:
        with open(path, "wb") as f:
            pickle.dump(dict(_JOB), f)
    except Exception:  # noqa: BLE001 - anything that cannot be pickled: train here instead
        return False
    return True


def _train_all(indices: list[int], workers: int) -> tuple[dict[int, tuple[dict, float]], int]:
    """Models ``indices`` of ``_JOB`` and the number of processes that trained them: ``workers`` new
    ("spawned") processes, each with one torch thread, or this process when ``workers`` is 1 or the job cannot
    be sent to another process (it cannot be pickled, e.g. a training function defined inside a function, or
    a worker cannot load it). Spawned, not forked: a process forked after torch ran OpenMP threads can hang."""
    if workers > 1 and len(indices) > 1:
        with tempfile.TemporaryDirectory(prefix="auditkit-job-") as folder:
            path = os.path.join(folder, "job.pickle")
            if _write_job(path):
                try:
                    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_load_job, initargs=(path,)) as pool:
                        return {k: (state, sec) for k, state, sec in pool.map(_train_one, indices)}, workers
                except BrokenProcessPool:                  # a worker died starting or loading the job: train here
                    warnings.warn("the worker processes that train the reference models could not start or load "
                                  "the job (a script run as the main program, for one, needs its audit under "
                                  "`if __name__ == \"__main__\":`, which spawned processes skip); training them "
                                  "in this process instead", AuditkitWarning, stacklevel=2)
    return {k: (state, sec) for k, state, sec in map(_train_one, indices)}, 1


def train_job(job: dict, indices, *, workers: int | None = None,
              min_parallel_s: float | None = None) -> tuple[dict[int, tuple[dict, float]], int]:
    """Models ``indices`` of ``job``: ``{k: (state_dict, seconds)}`` and the number of processes used.

    The first is trained here and timed; the others go to ``workers`` processes (None: the CPUs available)
    when they would take at least ``min_parallel_s`` seconds (None: ``PARALLEL_MIN_S``) one after the other (a
    worker needs a few seconds to start), else they are trained here too."""
    indices = [int(k) for k in indices]
    if not indices:
        return {}, 1
    workers = available_workers() if workers is None else max(1, int(workers))
    _JOB.clear()
    _JOB.update(job)
    try:
        first, _ = _train_all(indices[:1], 1)
        rest = indices[1:]
        if first[indices[0]][1] * len(rest) < (PARALLEL_MIN_S if min_parallel_s is None else min_parallel_s):
            workers = 1
        trained, used = _train_all(rest, min(workers, max(1, len(rest))))
    finally:
        _JOB.clear()
    return {**first, **trained}, used
