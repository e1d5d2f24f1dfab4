"""SIGINT and SIGTERM as one clean interruption, and a section of work that a signal must not cut in two.

The command line calls :func:`install`: either signal then raises :class:`Interrupted` (a ``KeyboardInterrupt``)
in the main thread, so every ``finally`` and staging clean-up runs as for Ctrl-C, and the command exits with
``128 + signal number`` after one line. Inside :func:`deferred` (putting the report in place and committing its
history row) a signal is only noted; :func:`pending` tells the command line afterwards that it arrived, once the
outputs are whole. :func:`written` tells it whether a report was put in place, so that no message says
otherwise.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_state = {"depth": 0, "pending": None, "written": None}


class Interrupted(KeyboardInterrupt):
    """The run was stopped by ``signum`` (SIGINT or SIGTERM)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _handler(signum, _frame) -> None:
    if _state["depth"]:
        _state["pending"] = signum
        return
    raise Interrupted(signum)


def install() -> None:
    """Route SIGINT and SIGTERM to :class:`Interrupted` (main thread only; elsewhere nothing changes)."""
    _state["pending"] = _state["written"] = None
    if threading.current_thread() is threading.main_thread():
        for signum in SIGNALS:
            signal.signal(signum, _handler)


@contextmanager
def deferred():
    """A block that a signal routed by :func:`install` does not interrupt: the signal is noted for later."""
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1


def pending() -> int | None:
    """The signal that arrived during a :func:`deferred` block, if any."""
    return _state["pending"]


def note_written(where) -> None:
    """Record that a report (and its history row) was put in place at ``where``: a later failure or signal must
    not say that nothing was written."""
    _state["written"] = where


def written():
    """Where a report was put in place during this command, if anywhere (see :func:`note_written`)."""
    return _state["written"]
