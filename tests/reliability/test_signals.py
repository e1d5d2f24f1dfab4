"""SIGTERM is handled like Ctrl-C: a clean stop with one line and exit 128 + 15, nothing half-written, an earlier
report left as it was; a signal that arrives while the report and its history row are being put in place waits
until both are (and the message then says the run completed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from reliability_support import ROOT, history_rows, make_case, snapshot
from run_documents import run_document

from auditkit import interrupts, writer

RUN = run_document(report_id="AK-OLD", created_utc="2026-12-01T00:00:00Z", status="pass", history=[],
                   model={"name": "heart", "version": "1"}, provenance={"config_text": "", "seed": 0})


@pytest.fixture
def routed():
    """SIGINT and SIGTERM routed as the command line routes them; Python's defaults restored after."""
    interrupts.install()
    yield
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_sigterm_interrupts_like_ctrl_c_except_while_outputs_are_put_in_place(routed):
    with interrupts.deferred():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)                                   # delivered here, and only noted
    assert interrupts.pending() == signal.SIGTERM
    with pytest.raises(KeyboardInterrupt) as caught:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)
    assert caught.value.signum == signal.SIGTERM


def _start(config, out):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "auditkit", "run", str(config), "--out", str(out)], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _terminate_when(proc, ready, timeout=240.0):
    started = time.monotonic()
    while not ready():
        assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before it could be stopped"
        assert time.monotonic() - started < timeout, "the run never reached the point to stop it at"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


LAST_LINE = "auditkit: interrupted (SIGTERM); no report or history row was written"


def test_sigterm_while_computing_stops_cleanly_and_writes_nothing(tmp_path):
    config = make_case(tmp_path)
    proc = _start(config, tmp_path / "runs" / "report")
    lines = []

    def computing():
        lines.append(proc.stderr.readline())
        return "fit the influence engine" in lines[-1]

    code, err = _terminate_when(proc, computing)
    assert code == 128 + signal.SIGTERM
    assert "Traceback" not in err and err.splitlines()[-1] == LAST_LINE
    assert not (tmp_path / "runs").exists() and history_rows(tmp_path / "history.sqlite") == 0


def test_sigterm_while_writing_leaves_the_earlier_report_and_no_half_written_one(tmp_path, monkeypatch):
    config = make_case(tmp_path, edit=lambda d: d["data"].update(sensitive=d["data"]["sensitive"][:1]) or
                       d["audits"]["fairness"].update(intersections=[]))
    out = tmp_path / "runs" / "report"

    def fake_render(run, outdir, *, templates=None, findings_path=None):
        (outdir / "report.pdf").write_bytes(b"%PDF-1.7 earlier")
        return {}

    monkeypatch.setattr("auditkit.report.render_run", fake_render)
    writer.write_run(RUN, [], out)                              # an earlier run of auditkit's, with its manifest
    before = snapshot(out)
    proc = _start(config, out)

    def writing():
        return any((p / "findings.json").exists() for p in out.parent.glob(".report.tmp-*"))

    code, err = _terminate_when(proc, writing)
    assert code == 128 + signal.SIGTERM
    assert "Traceback" not in err and err.splitlines()[-1] == LAST_LINE
    assert snapshot(out) == before and json.loads((out / "run.json").read_text())["report_id"] == "AK-OLD"
    assert [p.name for p in out.parent.iterdir()] == ["report"]  # the staging folder is gone
    assert history_rows(tmp_path / "history.sqlite") == 0
