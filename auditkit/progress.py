"""Progress of long passes over records: a tqdm bar on a terminal, a log line every few seconds elsewhere.

The influence engine calls ``progress(done, total)`` after each chunk of a streamed pass (the math core does
no I/O and imports neither tqdm nor logging configuration); :class:`ProgressReporter` is such a callable::

    eng = InfluenceEngine(model, "cross_entropy", l2=1e-3, progress=ProgressReporter("self-influence"))

When its stream (default: stderr) is a terminal it draws a tqdm bar (records done, records per second, time
left; no colour). Elsewhere (a CI log, cron mail) it logs a plain line, at most one every ``interval`` seconds
and always the pass's last one, at INFO on the logger ``auditkit.progress``, so that what is shown follows the
logging configuration (the ``auditkit`` command shows it unless ``--quiet``). A call with ``done`` smaller than
the previous one starts a new pass (its rate is measured afresh).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import TextIO

log = logging.getLogger(__name__)


def duration(seconds: float) -> str:
    """``"12 s"``, ``"3 min 05 s"``, ``"1 h 02 min"``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def reporter_for(label: str) -> ProgressReporter | None:
    """A :class:`ProgressReporter` for ``label`` when auditkit's INFO messages are shown (the command line without
    ``--quiet``, or a program that configured logging so), else None: nothing to report to."""
    return ProgressReporter(label) if log.isEnabledFor(logging.INFO) else None


class ProgressReporter:
    """``reporter(done, total)``: shows records done, records per second and time left.

    Parameters
    ----------
    label : str
        What the pass computes (``"influence"``, ``"self-influence"``, ...).
    stream : file, optional
        Where a terminal's bar is drawn (default: ``sys.stderr``); when it is not a terminal, lines are logged
        instead (logger ``auditkit.progress``, INFO).
    quiet : bool
        Show nothing.
    interval : float, optional
        Least seconds between two updates (default 0.5 on a terminal, 10 otherwise); the last line of a pass is
        always shown.
    clock : callable
        Seconds, monotonic (for tests).
    """

    def __init__(self, label: str = "influence", *, stream: TextIO | None = None, quiet: bool = False,
                 interval: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.label, self.quiet, self.clock = label, quiet, clock
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if interval is not None else (0.5 if self.tty else 10.0)
        self._start = self._printed = self._last_done = self._bar = None
        self._start_done = 0
        self._began = clock()

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        now = self.clock()
        if self._last_done is None:                   # a pass begins: timed from the end of the previous one
            self._start, self._start_done, self._printed = self._began, 0, None
        elif done < self._last_done:                  # a pass began without the last one finishing
            self.close()
            self._start, self._start_done, self._printed = now, done, None
        self._last_done = done
        if self.tty:
            self._draw(done, total, now)
        else:
            self._log(done, total, now)
        if done >= total:
            self.close()
            self._last_done = None
            self._began = now

    def close(self) -> None:
        """End the bar of an unfinished pass (the terminal's next line starts below it)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _draw(self, done: int, total: int, now: float) -> None:
        from tqdm import tqdm

        if self._bar is None:
            self._bar = tqdm(total=total, initial=self._start_done, desc=self.label, unit=" records", file=self.stream,
                             mininterval=self.interval, smoothing=0, colour=None, dynamic_ncols=True, leave=True)
            # the bar opens at the pass's first call, after its first chunk: count the time since the pass began
            self._bar.start_t -= now - self._start
        self._bar.update(done - self._bar.n)

    def _log(self, done: int, total: int, now: float) -> None:
        # Hand-written rather than tqdm: tqdm redraws one line with '\r' (one very long line in a log file) and
        # has no mode that emits a throttled, complete log line per update through `logging`.
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
        log.info(line)
