"""The history of audits: one row per completed run, so a report can show how key figures moved.

A SQLite file (standard library). A row is written in one transaction after the run's outputs are in
place, so a run killed before that leaves no row, and a killed write leaves none either (SQLite's journal).
Rows hold the report id, time, model name and version, overall status, the key figures and the policy
observations (for rules relative to the previous audit); never records or identifiers.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

from .errors import InputError

SCHEMA = """CREATE TABLE IF NOT EXISTS runs (
    report_id TEXT PRIMARY KEY, created_utc TEXT NOT NULL, model_name TEXT NOT NULL, model_version TEXT,
    status TEXT NOT NULL, figures TEXT NOT NULL, observations TEXT NOT NULL, run_dir TEXT)"""


class HistoryStore:
    """Past runs of every model line, in a SQLite file at ``path``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with closing(self._connect()) as db, db:
                db.execute(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise InputError(f"history: cannot open the history store {str(self.path)!r} ({exc}): give a "
                             "writable path in 'history', or 'history: false'") from None

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def runs(self, model_name: str) -> list[dict]:
        """Every recorded run of ``model_name``, oldest first."""
        with closing(self._connect()) as db:
            rows = db.execute("SELECT report_id, created_utc, model_version, status, figures, observations, "
                              "run_dir FROM runs WHERE model_name = ? ORDER BY created_utc, report_id",
                              (model_name,)).fetchall()
        return [{"report_id": r[0], "created_utc": r[1], "model_version": r[2], "status": r[3],
                 "figures": json.loads(r[4]), "observations": json.loads(r[5]), "run_dir": r[6]} for r in rows]

    def previous(self, model_name: str) -> dict | None:
        """The latest recorded run of ``model_name``, if any."""
        runs = self.runs(model_name)
        return runs[-1] if runs else None

    def record(self, run: dict, *, figures: dict, observations: list[dict], run_dir: str) -> None:
        """Add the run (one transaction)."""
        with closing(self._connect()) as db, db:
            db.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (run["report_id"], run["created_utc"], run["model"]["name"], run["model"]["version"],
                        run["status"], json.dumps(figures), json.dumps(observations), run_dir))
