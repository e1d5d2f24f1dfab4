"""The command line's console: logging configured once, and whether colour may be used.

auditkit's modules log through ``logging.getLogger(__name__)`` and never configure logging; a program that
imports auditkit decides what it sees. The ``auditkit`` command configures it here, for the duration of one
command:

========================  ==========================  =======================================
option                    auditkit's own loggers       other libraries (WeasyPrint, fontTools, ...)
========================  ==========================  =======================================
``--quiet``               errors only                  errors only
(none)                    INFO: steps and progress     WARNING
``-v``                    DEBUG                        WARNING
``-vv``                   DEBUG                        DEBUG
========================  ==========================  =======================================

Other libraries' messages are shown once each per command. Everything goes to stderr, through
``tqdm.write`` (``tqdm.contrib.logging``) so that a line logged while a progress bar is drawn does not break the
bar. Colour (https://no-color.org): none when ``NO_COLOR`` is set to a non-empty value, when ``TERM`` is
``dumb``, or when the stream is not a terminal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

#: verbosity → (level of the ``auditkit`` loggers, level of the root logger, i.e. of every other library)
LEVELS = {-1: (logging.ERROR, logging.ERROR), 0: (logging.INFO, logging.WARNING),
          1: (logging.DEBUG, logging.WARNING), 2: (logging.DEBUG, logging.DEBUG)}

#: ANSI colours of the summary's banner, by run status (only on a terminal that may show colour)
BANNER_COLOURS = {"pass": "32", "pass_with_warnings": "33", "fail": "31", "incomplete": "31"}


class ConsoleFormatter(logging.Formatter):
    """One line per record: INFO as the message itself; ``warning: ``, ``error: `` and ``debug: `` prefixes
    otherwise, with the logger's name for other libraries' records and for debug lines. auditkit's own error
    records are printed as they are (the command's one-line ``auditkit: error: ...`` message)."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        ours = record.name == "auditkit" or record.name.startswith("auditkit.")
        if ours and (record.levelno == logging.INFO or record.levelno >= logging.ERROR):
            return message
        if ours and record.levelno == logging.WARNING:
            return f"warning: {message}"
        return f"{record.levelname.lower()}: {record.name}: {message}"


class OncePerMessage(logging.Filter):
    """Lets each distinct message of other libraries through once (WeasyPrint repeats the same font warning for
    every PDF and font); auditkit's own records all pass."""

    def __init__(self):
        super().__init__()
        self.seen: set[tuple[str, int, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "auditkit" or record.name.startswith("auditkit."):
            return True
        key = (record.name, record.levelno, record.getMessage())
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def verbosity(verbose: int, quiet: bool) -> int:
    """-1 for ``--quiet``, else the number of ``-v`` (at most 2)."""
    return -1 if quiet else min(int(verbose or 0), 2)


@contextmanager
def console_logging(level: int, stream: TextIO | None = None) -> Iterator[None]:
    """Log to ``stream`` (default: ``sys.stderr`` as it is now) at ``level`` (see :func:`verbosity`) while the
    block runs; the logging configuration found on entry is restored on exit."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    ours, others = LEVELS[level]
    root, package = logging.getLogger(), logging.getLogger("auditkit")
    saved = (root.level, package.level, package.propagate, list(root.handlers))
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(ConsoleFormatter())
    handler.addFilter(OncePerMessage())
    root.handlers = [h for h in root.handlers if not _console(h)] + [handler]
    root.setLevel(others)
    package.setLevel(ours)
    package.propagate = True
    # tqdm's redirection swaps the console handler for one writing through tqdm.write (and adds one to stderr
    # when it finds none): only for a console stream
    redirect = logging_redirect_tqdm(loggers=[root]) if _console(handler) else contextlib.nullcontext()
    try:
        with redirect:
            yield
    finally:
        root.setLevel(saved[0])
        package.setLevel(saved[1])
        package.propagate = saved[2]
        root.handlers = saved[3]


def _console(handler: logging.Handler) -> bool:
    """A handler writing to the terminal's stdout or stderr (replaced while the command runs)."""
    return type(handler) is logging.StreamHandler and getattr(handler, "stream", None) in (sys.stdout, sys.stderr)


def colour_allowed(stream: TextIO) -> bool:
    """Whether ANSI colours may be written to ``stream``: a terminal, ``NO_COLOR`` unset or empty, ``TERM`` not
    ``dumb``."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def coloured(text: str, status: str, *, colour: bool) -> str:
    """``text`` in the colour of the run ``status`` when ``colour`` is true, else unchanged."""
    code = BANNER_COLOURS.get(status)
    return f"\x1b[1;{code}m{text}\x1b[0m" if colour and code else text
