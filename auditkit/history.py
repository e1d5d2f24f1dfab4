"""The history of audits: one row per completed run, so a report can show how key figures moved.

The store is any database SQLAlchemy reaches: a SQLite file by default (``history.sqlite``), or a URL
such as ``postgresql+psycopg://user@host/audits`` (the database and its driver are the user's). A row is
written in one transaction after the run's outputs are in place, so a run killed before then leaves no
row, and a killed write leaves none either (the database's own atomicity). Rows hold the report id, time,
model name and version, overall status, the key figures and the policy observations (for rules relative
to the previous audit); never records or identifiers.

:meth:`HistoryStore.check` is run before any work (``auditkit validate`` and the start of ``auditkit run``): the
store opens, its table has the expected columns, a SQLite file passes SQLite's integrity check, is not empty
(a 0-byte file is a truncated store, not a new one) and no other program holds its write lock; a SQLite file that
does not exist yet must be creatable. :meth:`HistoryStore.transaction` then adds the row in a transaction that the
writer commits together with the report folder (:func:`auditkit.writer.write_run`).
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path

from .errors import InputError, OutputError
from .rundoc import RunDocument, load_run

#: seconds a SQLite write waits for another writer's lock before giving up
LOCK_WAIT_S = 5.0

TABLE = "auditkit_runs"


def _is_url(target: str) -> bool:
    return "://" in target


class HistoryStore:
    """Past runs of every model line: ``HistoryStore("history.sqlite")`` or ``HistoryStore("postgresql://…")``.

    Opening the store checks the target (:meth:`check`: a database URL is connected to, an existing SQLite file
    checked for integrity and its write lock) but creates no new SQLite file: that file and its table appear with
    the first recorded run, so a run refused for bad input leaves no file behind.
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
            self.engine = sa.create_engine(url, connect_args={"timeout": LOCK_WAIT_S}) if not _is_url(self.target) \
                else sa.create_engine(url)
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
        except (OSError, sa.exc.SQLAlchemyError, ImportError, ValueError) as exc:
            raise self._error(exc) from None
        self.check()
        try:
            if self._exists():
                self._create()
        except InputError:
            raise
        except (OSError, sa.exc.SQLAlchemyError, ImportError, ValueError) as exc:
            raise self._error(exc) from None

    @property
    def shown(self) -> str:
        """The target as messages show it (a URL without its credentials)."""
        return self.target if not _is_url(self.target) else self.target.split("://")[0] + "://…"

    def _error(self, exc: Exception) -> InputError:
        detail = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        return InputError(f"history: cannot open the history store {self.shown!r} ({detail}): give a writable SQLite "
                          "path or a reachable database URL in 'history', or 'history: false'")

    def check(self) -> None:
        """Refuse, before any work, a store a run could not record into: see the module docstring."""
        sa = self._sa
        if not _is_url(self.target) and not Path(self.target).exists():
            self._check_creatable()
            return
        if not _is_url(self.target):
            self._check_sqlite_file()
        try:
            with self.engine.connect() as conn:
                if sa.inspect(conn).has_table(TABLE):
                    columns = {c["name"] for c in sa.inspect(conn).get_columns(TABLE)}
                    missing = sorted(set(self.table.columns.keys()) - columns)
                    if missing:
                        raise InputError(f"history: the table {TABLE!r} of the history store {self.shown!r} lacks the "
                                         f"column(s) {', '.join(missing)}: it was not written by auditkit; give "
                                         "another 'history' store, or 'history: false'")
        except (OSError, sa.exc.SQLAlchemyError) as exc:
            raise self._error(exc) from None

    def _check_creatable(self) -> None:
        """A SQLite file that does not exist yet: its deepest existing folder must take a new file."""
        existing = Path(self.target).absolute().parent
        while not existing.exists():
            existing = existing.parent
        try:
            fd, probe = tempfile.mkstemp(prefix=".auditkit-history-probe-", dir=existing)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise InputError(f"history: the history store {self.shown!r} cannot be created ({exc.strerror or exc}): "
                             "give a writable SQLite path in 'history', or 'history: false'") from None

    def _check_sqlite_file(self) -> None:
        """An existing SQLite file: not empty, intact (``PRAGMA quick_check``), its write lock free."""
        path = Path(self.target)
        fix = "restore it from a backup, or move it away to start a new history"
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise self._error(exc) from None
        if size == 0:
            raise InputError(f"history: the history store {self.shown!r} is an empty file (0 bytes; auditkit never "
                             f"writes one, so it was truncated): {fix}")
        try:
            conn = sqlite3.connect(f"file:{path.resolve()}?mode=rw", uri=True, timeout=LOCK_WAIT_S,
                                   isolation_level=None)
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        try:
            try:
                problems = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
            except sqlite3.DatabaseError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise InputError(f"history: the history store {self.shown!r} is locked by another program "
                                     f"(waited {LOCK_WAIT_S:g} s): let it finish and rerun, or give another "
                                     "'history' store") from None
                if "not a database" in str(exc):
                    raise self._error(exc) from None
                problems = [str(exc)]
            if problems != ["ok"]:
                first = " ".join(str(problems[0]).split())
                raise InputError(f"history: the history store {self.shown!r} is damaged (SQLite integrity check: "
                                 f"{first[:120]}): {fix}")
        finally:
            conn.close()

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

    def record(self, run: RunDocument | Mapping, *, figures: dict, observations: list[dict], run_dir: str) -> None:
        """Add the run, in one transaction."""
        with self.transaction(run, figures=figures, observations=observations, run_dir=run_dir)():
            pass

    def transaction(self, run: RunDocument | Mapping, *, figures: dict, observations: list[dict], run_dir: str):
        """A context manager factory for :func:`auditkit.writer.write_run`: entering adds the row of ``run`` (its
        run document; a dict is validated first) in an open transaction, leaving commits it (rolled back when the
        block fails). A failure is an :class:`~auditkit.errors.OutputError` that says the report was not put in
        place either."""
        run = load_run(run)
        row = {"report_id": run.report_id, "created_utc": run.created_utc, "model_name": run.model.name,
               "model_version": run.model.version, "status": run.status, "figures": json.dumps(figures),
               "observations": json.dumps(observations), "run_dir": run_dir}

        @contextmanager
        def commit():
            sa = self._sa
            try:
                self._create()
                conn = self.engine.connect()
                trans = conn.begin()
                conn.execute(self.table.delete().where(self.table.c.report_id == row["report_id"]))
                conn.execute(self.table.insert().values(**row))
            except (InputError, OSError, sa.exc.SQLAlchemyError) as exc:
                raise self._failed(exc) from None
            try:
                yield
                trans.commit()
            except (OSError, sa.exc.SQLAlchemyError) as exc:
                trans.rollback()
                raise self._failed(exc) from None
            except BaseException:
                trans.rollback()
                raise
            finally:
                conn.close()
        return commit

    def _failed(self, exc: Exception) -> OutputError:
        detail = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        return OutputError(f"the history store {self.shown!r} could not record the run ({detail}), so the report "
                           "was not put in place either (an earlier report there is unchanged): fix the store and "
                           "rerun")
