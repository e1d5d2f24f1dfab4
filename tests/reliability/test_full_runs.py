"""Whole runs of the command line, killed and complete, on the heart-disease example (920 patients whose ids
are random ``mrn…`` strings): crash safety, record ids kept out of the report, and determinism.

One module-scoped fixture does the expensive part once:

1. ``auditkit run`` in a fresh process, SIGKILLed while it computes (after its "fit the influence engine"
   progress line): the state of the output folder and the history store is recorded;
2. again, SIGKILLed while it writes the report (once its hidden staging folder has files in it);
3. again, to completion: the report every other test reads.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time

import pandas as pd
import pytest
from reliability_support import ROOT, make_case, record_ids, snapshot, text_of
from report_fixtures import pdf_streams, pdf_text

from auditkit.cli import main
from auditkit.config import load_config
from auditkit.inputs import load_data

OUTPUTS = {"report.html", "report.pdf", "findings.json", "run.json", "flagged_records.csv", "record_scores.csv",
           "figures", "manifest.json", "suppressed_cells.json"}
VOLATILE = ("report_id", "created_utc")          # what may differ between two runs of the same audit
#: the data owner's token key of the runs compared here (without it every run draws a random key: other tokens)
TOKEN_KEY = "the reliability runs' token key"


def _popen(config, out):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "12345",
           "AUDITKIT_TOKEN_KEY": TOKEN_KEY}
    return subprocess.Popen([sys.executable, "-m", "auditkit", "run", str(config), "--out", str(out)], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _kill_when(proc, ready, timeout=240.0) -> float:
    """SIGKILL ``proc`` as soon as ``ready()`` holds; returns the seconds waited. Fails if it ended first."""
    started = time.monotonic()
    while not ready():
        assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before it could be killed"
        assert time.monotonic() - started < timeout, "the run never reached the point to kill it at"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    return time.monotonic() - started


def _history(folder):
    path = folder / "history.sqlite"
    if not path.exists():
        return None
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM auditkit_runs")]


def _explain_and_comment(folder):
    """The example audited for one sensitive attribute (half the pages to render: the PDF takes most of a run's
    time); the configuration names two test records to explain (by id) and quotes one in a comment."""
    def edit(doc):
        doc["data"]["sensitive"] = doc["data"]["sensitive"][:1]
        doc["audits"]["fairness"]["intersections"] = []
    config = make_case(folder, edit=edit)
    test_ids = [str(i) for i in load_data(load_config(config)).splits["test"].ids[:2]]
    doc_text = config.read_text().replace("    intersections:", f"    explain:\n      records: {json.dumps(test_ids)}\n"
                                          "    intersections:", 1)
    config.write_text(doc_text + f"# reviewed with the clinic: patient {test_ids[0]} is a known outlier\n")
    return config, test_ids


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("killed")
    config, explained = _explain_and_comment(folder)
    out = folder / "runs" / "report"
    state = {"folder": folder, "config": config, "out": out, "explained": explained}

    # 1. killed while computing
    proc = _popen(config, out)
    lines = []

    def computing():
        line = proc.stderr.readline()
        lines.append(line)
        return "fit the influence engine" in line
    _kill_when(proc, computing)
    state["computing"] = {"lines": lines, "runs": snapshot(folder / "runs") if (folder / "runs").exists() else None,
                          "history": _history(folder)}

    # 2. killed while writing: the staging folder beside --out already holds some of the outputs
    proc = _popen(config, out)
    staging = []

    def writing():
        found = [p for p in out.parent.glob(".report.tmp-*") if (p / "findings.json").exists()] \
            if out.parent.exists() else []
        staging[:] = found
        return bool(found)
    _kill_when(proc, writing)
    proc.stderr.close()
    state["writing"] = {"staging": staging[0].name, "runs": snapshot(out.parent), "history": _history(folder)}

    # 3. the next run, to completion
    started = time.monotonic()
    proc = _popen(config, out)
    _, err = proc.communicate(timeout=600)
    state["complete"] = {"code": proc.returncode, "stderr": err, "seconds": time.monotonic() - started,
                         "history": _history(folder)}
    return state


def test_a_run_killed_while_computing_leaves_nothing(runs):
    killed = runs["computing"]
    assert any("fit the influence engine" in line for line in killed["lines"])
    assert killed["runs"] is None                  # not even the output's parent folder
    assert killed["history"] is None               # no history file, so no row


def test_a_run_killed_while_writing_leaves_no_report_and_no_history_row(runs):
    killed = runs["writing"]
    names = set(killed["runs"])
    assert "report" not in names and not any(n.startswith("report/") for n in names)   # no report folder
    assert all(n.startswith(".report.tmp-") for n in names)                            # only the hidden staging
    assert killed["history"] is None


def test_the_next_run_succeeds_and_cleans_up_after_the_killed_ones(runs):
    done, out = runs["complete"], runs["out"]
    assert done["code"] in (0, 1), done["stderr"]
    assert "Traceback" not in done["stderr"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["report"]       # the killed run's staging is gone
    assert {p.name for p in out.iterdir()} == OUTPUTS
    findings = json.loads((out / "findings.json").read_text())
    [row] = done["history"]                                                  # one whole row, this run's
    assert row["report_id"] == findings["report_id"] and row["status"] == findings["status"]
    assert all(row[k] is not None for k in ("created_utc", "model_name", "model_version", "figures", "observations"))
    assert json.loads(row["figures"]) and isinstance(json.loads(row["observations"]), list)


def test_no_record_id_of_any_record_appears_in_any_report_output(runs):
    """Every id of the data (920 of them, train, test and holdout) is looked for in the HTML, the PDF's text and
    every stream of the PDF (its attachment and metadata included), findings.json, run.json and the figures."""
    out = runs["out"]
    ids = set(pd.read_csv(runs["folder"] / "patients.csv", dtype={"id": str})["id"])
    assert ids == set(record_ids(920)) and len(ids) == 920
    pdf = re.sub(r"[\s\u00ad-]+", "", pdf_text(out / "report.pdf"))         # ids broken across lines rejoined
    texts = {"report.html": (out / "report.html").read_text(encoding="utf-8"),
             "report.html (text)": text_of((out / "report.html").read_text(encoding="utf-8")),
             "report.pdf (text)": pdf,
             "report.pdf (streams)": b"".join(pdf_streams(out / "report.pdf")).decode("latin-1"),
             "findings.json": (out / "findings.json").read_text(encoding="utf-8"),
             "run.json": (out / "run.json").read_text(encoding="utf-8")}
    texts.update({f"figures/{p.name}": p.read_text(encoding="utf-8") for p in (out / "figures").iterdir()})
    assert "Page 1 of" in pdf_text(out / "report.pdf")                      # the text was really extracted
    for name, text in texts.items():
        leaked = [i for i in ids if i in text]
        assert not leaked, f"{len(leaked)} record id(s) in {name}, e.g. {leaked[0]}"
        assert not re.search(r"mrn[0-9a-f]{3}", text), name                 # not even a fragment of one
    # the configuration printed in the annex named two records: they appear there by their tokens
    annex = text_of((out / "report.html").read_text(encoding="utf-8"))
    assert re.search(r"records: \[R-[A-Z2-7]{8}, R-[A-Z2-7]{8}\]", annex)
    assert re.search(r"patient R-[A-Z2-7]{8} is a known outlier", annex)


def test_the_ids_are_only_in_the_private_flagged_records_file(runs):
    path = runs["out"] / "flagged_records.csv"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((runs["out"] / "record_scores.csv").stat().st_mode) == 0o600   # the full rankings too
    flagged = pd.read_csv(path, dtype=str)
    assert len(flagged) > 0 and set(flagged["record_id"]) <= set(record_ids(920))
    findings = json.loads((runs["out"] / "findings.json").read_text())
    assert set(flagged["token"]) >= {f["token"] for f in findings["privacy"]["flags"]}


def test_the_same_configuration_and_seed_give_the_same_findings(runs, tmp_path, monkeypatch):
    """A second run of the same audit (a copy of its folder: same files, same empty history), in this process
    rather than a fresh one (other hash seed, other import order), writes a findings.json that differs only in
    the run's id and time, and in the command line (its --out)."""
    for name in ("audit.yaml", "patients.csv", "weights.pt"):
        shutil.copy(runs["folder"] / name, tmp_path / name)
    monkeypatch.setattr("auditkit.report.render_run", lambda *a, **k: {})    # findings.json is written before
    monkeypatch.setenv("AUDITKIT_TOKEN_KEY", TOKEN_KEY)
    assert main(["run", str(tmp_path / "audit.yaml"), "--out", str(tmp_path / "again"), "--quiet"]) in (0, 1)

    def stable(path):
        findings = json.loads(path.read_text(encoding="utf-8"))
        for key in VOLATILE:
            assert findings.pop(key)
        assert findings["provenance"].pop("command").startswith("auditkit run ")
        return findings

    first, second = stable(runs["out"] / "findings.json"), stable(tmp_path / "again/findings.json")
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)     # identical, to the last bit
    assert first["privacy"]["flags"] and first["fairness"]["disparities"]           # and not trivially empty


def test_a_randomised_solver_gives_the_same_findings_whatever_the_global_random_state(tmp_path, monkeypatch):
    """Arnoldi starts from a random vector and the bootstrap resamples records: both are seeded from the
    configuration, so disturbing every global random generator between two runs changes nothing."""
    import random

    import numpy as np
    import torch

    from auditkit.runner import audit
    from auditkit.writer import findings_of

    monkeypatch.setenv("AUDITKIT_TOKEN_KEY", TOKEN_KEY)
    config = make_case(tmp_path, edit=lambda d: (d.update(history=False), d["influence"].update(
        method="arnoldi", options={"rank": 5}, stability={"damping_factors": [10.0], "second_solver": "none"}),
        d["audits"]["fairness"].update(bootstrap=30)))

    def findings():
        out = findings_of(audit(config).run)
        for key in VOLATILE:
            out.pop(key)
        return json.dumps(out, sort_keys=True)

    first = findings()
    torch.rand(1000), np.random.rand(1000), random.random(), torch.manual_seed(987), np.random.seed(987)
    assert findings() == first
    assert json.loads(first)["influence"]["method"] == "arnoldi"
