"""Every place a run writes is checked before the work, nothing auditkit did not write is ever deleted, and the
report folder and the history row land together (or neither does, and the message says which).

The audit itself is not what these tests are about: ``auditkit.runner.run_audit`` is replaced by a stand-in that
records that it was called (a refusal "before any work" must leave it uncalled) and returns a small run, and the
report by a fake renderer, so each case takes milliseconds. The checks themselves are the real ones.
"""

from __future__ import annotations

import json
import os
import sqlite3

import pytest
from reliability_support import assert_one_line_refusal, make_case, snapshot
from run_documents import run_document

from auditkit import history as history_module
from auditkit import writer
from auditkit.cli import main
from auditkit.errors import OutputError
from auditkit.history import HistoryStore
from auditkit.runner import AuditRun

RUN = run_document(report_id="AK-NEW", created_utc="2026-12-03T00:00:00Z", status="pass", history=[],
                   model={"name": "heart", "version": "1"}, provenance={"config_text": "", "seed": 0})


def fake_render(run, outdir, *, templates=None, findings_path=None):
    (outdir / "report.html").write_text(f"<html>{run['report_id']}</html>")
    (outdir / "report.pdf").write_bytes(b"%PDF-1.7 " + run["report_id"].encode())
    (outdir / "figures").mkdir()
    (outdir / "figures" / "gap.svg").write_text("<svg/>")
    return {}


@pytest.fixture
def stand_in(monkeypatch):
    """``run_audit`` replaced (its calls counted) and the renderer faked; returns the list of calls."""
    calls = []

    def run_audit(config, **kwargs):
        calls.append(config)
        return AuditRun(dict(RUN), [], [])

    monkeypatch.setattr("auditkit.runner.run_audit", run_audit)
    monkeypatch.setattr("auditkit.report.render_run", fake_render)
    monkeypatch.setattr(history_module, "LOCK_WAIT_S", 0.2)
    return calls


def _earlier_run(folder, report_id="AK-OLD"):
    """A folder written by auditkit (with its manifest), as an earlier run leaves it."""
    writer.write_run({**RUN, "report_id": report_id}, [], folder)
    return folder


def _refused(config, out, capsys, expected, calls):
    before = snapshot(config.parent)
    code = main(["run", str(config), "--out", str(out), "--quiet"])
    message = assert_one_line_refusal(code, capsys.readouterr().err, expected)
    assert calls == []                                          # refused before any work
    assert snapshot(config.parent) == before                    # nothing written, nothing deleted
    return message


# ------------------------------------------------------------------------------------------- the output folder

def test_a_folder_of_the_users_files_is_refused_even_with_a_run_json(tmp_path, capsys, stand_in):
    config = make_case(tmp_path)
    out = tmp_path / "reports"
    out.mkdir()
    (out / "run.json").write_text('{"schema": "auditkit.run/1"}')
    (out / "notes.txt").write_text("my notes")
    (out / "data").mkdir()
    (out / "data" / "patients-2025.csv").write_text("id\n1\n")
    message = _refused(config, out, capsys, [], stand_in)
    assert message == (f"--out {str(out)!r} is a folder auditkit did not write (it has no manifest.json; it holds "
                       "'data', 'notes.txt', 'run.json'): choose a new or empty folder; "
                       "auditkit replaces only a folder it wrote")
    assert (out / "notes.txt").read_text() == "my notes"


@pytest.mark.parametrize("damage, named", [
    (lambda out: (out / "notes.txt").write_text("mine"), "'notes.txt'"),
    (lambda out: (out / "report.html").write_text("<html>edited by hand</html>"), "'report.html'"),
    (lambda out: (out / "figures" / "mine.svg").write_text("<svg/>"), "'figures/mine.svg'"),
    (lambda out: (out / "manifest.json").write_text("{not json"), "'figures', 'findings.json', 'flagged_records.csv'"),
])
def test_an_earlier_run_with_a_file_added_or_changed_is_refused(damage, named, tmp_path, capsys, stand_in):
    config = make_case(tmp_path)
    out = _earlier_run(tmp_path / "report")
    damage(out)
    message = _refused(config, out, capsys, [named], stand_in)
    assert "auditkit replaces only" in message


def test_an_earlier_run_of_auditkits_own_is_replaced_whole(tmp_path, capsys, stand_in):
    config = make_case(tmp_path)
    out = _earlier_run(tmp_path / "report")
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "run.json").read_text())["report_id"] == "AK-NEW"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["report_id"] == "AK-NEW"
    assert set(manifest["files"]) == {"run.json", "findings.json", "flagged_records.csv", "report.html",
                                      "report.pdf", "figures/gap.svg"}
    assert writer.foreign_files(out) == []
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []   # no staging, no trash


def test_files_added_during_the_run_are_kept_and_the_run_refused(tmp_path, monkeypatch):
    """The check is repeated just before the swap: a file the user puts there while the audit computes is kept."""
    monkeypatch.setattr("auditkit.report.render_run", fake_render)
    out = _earlier_run(tmp_path / "report")

    def render_and_meanwhile(run, outdir, **kwargs):
        (out / "late-notes.txt").write_text("written while the audit ran")
        return fake_render(run, outdir, **kwargs)

    monkeypatch.setattr("auditkit.report.render_run", render_and_meanwhile)
    with pytest.raises(Exception, match="holds 1 file\\(s\\) auditkit did not write or that changed since "
                                        "\\('late-notes.txt'\\)"):
        writer.write_run(RUN, [], out)
    assert (out / "late-notes.txt").read_text() == "written while the audit ran"
    assert json.loads((out / "run.json").read_text())["report_id"] == "AK-OLD"
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


def test_out_as_a_link_to_an_earlier_run_replaces_the_folder_and_keeps_the_link(tmp_path, capsys, stand_in):
    config = make_case(tmp_path)
    runs = tmp_path / "runs"
    target = _earlier_run(runs / "2026-12-01")
    link = tmp_path / "current"
    link.symlink_to(target, target_is_directory=True)
    assert main(["run", str(config), "--out", str(link), "--quiet"]) == 0
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert json.loads((target / "run.json").read_text())["report_id"] == "AK-NEW"
    hidden = [p.name for d in (tmp_path, runs) for p in d.iterdir() if p.name.startswith(".")]
    assert hidden == []                                         # no .current.old-PID link, no orphaned folder
    assert sorted(p.name for p in runs.iterdir()) == ["2026-12-01"]


def test_out_through_a_dangling_link_is_refused_before_any_work(tmp_path, capsys, stand_in):
    config = make_case(tmp_path)
    (tmp_path / "reports").symlink_to(tmp_path / "unmounted-volume")
    out = tmp_path / "reports" / "2026-12"
    message = _refused(config, out, capsys, [], stand_in)
    assert message == (f"--out {str(out)!r}: {str(tmp_path / 'reports')!r} is a symbolic link to "
                       f"{str(tmp_path / 'unmounted-volume')!r}, which does not exist: fix or remove the link")


def test_out_through_a_loop_of_links_is_refused_before_any_work(tmp_path, capsys, stand_in):
    config = make_case(tmp_path)
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    message = _refused(config, tmp_path / "a", capsys, [], stand_in)
    assert message == (f"--out {str(tmp_path / 'a')!r}: {str(tmp_path / 'a')!r} is a loop of symbolic links: fix or "
                       "remove the link, or choose a new folder")


# ------------------------------------------------------------------------------------------- the history store

def _history(tmp_path, runs=3):
    store = HistoryStore(tmp_path / "history.sqlite")
    for i in range(runs):
        store.record({**RUN, "report_id": f"AK-{i}"}, figures={"gap": 0.1 * i},
                     observations=[{"metric": "m", "value": i}] * 30, run_dir="r")
    return tmp_path / "history.sqlite"


def _corrupt_a_page(path):
    with open(path, "r+b") as f:
        f.seek(4096 + 8)                                    # the second page: the table's b-tree
        f.write(bytes(range(7, 71)))


FIX = "restore it from a backup, or move it away to start a new history"


@pytest.mark.parametrize("setup, start, end", [
    (lambda t: _corrupt_a_page(_history(t)),          # SQLite's own words on the damage follow the colon
     "history: the history store '{h}' is damaged (SQLite integrity check: *** in database main *** On tree page 2 ",
     f"): {FIX}"),
    (lambda t: open(_history(t), "w").close(),
     "history: the history store '{h}' is an empty file (0 bytes; auditkit never writes one, so it was truncated): ",
     FIX),
])
def test_a_damaged_or_truncated_history_store_is_refused_before_any_work(setup, start, end, tmp_path, capsys,
                                                                          stand_in):
    config = make_case(tmp_path)
    setup(tmp_path)
    message = _refused(config, tmp_path / "runs/report", capsys, [], stand_in)
    assert message.startswith(start.format(h=tmp_path / "history.sqlite")) and message.endswith(end), message


def test_a_history_store_locked_by_another_writer_is_refused_before_any_work(tmp_path, capsys, stand_in):
    config = make_case(tmp_path)
    path = _history(tmp_path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        message = _refused(config, tmp_path / "runs/report", capsys, [], stand_in)
        assert message == (f"history: the history store {str(path)!r} is locked by another program (waited 0.2 s): "
                           "let it finish and rerun, or give another 'history' store")
        assert main(["validate", str(config)]) == 2             # validate checks the destinations too
        assert "is locked by another program" in capsys.readouterr().err
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_a_history_store_in_an_unwritable_place_is_refused_before_any_work(tmp_path, capsys, stand_in):
    config = make_case(tmp_path, edit=lambda d: d.update(history="/proc/auditkit/history.sqlite"))
    message = _refused(config, tmp_path / "runs/report", capsys, [], stand_in)
    assert message.startswith("history: the history store '/proc/auditkit/history.sqlite' cannot be created (")
    assert message.endswith("): give a writable SQLite path in 'history', or 'history: false'")


def test_a_dask_staging_folder_that_takes_no_folder_is_refused_before_any_work(tmp_path, capsys, stand_in):
    config = make_case(tmp_path, edit=lambda d: d.update(backend={"kind": "dask", "workers": 1, "staging": "/proc"}))
    message = _refused(config, tmp_path / "runs/report", capsys, [], stand_in)
    assert message.startswith("backend.staging: no folder can be created in '/proc' (")
    assert main(["validate", str(config)]) == 2
    assert "backend.staging: no folder can be created in '/proc'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- both land, or neither

def test_a_history_locked_at_the_end_leaves_the_earlier_report_and_says_so(tmp_path, capsys, stand_in, monkeypatch):
    """The store is free when the run starts and locked by another writer when the row is added: exit 3, the
    earlier report is unchanged, no row, no staging folder, and the message says the report was not put in place."""
    config = make_case(tmp_path)
    path = _history(tmp_path, runs=1)
    out = _earlier_run(tmp_path / "runs" / "report")
    other = sqlite3.connect(path, isolation_level=None)

    def render_then_lock(run, outdir, **kwargs):
        other.execute("BEGIN EXCLUSIVE")
        return fake_render(run, outdir, **kwargs)

    monkeypatch.setattr("auditkit.report.render_run", render_then_lock)
    try:
        code = main(["run", str(config), "--out", str(out), "--quiet"])
        err = capsys.readouterr().err
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert code == 3
    assert err == (f"auditkit: runtime failure: the history store {str(path)!r} could not record the run "
                   "((sqlite3.OperationalError) database is locked), so the report was not put in place either (an "
                   "earlier report there is unchanged): fix the store and rerun (rerun with --debug for details)\n")
    assert json.loads((out / "run.json").read_text())["report_id"] == "AK-OLD"
    assert [r["report_id"] for r in HistoryStore(path).runs("heart")] == ["AK-0"]
    assert [p.name for p in out.parent.iterdir()] == ["report"]


def test_a_commit_that_fails_after_the_swap_puts_the_earlier_report_back(tmp_path, monkeypatch):
    monkeypatch.setattr("auditkit.report.render_run", fake_render)
    out = _earlier_run(tmp_path / "report")
    swapped = []

    from contextlib import contextmanager

    @contextmanager
    def commit():
        yield
        swapped.append(json.loads((out / "run.json").read_text())["report_id"])   # the new folder is in place
        raise OutputError("the commit failed")

    with pytest.raises(OutputError, match="the commit failed"):
        writer.write_run(RUN, [], out, commit=commit)
    assert swapped == ["AK-NEW"]
    assert json.loads((out / "run.json").read_text())["report_id"] == "AK-OLD"   # put back
    assert writer.foreign_files(out) == []
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


def test_the_row_and_the_report_land_together(tmp_path, capsys, stand_in):
    config = make_case(tmp_path)
    out = tmp_path / "runs" / "report"
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 0
    rows = HistoryStore(tmp_path / "history.sqlite").runs("heart")
    assert [r["report_id"] for r in rows] == ["AK-NEW"] and rows[0]["run_dir"] == str(out.resolve())
    assert json.loads((out / "manifest.json").read_text())["report_id"] == "AK-NEW"
    assert os.listdir(out.parent) == ["report"]


def test_a_failure_after_the_report_is_in_place_does_not_claim_that_nothing_was_written(tmp_path, capsys, stand_in,
                                                                                         monkeypatch):
    config = make_case(tmp_path)
    out = tmp_path / "runs" / "report"

    def summary(*args, **kwargs):
        raise RuntimeError("the summary could not be printed")

    monkeypatch.setattr("auditkit.cli.run_summary", summary)
    assert main(["run", str(config), "--out", str(out)]) == 3
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"auditkit: runtime failure: RuntimeError: the summary could not be printed (the report was written to "
        f"{str(out)!r} (with its history row, if any) before that; rerun with --debug for details)")
    assert json.loads((out / "run.json").read_text())["report_id"] == "AK-NEW"


def test_render_never_replaces_a_folder_holding_the_users_files(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("auditkit.report.render_run", fake_render)
    out = _earlier_run(tmp_path / "report")
    (out / "review-notes.md").write_text("signed off by J.")
    assert main(["render", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"auditkit: error: {str(out)!r} holds files auditkit did not write or that changed since ('review-notes.md'): "
        "re-rendering replaces the folder whole, so move such files out, or rerun the audit into a new folder\n")
    assert (out / "review-notes.md").read_text() == "signed off by J."
    (out / "review-notes.md").unlink()
    assert main(["render", str(out)]) == 0 and writer.foreign_files(out) == []
