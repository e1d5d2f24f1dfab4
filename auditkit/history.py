"""The history of audits: one row per completed run, so a report can show how key figures moved.

The store is any database SQLAlchemy reaches: a SQLite file by default (``history.sqlite``), or a URL
such as ``postgresql+psycopg://user@host/audits`` (the database and its driver are the user's). A row is
written in one transaction after the run's outputs are in place, so a run killed before then leaves no
row, and a killed write leaves none either (the database's own atomicity). Rows hold the report id, time,
model name and version, overall status, the key figures and the policy observations (for rules relative
to the previous audit); never records or identifiers.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import InputError

TABLE = "auditkit_runs"


def _is_url(target: str) -> bool:
    return "://" in target


class HistoryStore:
    """Past runs of every model line: ``HistoryStore("history.sqlite")`` or ``HistoryStore("postgresql://…")``.

    Opening the store checks the target (a database URL is connected to, an existing SQLite file read) but
    creates no new SQLite file: that file and its table appear with the first recorded run, so a run refused
    for bad input leaves no file behind.
    """

    def __init__(self, target: str | Path):
        import sqlalchemy as sa  # imported here: importing auditkit stays light

        self.target = str(target)
        self._sa = sa
        self._ready = False
        try:
            if _is_url(self.target):
                url = self.target
            else:
                path = Path(self.target)
                if path.is_dir():
                    raise IsADirectoryError(21, "is a directory", self.target)
                existing = path.absolute().parent
                while not existing.exists():
                    existing = existing.parent
                if not existing.is_dir():
                    raise NotADirectoryError(20, f"{existing} is a file", str(existing))
                url = f"sqlite:///{path.resolve()}"
            self.engine = sa.create_engine(url)
            meta = sa.MetaData()
            self.table = sa.Table(
                TABLE, meta,
                sa.Column("report_id", sa.String(64), primary_key=True),
                sa.Column("created_utc", sa.String(32), nullable=False),
                sa.Column("model_name", sa.String(256), nullable=False, index=True),
                sa.Column("model_version", sa.String(256)),
                sa.Column("status", sa.String(32), nullable=False),
                sa.Column("figures", sa.Text, nullable=False),
                sa.Column("observations", sa.Text, nullable=False),
                sa.Column("run_dir", sa.Text))
            self._meta = meta
            if self._exists():
                self._create()
        except InputError:
            raise
        except (OSError, sa.exc.SQLAlchemyError, ImportError, ValueError) as exc:
            raise self._error(exc) from None

    def _error(self, exc: Exception) -> InputError:
        shown = self.target if not _is_url(self.target) else self.target.split("://")[0] + "://…"
        detail = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        return InputError(f"history: cannot open the history store {shown!r} ({detail}): give a writable SQLite "
                          "path or a reachable database URL in 'history', or 'history: false'")

    def _exists(self) -> bool:
        """Whether the store holds anything yet (a SQLite file that does not exist holds no runs)."""
        return self._ready or _is_url(self.target) or Path(self.target).exists()

    def _create(self) -> None:
        """Create the SQLite folder, the database and the table when they do not exist yet."""
        if self._ready:
            return
        try:
            if not _is_url(self.target):
                Path(self.target).parent.mkdir(parents=True, exist_ok=True)
            self._meta.create_all(self.engine)
        except (OSError, self._sa.exc.SQLAlchemyError) as exc:
            raise self._error(exc) from None
        self._ready = True

    def runs(self, model_name: str) -> list[dict]:
        """Every recorded run of ``model_name``, oldest first."""
        if not self._exists():
            return []
        self._create()
        t = self.table
        query = (self._sa.select(t).where(t.c.model_name == model_name)
                 .order_by(t.c.created_utc, t.c.report_id))
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [{"report_id": r["report_id"], "created_utc": r["created_utc"], "model_version": r["model_version"],
                 "status": r["status"], "figures": json.loads(r["figures"]),
                 "observations": json.loads(r["observations"]), "run_dir": r["run_dir"]} for r in rows]

    def previous(self, model_name: str) -> dict | None:
        """The latest recorded run of ``model_name``, if any."""
        runs = self.runs(model_name)
        return runs[-1] if runs else None

    def record(self, run: dict, *, figures: dict, observations: list[dict], run_dir: str) -> None:
        """Add the run, in one transaction."""
        row = {"report_id": run["report_id"], "created_utc": run["created_utc"], "model_name": run["model"]["name"],
               "model_version": run["model"]["version"], "status": run["status"], "figures": json.dumps(figures),
               "observations": json.dumps(observations), "run_dir": run_dir}
        self._create()
        with self.engine.begin() as conn:
            conn.execute(self.table.delete().where(self.table.c.report_id == row["report_id"]))
            conn.execute(self.table.insert().values(**row))
