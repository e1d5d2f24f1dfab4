"""Outputs appear complete or not at all; the flagged-records file is private; history rows are whole."""

from __future__ import annotations

import json
import stat

import pytest
from run_documents import run_document

from auditkit import writer
from auditkit.errors import InputError
from auditkit.history import HistoryStore

RUN = run_document(report_id="AK-1", created_utc="2026-11-28T00:00:00Z", status="pass", history=[],
                   model={"name": "m", "version": "1"}, provenance={"config_text": "secret: yes", "seed": 0})
ROWS = [{"token": "R-AAAA", "split": "train", "record_id": "=HYPERLINK(\"http://x\")", "finding": "privacy flag",
         "score": -1.5, "label": "+1", "groups": {"sex": "@f"}, "reason": "r"}]


def fake_render(run, outdir, *, templates=None, findings_path=None):
    (outdir / "report.html").write_text("<html></html>")
    (outdir / "report.pdf").write_bytes(b"%PDF-1.7")
    return {}


def test_outputs_are_written_whole_and_csv_is_private_and_defused(tmp_path, monkeypatch):
    monkeypatch.setattr("auditkit.report.render_run", fake_render)
    paths = writer.write_run(RUN, ROWS, tmp_path / "out")
    assert set(paths) == {"report.html", "report.pdf", "run.json", "findings.json", "flagged_records.csv"}
    csv_path = paths["flagged_records.csv"]
    assert stat.S_IMODE(csv_path.stat().st_mode) == 0o600
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "token,split,record_id,finding,score,label,groups,reason"
    # formula-like text from the data is prefixed with ' so spreadsheets show it as text; numbers stay numbers
    assert lines[1] == 'R-AAAA,train,"\'=HYPERLINK(""http://x"")",privacy flag,-1.5,+1,sex=@f,r'
    findings = json.loads(paths["findings.json"].read_text())
    assert "config_text" not in findings["provenance"] and findings["status"] == "pass"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]          # no temporary folder left


def test_a_failure_while_rendering_leaves_nothing(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr("auditkit.report.render_run", broken)
    with pytest.raises(RuntimeError):
        writer.write_run(RUN, ROWS, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_an_earlier_run_is_replaced_only_when_the_new_one_is_complete(tmp_path, monkeypatch):
    monkeypatch.setattr("auditkit.report.render_run", fake_render)
    writer.write_run(RUN, ROWS, tmp_path / "out")
    monkeypatch.setattr("auditkit.report.render_run", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        writer.write_run({**RUN, "report_id": "AK-2"}, ROWS, tmp_path / "out")
    assert json.loads((tmp_path / "out/run.json").read_text())["report_id"] == "AK-1"
    monkeypatch.setattr("auditkit.report.render_run", fake_render)
    writer.write_run({**RUN, "report_id": "AK-3"}, ROWS, tmp_path / "out")
    assert json.loads((tmp_path / "out/run.json").read_text())["report_id"] == "AK-3"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_unwritable_output_is_an_input_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file: give a folder for the report"):
        writer.write_run(RUN, ROWS, tmp_path / "file")
    with pytest.raises(InputError, match="cannot be written"):
        writer.write_run(RUN, ROWS, tmp_path / "file" / "sub")


def test_rerender_refuses_a_folder_without_a_run(tmp_path):
    with pytest.raises(InputError, match="holds no run.json: give a folder written by `auditkit run`"):
        writer.rerender(tmp_path)
    (tmp_path / "run.json").write_text("{trunc")
    with pytest.raises(InputError, match="cannot be read as JSON"):
        writer.rerender(tmp_path)


def test_history_keeps_runs_per_model_line_in_order(tmp_path):
    store = HistoryStore(tmp_path / "h.sqlite")
    assert store.previous("m") is None
    for i, stamp in enumerate(["2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z"]):
        store.record({**RUN, "report_id": f"AK-{i}", "created_utc": stamp}, figures={"auc": 0.5 + i},
                     observations=[{"metric": "privacy.loss.auc", "value": 0.5 + i}], run_dir="x")
    store.record({**RUN, "report_id": "AK-other", "model": {**RUN["model"], "name": "other"}}, figures={},
                 observations=[], run_dir="y")
    assert [r["report_id"] for r in store.runs("m")] == ["AK-1", "AK-0"]
    assert store.previous("m")["figures"] == {"auc": 0.5}
    assert HistoryStore(tmp_path / "h.sqlite").previous("other")["report_id"] == "AK-other"
    with pytest.raises(InputError, match="cannot open the history store"):
        HistoryStore(tmp_path / "h.sqlite" / "nested.sqlite")


def test_history_accepts_a_database_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'url.sqlite'}"
    HistoryStore(url).record(RUN, figures={"x": 1.0}, observations=[], run_dir="d")
    assert HistoryStore(url).previous("m")["figures"] == {"x": 1.0}
    with pytest.raises(InputError, match=r"cannot open the history store 'nosuchdialect://…'"):
        HistoryStore("nosuchdialect://user:secret@host/db")
