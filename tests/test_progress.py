"""The progress reporter: rate and time left from the engine's progress(done, total) calls; silent when asked."""

from __future__ import annotations

import io

from conftest import L2_LR

import auditkit as ak
from auditkit.progress import ProgressReporter, duration


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_rate_and_time_left_in_a_log():
    out, clock = io.StringIO(), Clock()
    report = ProgressReporter("self-influence", stream=out, interval=10, clock=clock)
    for k in range(1, 11):
        clock.t = 3.0 * k                                    # 1,000 records every 3 s
        report(1000 * k, 10_000)
    assert out.getvalue().splitlines() == [
        "self-influence: 1,000/10,000 records (10%), 333 records/s, about 27 s left",
        "self-influence: 5,000/10,000 records (50%), 333 records/s, about 15 s left",   # 10 s after the last print
        "self-influence: 9,000/10,000 records (90%), 333 records/s, about 3 s left",
        "self-influence: 10,000 records in 30 s (333 records/s)"]


def test_quiet_prints_nothing_and_durations_read_well():
    out = io.StringIO()
    ProgressReporter(stream=out, quiet=True)(5, 10)
    assert out.getvalue() == ""
    assert [duration(s) for s in (4.4, 185, 3720)] == ["4 s", "3 min 05 s", "1 h 02 min"]


def test_the_engine_drives_it_once_per_chunk(heart, heart_lr):
    out = io.StringIO()
    engine = ak.InfluenceEngine(heart_lr, "cross_entropy", l2=L2_LR, chunk_size=100,
                                progress=ProgressReporter("self-influence", stream=out, interval=0))
    engine.fit(heart["X"], heart["y"]).self_influence()
    lines = out.getvalue().splitlines()
    n = engine.n_train_
    assert len(lines) == -(-n // 100) and lines[-1].startswith(f"self-influence: {n:,} records in ")
