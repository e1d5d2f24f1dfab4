"""Command-line conventions: --version, --json, -v/--quiet before or after the command, messages through
logging, progress on a terminal (a tqdm bar) and NO_COLOR. The summary printed with --json is checked against
the run's files in test_cli.py (the example's run)."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys

import pytest
from conftest import ROOT
from test_cli import make_config

import auditkit
from auditkit import cli
from auditkit.cli import main
from auditkit.console import colour_allowed, coloured, console_logging
from auditkit.summary import BANNER, CheckCounts, ModelId, RunSummary


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_version_prints_the_package_version_and_exits_0():
    proc = subprocess.run([sys.executable, "-m", "auditkit", "--version"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"auditkit {auditkit.__version__}\n", "")


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    return make_config(tmp_path_factory.mktemp("conventions"), edit=cheap)


def cheap(doc):
    """The example audited for one attribute, without retraining or history (a fast run)."""
    doc["model"]["train_fn"] = None
    doc["data"]["sensitive"] = doc["data"]["sensitive"][:1]
    doc["audits"]["fairness"].update(bootstrap=50, intersections=[])
    doc["history"] = False


def test_verbose_before_or_after_the_command_shows_debug_lines_and_quiet_nothing(config, capsys):
    assert main(["validate", str(config)]) == 0
    plain = capsys.readouterr()
    assert plain.out.startswith(f"{config}: valid (model heart-disease-triage 1.0.0; records ") and plain.err == ""
    for argv in (["validate", str(config), "-v"], ["-v", "validate", str(config)]):
        assert main(argv) == 0
        captured = capsys.readouterr()
        assert captured.out == plain.out
        assert captured.err.startswith(f"debug: auditkit.cli: auditkit {auditkit.__version__} (Python ")
        assert captured.err.endswith(f"auditkit {' '.join(argv)}\n")
    assert main(["--quiet", "validate", str(config)]) == 0
    assert capsys.readouterr() == ("", "")


def test_json_on_validate_and_on_errors(config, capsys, tmp_path):
    assert main(["validate", str(config), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    fit = summary.pop("training_fit")
    assert fit["stationary"] and fit["relative"] < 1e-6 and fit["n"] == 506 and 0 < fit["accuracy"] <= 1
    assert summary.pop("featurizer").startswith("tabular (chosen automatically")
    assert summary == {"command": "validate", "config": str(config), "status": "valid", "exit_code": 0,
                       "model": {"name": "heart-disease-triage", "version": "1.0.0"},
                       "records": {"test": 230, "holdout": 184, "train": 506},
                       "audits": ["fairness", "privacy", "data_quality"],
                       "policy": "eu-ai-act-high-risk + clinical-privacy"}
    missing = tmp_path / "absent.yaml"
    assert main(["validate", str(missing), "--json"]) == 2
    captured = capsys.readouterr()
    message = f"configuration file {str(missing)!r} does not exist: pass the path of your audit.yaml"
    assert json.loads(captured.out) == {"error": message, "exit_code": 2}
    assert captured.err == f"auditkit: error: {message}\n"


def test_usage_errors_with_json_and_conflicting_options(config, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", str(config), "--json"])
    captured = capsys.readouterr()
    assert exit_.value.code == 2
    assert json.loads(captured.out) == {"error": "the following arguments are required: --out", "exit_code": 2}
    assert captured.err.endswith("auditkit run: error: the following arguments are required: --out\n")
    with pytest.raises(SystemExit) as exit_:
        main(["-v", "validate", str(config), "--quiet"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.endswith(
        "auditkit: error: -v/--verbose and --quiet cannot be combined: give one of them\n")


def test_the_banner_is_coloured_only_on_a_terminal_without_no_color(monkeypatch):
    summary = RunSummary(report_id="AK-1", status="fail", exit_code=1, model=ModelId(name="m", version="1"),
                         policy=None, checks=CheckCounts(passed=0, warned=0, failed=1, insufficient_data=0),
                         failed_or_warned=[], privacy=None, data_quality=None,
                         paths={"report.pdf": "r.pdf", "flagged_records.csv": "f.csv"}, seconds=1.0)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert colour_allowed(Terminal()) and not colour_allowed(io.StringIO())
    banner = summary.lines(banner=lambda text, status: coloured(text, status, colour=True))[0]
    assert banner == "auditkit AK-1: \x1b[1;31mFAIL\x1b[0m"
    monkeypatch.setenv("NO_COLOR", "")                       # set but empty: colour allowed (no-color.org)
    assert colour_allowed(Terminal())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not colour_allowed(Terminal())
    assert summary.lines()[0] == "auditkit AK-1: FAIL"


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:                                      # EIO: the other end closed
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def test_on_a_terminal_with_no_color_a_bar_and_no_escape_codes(config, tmp_path):
    """stdout and stderr on a pseudo-terminal (80 columns), NO_COLOR=1: the progress bar is drawn (tqdm, '\\r'),
    the summary is printed, and not one ANSI escape sequence appears."""
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "NO_COLOR": "1", "TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, "-m", "auditkit", "run", str(config), "--out", str(tmp_path / "r")],
                            stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, cwd=ROOT, env=env)
    os.close(slave)
    try:
        text = _read_all(master).decode()
        proc.wait(timeout=600)
    finally:
        os.close(master)
    run = json.loads((tmp_path / "r/run.json").read_text())
    assert proc.returncode == {"pass": 0, "pass_with_warnings": 0, "fail": 1}[run["status"]], text
    assert "\x1b[" not in text
    n = next(s["rows"] for s in run["data"]["splits"] if s["name"] == "train")
    assert "\rinfluence: 100%|" in text and f"| {n}/{n} [" in text       # tqdm's bar, closed at the end
    assert "fit the influence engine …\r\n" in text
    assert f"auditkit {run['report_id']}: {BANNER[run['status']]}\r\n" in text


@pytest.mark.parametrize("raised, code, message", [
    (RuntimeError("boom\nsecond line"), 3,
     "runtime failure: RuntimeError: boom (no report or history row was written; rerun with --debug for details)"),
    (KeyboardInterrupt(), 130, "interrupted (SIGINT); no report or history row was written")])
def test_failures_while_running_with_json(raised, code, message, config, capsys, monkeypatch):
    def fails(args):
        raise raised
    monkeypatch.setitem(cli.COMMANDS, "validate", fails)
    assert main(["validate", str(config), "--json", "--quiet"]) == code
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"error": message, "exit_code": code}
    assert captured.err == f"auditkit: {message}\n"


@pytest.mark.parametrize("level, expected", [
    (-1, ["auditkit: error: stop", "error: somelib: broken"]),
    (0, ["step …", "warning: a warning of ours", "warning: somelib: font missing", "auditkit: error: stop",
         "error: somelib: broken"]),
    (1, ["step …", "debug: auditkit.runner: 0.5 s", "warning: a warning of ours", "warning: somelib: font missing",
         "auditkit: error: stop", "error: somelib: broken"]),
    (2, ["step …", "debug: auditkit.runner: 0.5 s", "info: somelib: chatter", "debug: somelib: detail",
         "warning: a warning of ours", "warning: somelib: font missing", "auditkit: error: stop",
         "error: somelib: broken"])])
def test_console_logging_levels_format_and_restores(level, expected, capsys):
    import logging

    ours, lib, root = logging.getLogger("auditkit.runner"), logging.getLogger("somelib"), logging.getLogger()
    before = (root.level, list(root.handlers), logging.getLogger("auditkit").level)
    out = io.StringIO()
    with console_logging(level, stream=out):
        ours.info("step …")
        ours.debug("0.5 s")
        lib.info("chatter")
        lib.debug("detail")
        ours.warning("a warning of ours")
        for _ in range(3):                                   # another library's repeated warning: shown once
            lib.warning("font missing")
        ours.error("auditkit: error: stop")
        lib.error("broken")
    assert out.getvalue().splitlines() == expected
    assert capsys.readouterr().err == ""                     # the given stream only, no copy on stderr
    assert (root.level, list(root.handlers), logging.getLogger("auditkit").level) == before
