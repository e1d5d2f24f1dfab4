"""The progress reporter: rate and time left from the engine's progress(done, total) calls, as log lines
(throttled) off a terminal and as a tqdm bar on one; silent when asked."""

from __future__ import annotations

import io
import logging
import re

import pytest
from conftest import L2_LR

import auditkit as ak
from auditkit.progress import ProgressReporter, duration, reporter_for


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self):
        return True


@pytest.fixture
def progress_log(caplog):
    caplog.set_level(logging.INFO, logger="auditkit.progress")
    return caplog


def test_rate_and_time_left_in_a_log(progress_log):
    out, clock = io.StringIO(), Clock()
    report = ProgressReporter("self-influence", stream=out, interval=10, clock=clock)
    for k in range(1, 11):
        clock.t = 3.0 * k                                    # 1,000 records every 3 s
        report(1000 * k, 10_000)
    assert progress_log.messages == [
        "self-influence: 1,000/10,000 records (10%), 333 records/s, about 27 s left",
        "self-influence: 5,000/10,000 records (50%), 333 records/s, about 15 s left",   # 10 s after the last print
        "self-influence: 9,000/10,000 records (90%), 333 records/s, about 3 s left",
        "self-influence: 10,000 records in 30 s (333 records/s)"]
    assert out.getvalue() == ""                              # not a terminal: log lines only, no bar, no '\r'
    assert {r.levelno for r in progress_log.records} == {logging.INFO}


def test_quiet_prints_nothing_and_durations_read_well(progress_log):
    out = Terminal()
    ProgressReporter(stream=out, quiet=True)(5, 10)
    ProgressReporter(stream=io.StringIO(), quiet=True)(5, 10)
    assert out.getvalue() == "" and progress_log.messages == []
    assert [duration(s) for s in (4.4, 185, 3720)] == ["4 s", "3 min 05 s", "1 h 02 min"]


def test_a_terminal_gets_a_tqdm_bar_timed_from_the_start_of_the_pass(monkeypatch, progress_log):
    """On a terminal: a bar (tqdm), whose rate counts the time before the first chunk was reported (3 s of the
    test's clock for 10,000 records: about 3,333 records/s), closed at the end of the pass; no log lines."""
    monkeypatch.setenv("NO_COLOR", "1")
    out, clock = Terminal(), Clock()
    report = ProgressReporter("self-influence", stream=out, interval=0, clock=clock)
    clock.t = 3.0
    for k in range(1, 11):
        report(1000 * k, 10_000)
    text = out.getvalue()
    final = text.split("\r")[-1]
    assert re.fullmatch(r"self-influence: 100%\|[█#]+\| 10000/10000 \[00:03<00:00, 33\d\d\.\d\d records/s\]\n", final)
    assert "\x1b[" not in text and progress_log.messages == []
    report(500, 1000)                                        # the next pass: a new bar
    assert out.getvalue().split("\r")[-1].startswith("self-influence:  50%|")


def test_the_engine_drives_it_once_per_chunk(heart, heart_lr, progress_log):
    engine = ak.InfluenceEngine(heart_lr, "cross_entropy", l2=L2_LR, chunk_size=100,
                                progress=ProgressReporter("self-influence", stream=io.StringIO(), interval=0))
    engine.fit(heart["X"], heart["y"]).self_influence()
    lines = progress_log.messages
    n = engine.n_train_
    assert len(lines) == -(-n // 100) and lines[-1].startswith(f"self-influence: {n:,} records in ")


def test_a_run_reports_progress_only_when_its_messages_are_shown():
    logger = logging.getLogger("auditkit")
    before = logger.level
    try:
        logger.setLevel(logging.WARNING)                     # a program that did not ask for auditkit's messages
        assert reporter_for("influence") is None
        logger.setLevel(logging.INFO)                        # the command line without --quiet
        assert isinstance(reporter_for("influence"), ProgressReporter)
    finally:
        logger.setLevel(before)
