"""Progress of long passes over records: records per second and time left, printed to stderr.

The influence engine calls ``progress(done, total)`` after each chunk of a streamed pass (the math core
does no I/O); :class:`ProgressReporter` is such a callable::

    eng = InfluenceEngine(model, "cross_entropy", l2=1e-3, progress=ProgressReporter("self-influence"))

On a terminal it rewrites one line (``\\r``); elsewhere (a CI log, cron mail) it prints a line at most every
``interval`` seconds. ``quiet=True`` prints nothing. A call with ``done`` smaller than the previous one
starts a new pass (its rate is measured afresh).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


def duration(seconds: float) -> str:
    """``"12 s"``, ``"3 min 05 s"``, ``"1 h 02 min"``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class ProgressReporter:
    """``reporter(done, total)``: prints records done, records per second and time left.

    Parameters
    ----------
    label : str
        What the pass computes (``"influence"``, ``"self-influence"``, ...).
    stream : file, optional
        Where to print (default: ``sys.stderr``).
    quiet : bool
        Print nothing (``--quiet``).
    interval : float, optional
        Least seconds between two prints (default 0.5 on a terminal, 10 otherwise); the last line of a pass
        is always printed.
    clock : callable
        Seconds, monotonic (for tests).
    """

    def __init__(self, label: str = "influence", *, stream: TextIO | None = None, quiet: bool = False,
                 interval: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.label, self.quiet, self.clock = label, quiet, clock
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if interval is not None else (0.5 if self.tty else 10.0)
        self._start = self._printed = self._last_done = None
        self._start_done = 0
        self._began = clock()

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        now = self.clock()
        if self._last_done is None:                   # a pass begins: timed from the end of the previous one
            self._start, self._start_done, self._printed = self._began, 0, None
        elif done < self._last_done:                  # a pass began without the last one finishing
            self._start, self._start_done, self._printed = now, done, None
        self._last_done = done
        finished = done >= total
        if not finished and self._printed is not None and now - self._printed < self.interval:
            return
        self._printed = now
        elapsed = now - self._start
        rate = (done - self._start_done) / elapsed if elapsed > 0 else float("nan")
        if finished:
            line = f"{self.label}: {total:,} records in {duration(elapsed)}"
            if rate == rate:
                line += f" ({rate:,.0f} records/s)"
        else:
            left = duration((total - done) / rate) if rate > 0 else "?"
            line = (f"{self.label}: {done:,}/{total:,} records ({100 * done / total:.0f}%), "
                    f"{rate:,.0f} records/s, about {left} left")
        if self.tty:
            self.stream.write("\r\033[K" + line + ("\n" if finished else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        if finished:
            self._last_done = None
            self._began = now
