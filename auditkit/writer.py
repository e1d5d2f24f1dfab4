"""Writing a run's outputs so that they appear complete or not at all.

Everything goes to a hidden temporary folder beside the output folder first; only when every file is
written is the temporary folder renamed into place (a rename is atomic within one file system). A run
that fails is cleaned up; one that is killed (SIGKILL, power loss) leaves at most a hidden ``.NAME.tmp-PID-…``
folder, never a half-written report, and the next run into the same place removes such folders of processes
that no longer exist. :func:`check_output` refuses an unusable output folder before anything is computed.

Files: ``report.html``, ``report.pdf`` (PDF/A-3b, ``findings.json`` attached), ``findings.json``,
``run.json`` (everything needed to re-render), ``flagged_records.csv`` (created with mode 0600: it maps
tokens to record ids and is meant for the data owner only), ``record_scores.csv`` (mode 0600 too, when a plugin
scored records: every training record's id, token, label, groups and scores, the full rankings to sort and
filter without rerunning) and ``figures/``.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import InputError

FINDINGS_KEYS = ("schema", "report_id", "created_utc", "status", "checks", "fairness", "privacy", "data_quality",
                 "influence", "model", "data", "policy", "provenance")
CSV_COLUMNS = ("token", "split", "record_id", "finding", "score", "label", "groups", "reason")
RUN_FILES = ("run.json", "findings.json")


def findings_of(run: dict) -> dict:
    """The machine-readable findings: the run without report metadata and configuration text."""
    out = {k: run.get(k) for k in FINDINGS_KEYS}
    out["provenance"] = {k: v for k, v in (run.get("provenance") or {}).items() if k != "config_text"}
    return out


def _cell(value) -> str:
    """A CSV cell; text starting like a spreadsheet formula is prefixed with ``'`` (CSV injection)."""
    text = "; ".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(text) else text


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def write_flagged_csv(rows: list[dict], path: Path, columns: tuple[str, ...] = CSV_COLUMNS) -> None:
    """The private flagged-records file (or any private table of records, ``columns`` in order), created with
    permissions 0600 (owner read/write only)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(c, "")) for c in columns])
    os.chmod(path, 0o600)


def write_scores_csv(rows: list[dict], path: Path) -> None:
    """``record_scores.csv``: one row per training record, its identity columns then every score (mode 0600)."""
    fixed = ("token", "split", "record_id", "label", "groups")
    scores = tuple(dict.fromkeys(k for row in rows for k in row if k not in fixed))
    write_flagged_csv(rows, path, fixed + scores)


def _dump(data: dict, path: Path) -> None:
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False), encoding="utf-8")


def check_output(out: Path) -> None:
    """Refuse, before anything is computed, an output folder that cannot be (re)placed: a file, a folder of
    other files, or a place where nothing can be created. Creates nothing that outlives the check."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {str(out)!r} is a file: give a folder for the report")
    if out.is_dir() and any(out.iterdir()) and not (out / "run.json").is_file():
        raise InputError(f"--out {str(out)!r} is not empty and holds no earlier auditkit run: choose a new or "
                         "empty folder (an earlier run's folder is replaced whole)")
    existing = out.absolute().parent
    while not existing.exists():
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, "a file is in the way", str(existing))
        probe = tempfile.mkdtemp(prefix=f".{out.name}.probe-", dir=existing)
        os.rmdir(probe)
    except OSError as exc:
        raise InputError(f"--out {str(out)!r} cannot be written ({exc.strerror or exc}): choose a folder you can "
                         "write to") from None


def _stale(parent: Path, name: str) -> list[Path]:
    """Staging folders of ``name`` left by runs that were killed (their process no longer exists)."""
    out = []
    for p in parent.glob(f".{name}.*-*"):
        kind, _, rest = p.name[len(name) + 2:].partition("-")
        pid = rest.split("-")[0]
        if kind in ("tmp", "old") and pid.isdigit() and p.is_dir() and not _alive(int(pid)):
            out.append(p)
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _prepare(out: Path) -> Path:
    """Check the output folder can be (re)placed, remove what killed runs left beside it, and create the
    temporary folder."""
    check_output(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        for stale in _stale(out.parent, out.name):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{secrets.token_hex(3)}"
        tmp.mkdir()
    except OSError as exc:
        raise InputError(f"--out {str(out)!r} cannot be written ({exc.strerror or exc}): choose a folder you can "
                         "write to") from None
    return tmp


def _swap(tmp: Path, out: Path) -> None:
    """Move the finished temporary folder into place, replacing an earlier run's folder."""
    if out.exists():
        trash = out.parent / f".{out.name}.old-{os.getpid()}-{secrets.token_hex(3)}"
        os.rename(out, trash)
        os.rename(tmp, out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(tmp, out)


@contextmanager
def _staged(out: Path):
    """A temporary folder beside ``out``, moved into its place when the block succeeds, removed otherwise."""
    tmp = _prepare(out)
    try:
        yield tmp
        _swap(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_run(run: dict, flagged: list[dict], out: Path, *, templates: Path | None = None,
              scores: list[dict] | None = None) -> dict[str, Path]:
    """Write every output of a run into ``out`` atomically; returns the final paths. ``scores``: rows of
    ``record_scores.csv`` (not written when there are none)."""
    from .report import render_run  # heavy (matplotlib, WeasyPrint): imported only when writing

    out = Path(out)
    with _staged(out) as tmp:
        _dump(run, tmp / "run.json")
        _dump(findings_of(run), tmp / "findings.json")
        write_flagged_csv(flagged, tmp / "flagged_records.csv")
        if scores:
            write_scores_csv(scores, tmp / "record_scores.csv")
        render_run(run, tmp, templates=templates, findings_path=tmp / "findings.json")
    return {p.name: p for p in sorted(out.iterdir())}


def rerender(run_dir: Path, *, templates: Path | None = None) -> dict[str, Path]:
    """Re-render a saved run's report from its ``run.json``, without recomputing anything."""
    from .report import render_run

    run_dir = Path(run_dir)
    source = run_dir / "run.json"
    if not source.is_file():
        raise InputError(f"{str(run_dir)!r} holds no run.json: give a folder written by `auditkit run`")
    try:
        run = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{str(source)!r} cannot be read as JSON ({type(exc).__name__}): it may have been "
                         "edited or truncated; rerun the audit") from None
    if not isinstance(run, dict) or run.get("schema") != "auditkit.run/1":
        raise InputError(f"{str(source)!r} is not an auditkit run (schema auditkit.run/1): rerun the audit")
    with _staged(run_dir) as tmp:
        for name in ("run.json", "findings.json", "flagged_records.csv", "record_scores.csv"):
            if (run_dir / name).exists():
                shutil.copy2(run_dir / name, tmp / name)
        if not (tmp / "findings.json").exists():
            _dump(findings_of(run), tmp / "findings.json")
        render_run(run, tmp, templates=templates, findings_path=tmp / "findings.json")
    return {p.name: p for p in sorted(run_dir.iterdir())}
