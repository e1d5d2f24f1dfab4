"""Writing a run's outputs so that they appear complete or not at all.

Everything goes to a hidden temporary folder beside the output folder first; only when every file is
written is the temporary folder renamed into place (a rename is atomic within one file system). A run
that fails is cleaned up; one that is killed (SIGKILL, power loss) leaves at most a hidden ``.NAME.tmp-PID-…``
folder, never a half-written report, and the next run into the same place removes such folders of processes
that no longer exist. :func:`check_output` refuses an unusable output folder, and a machine without the PDF
renderer's system libraries or fonts (:func:`auditkit.system.check_system`), before anything is computed.

**Only auditkit's own folders are replaced.** Every output folder holds ``manifest.json``: the report id and the
SHA-256 of each file written. ``--out`` may name an existing folder only when it is empty or such a folder whose
files are all listed there, unchanged; anything else (a file of the user's, an edited report, a folder without a
manifest) is refused before any work, and checked again just before the swap. ``--out`` may be a symbolic link to
an earlier run: the folder it points to is replaced and the link kept; a dangling link or a loop is refused.

The swap can be tied to another commit (the history row): ``commit`` opens a transaction that is committed only
after the folder is in place, and if it fails the earlier folder is put back, so both land or neither does.

Files: ``manifest.json``, ``report.html``, ``report.pdf`` (PDF/A-3b, ``findings.json`` attached), ``findings.json``,
``run.json`` (everything needed to re-render), ``flagged_records.csv`` (created with mode 0600: it maps
tokens to record ids and is meant for the data owner only), ``record_scores.csv`` (mode 0600 too, when a plugin
scored records: every training record's id, token, label, groups and scores, the full rankings to sort and
filter without rerunning), ``suppressed_cells.json`` (mode 0600 too, when cells were suppressed: the values taken
out of every public output by :mod:`auditkit.suppression`, for the data owner only) and ``figures/``.
"""

from __future__ import annotations

import csv
import errno
import json
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path

from .errors import InputError, OutputError
from .hashes import file_sha256
from .interrupts import deferred, note_written
from .rundoc import RunDocument, findings_of, load_run
from .suppression import FILE as SUPPRESSED_FILE
from .suppression import suppress
from .system import check_system

log = logging.getLogger(__name__)

CSV_COLUMNS = ("token", "split", "record_id", "finding", "score", "label", "groups", "reason")
RUN_FILES = ("run.json", "findings.json")
MANIFEST = "manifest.json"
MANIFEST_SCHEMA = "auditkit.manifest/1"


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


def write_private_json(data: dict, path: Path) -> None:
    """A private JSON file (``suppressed_cells.json``), created with permissions 0600 like flagged_records.csv."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False))
    os.chmod(path, 0o600)


def _dump(data: dict, path: Path) -> None:
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False), encoding="utf-8")


def write_manifest(folder: Path, report_id: str) -> None:
    """``folder/manifest.json``: the report id and the size and SHA-256 of every file under ``folder``."""
    files = {p.relative_to(folder).as_posix(): {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST}
    _dump({"schema": MANIFEST_SCHEMA, "report_id": report_id, "files": files}, folder / MANIFEST)


def foreign_files(folder: Path) -> list[str]:
    """What in ``folder`` auditkit did not write, as paths relative to it: its top-level entries when it has no
    readable ``manifest.json``; else each file not listed there (or changed since: other size or SHA-256), and each
    link or special file. A folder is not named itself (removing an empty one loses nothing; its files are named)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"] if manifest.get("schema") == MANIFEST_SCHEMA else None
        listed = {str(k): v for k, v in files.items()} if isinstance(files, dict) else None
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        listed = None
    if listed is None:                              # not auditkit's: its top level is enough to say so
        return sorted(p.name for p in folder.iterdir())
    entries = sorted(folder.rglob("*"))
    foreign = []
    for p in entries:
        rel = p.relative_to(folder).as_posix()
        if rel == MANIFEST and p.is_file() and not p.is_symlink():
            continue
        if p.is_symlink() or not (p.is_file() or p.is_dir()):
            foreign.append(rel)
        elif p.is_file():
            entry = listed.get(rel)
            same = isinstance(entry, dict) and entry.get("bytes") == p.stat().st_size
            if not (same and entry.get("sha256") == file_sha256(p)):
                foreign.append(rel)
    return foreign


def _refuse_foreign(out: Path, shown: Path) -> None:
    """Refuse a non-empty folder that auditkit did not write (or whose files were changed since)."""
    foreign = foreign_files(out)
    if not foreign:
        return
    names = ", ".join(repr(f) for f in foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
    if not (out / MANIFEST).is_file():
        raise InputError(f"--out {str(shown)!r} is a folder auditkit did not write (it has no {MANIFEST}; it holds "
                         f"{names}): choose a new or empty folder; auditkit replaces only a folder it wrote")
    raise InputError(f"--out {str(shown)!r} holds {len(foreign)} file(s) auditkit did not write or that changed "
                     f"since ({names}): move them out or choose a new folder; auditkit replaces only what it wrote")


def output_target(out: Path) -> Path:
    """The folder a run writes: ``out`` itself, or the folder it points to when ``out`` is a symbolic link to one.
    Refuses a path through a dangling symbolic link or a loop of links, naming the link."""
    out = Path(out)
    path = out.absolute()
    for candidate in [path, *path.parents]:
        if not os.path.lexists(candidate):
            continue
        if candidate.is_symlink():
            try:
                os.stat(candidate)
            except OSError as exc:
                what = ("is a loop of symbolic links" if exc.errno == errno.ELOOP else
                        f"is a symbolic link to {os.readlink(candidate)!r}, which does not exist")
                fix = "fix or remove the link" + (", or choose a new folder" if candidate == path else "")
                raise InputError(f"--out {str(out)!r}: {str(candidate)!r} {what}: {fix}") from None
        break
    return path.resolve() if out.is_symlink() else out


def check_output(out: Path) -> None:
    """Refuse, before anything is computed, an output folder that cannot be (re)placed: a file, a folder
    auditkit did not write (or holding files of the user's), a path through a dangling symbolic link, or a place
    where nothing can be created; and a machine that lacks a system library or font of the PDF report
    (:class:`~auditkit.errors.SystemDependencyError`). Creates nothing that outlives the check."""
    check_system()
    shown = Path(out)
    out = output_target(shown)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {str(shown)!r} is a file: give a folder for the report")
    if out.is_dir():
        _refuse_foreign(out, shown)
    existing = out.absolute().parent
    while not existing.exists():
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, "a file is in the way", str(existing))
        probe = tempfile.mkdtemp(prefix=f".{out.name}.probe-", dir=existing)
        os.rmdir(probe)
    except OSError as exc:
        raise InputError(f"--out {str(shown)!r} cannot be written ({exc.strerror or exc}): choose a folder you can "
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
    temporary folder. ``out`` is the folder itself (a symbolic link already followed)."""
    check_output(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        for stale in _stale(out.parent, out.name):
            log.debug("removing %s, the staging folder of a run that was killed", stale)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{secrets.token_hex(3)}"
        tmp.mkdir()
        log.debug("writing into %s (renamed to %s when complete)", tmp, out)
    except OSError as exc:
        raise InputError(f"--out {str(out)!r} cannot be written ({exc.strerror or exc}): choose a folder you can "
                         "write to") from None
    return tmp


def _swap(tmp: Path, out: Path) -> Path | None:
    """Move the finished temporary folder into place; an earlier run's folder is renamed aside (returned, to be
    removed once the swap is committed, or put back)."""
    if out.exists():
        _refuse_foreign(out, out)                  # checked again: files may have been added during the run
        trash = out.parent / f".{out.name}.old-{os.getpid()}-{secrets.token_hex(3)}"
        os.rename(out, trash)
        try:
            os.rename(tmp, out)
        except BaseException:
            os.rename(trash, out)                  # the earlier folder back in its place
            raise
        return trash
    os.rename(tmp, out)
    return None


def _unswap(tmp: Path, out: Path, trash: Path | None) -> None:
    """Undo :func:`_swap`: the new folder back to ``tmp``, the earlier one back to ``out``."""
    os.rename(out, tmp)
    if trash is not None:
        os.rename(trash, out)


@contextmanager
def _staged(out: Path, *, report_id: str, commit=None):
    """A temporary folder beside ``out``, moved into its place when the block succeeds, removed otherwise.
    ``commit()``: a context manager entered just before the swap and left just after it (e.g. a database
    transaction); if it fails, the swap is undone, so that the folder and what it commits land together."""
    out = output_target(out)
    tmp = _prepare(out)
    swapped, trash = False, None
    try:
        yield tmp
        write_manifest(tmp, report_id)
        with deferred():                            # a signal now waits until both are in place (or neither)
            with (commit() if commit is not None else nullcontext()):
                trash, swapped = _swap(tmp, out), True
            swapped = False
            note_written(out)
            if trash is not None:
                shutil.rmtree(trash, ignore_errors=True)
    except BaseException:
        if swapped:
            try:
                _unswap(tmp, out, trash)
            except OSError as exc:
                earlier = f"the earlier folder is in {str(trash)!r}" if trash is not None else "there was none"
                raise OutputError(f"the new report is in {str(out)!r} but what had to be committed with it was not, "
                                  f"and the swap could not be undone ({exc.strerror or exc}); {earlier}") from exc
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _paths(folder: Path) -> dict[str, Path]:
    """The outputs in ``folder`` by name (``manifest.json`` left out)."""
    return {p.name: p for p in sorted(folder.iterdir()) if p.name != MANIFEST}


def write_run(run: RunDocument | Mapping, flagged: list[dict], out: Path, *, templates: Path | None = None,
              commit=None, scores: list[dict] | None = None, withheld: dict | None = None) -> dict[str, Path]:
    """Write every output of a run (its run document ``run``, already public; a dict is validated first) into
    ``out`` atomically; returns the final paths. ``withheld``: what suppression took out (the private
    ``suppressed_cells.json``, not written when nothing was). ``commit``: see :func:`_staged` (the history row,
    recorded together with the folder). ``scores``: rows of ``record_scores.csv`` (not written when there are none)."""
    from .report import render_run  # heavy (matplotlib, WeasyPrint): imported only when writing

    run = load_run(run)
    out = output_target(Path(out))
    with _staged(out, report_id=run.report_id, commit=commit) as tmp:
        _dump(run.to_json_dict(), tmp / "run.json")
        _dump(findings_of(run), tmp / "findings.json")
        write_flagged_csv(flagged, tmp / "flagged_records.csv")
        if scores:
            write_scores_csv(scores, tmp / "record_scores.csv")
        if withheld and withheld.get("entries"):
            write_private_json(withheld, tmp / SUPPRESSED_FILE)
        render_run(run.to_json_dict(), tmp, templates=templates, findings_path=tmp / "findings.json")
    return _paths(out)


def rerender(run_dir: Path, *, templates: Path | None = None) -> dict[str, Path]:
    """Re-render a saved run's report from its ``run.json``, without recomputing anything."""
    from .report import render_run

    check_system()
    run_dir = output_target(Path(run_dir))
    source = run_dir / "run.json"
    if not source.is_file():
        raise InputError(f"{str(run_dir)!r} holds no run.json: give a folder written by `auditkit run`")
    run = load_run(source)
    foreign = foreign_files(run_dir)
    if foreign:
        names = ", ".join(repr(f) for f in foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        why = (f"has no {MANIFEST} (it was written by an earlier auditkit, or not by auditkit)"
               if not (run_dir / MANIFEST).is_file() else f"holds files auditkit did not write or that changed since "
               f"({names})")
        raise InputError(f"{str(run_dir)!r} {why}: re-rendering replaces the folder whole, so move such files out, "
                         "or rerun the audit into a new folder")
    public, withheld = _suppressed_for_render(run, run_dir)
    with _staged(run_dir, report_id=run.report_id) as tmp:
        for name in ("run.json", "findings.json", "flagged_records.csv", "record_scores.csv", SUPPRESSED_FILE):
            if (run_dir / name).exists():
                shutil.copy2(run_dir / name, tmp / name)
        if withheld:
            write_private_json(withheld, tmp / SUPPRESSED_FILE)
        if not (tmp / "findings.json").exists():
            _dump(findings_of(public), tmp / "findings.json")
        render_run(public.to_json_dict(), tmp, templates=templates, findings_path=tmp / "findings.json")
    return _paths(run_dir)


def _suppressed_for_render(run: RunDocument, run_dir: Path) -> tuple[RunDocument, dict | None]:
    """The document a re-rendered report shows, and the private ``suppressed_cells.json`` to add (or None).

    A run written since suppression (:mod:`auditkit.suppression`) is public already: it is shown as saved. One
    written before (no ``suppressed_cells.json`` beside it) may still show small cells and the cells that reveal
    them by subtraction: the report is rendered from its suppressed copy, the withheld values go to a new private
    ``suppressed_cells.json``, and its run.json and findings.json stay as they were (the data owner's record)."""
    if (run_dir / SUPPRESSED_FILE).exists():
        return run, None
    public, withheld = suppress(run.to_json_dict())
    if not withheld["entries"]:
        return run, None
    return load_run(public), withheld
