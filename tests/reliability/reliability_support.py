"""Shared helpers of the reliability tests: a small, fast audit of the heart-disease example with record ids
that cannot be mistaken for anything else, and the checks every refused run must pass.

Not a ``conftest.py``: a second module of that name would shadow ``tests/conftest.py`` for
``from conftest import ...``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples/heart_disease"

#: record ids are this prefix and 12 random lowercase hex digits: text that appears nowhere else in a report
#: (tokens are upper case, ``R-XXXXXXXX``), so finding an id, or even ``mrn`` and three hex digits, is a leak
ID_PREFIX = "mrn"


def record_ids(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct record ids such as ``mrn7f3a9c01d2e4`` (random but fixed by ``seed``)."""
    import random

    rng = random.Random(seed)
    ids = {f"{ID_PREFIX}{rng.getrandbits(48):012x}" for _ in range(n)}
    assert len(ids) == n
    return sorted(ids, key=lambda s: rng.random())


def example_doc() -> dict:
    """The heart-disease example's configuration, made cheap (50 bootstrap samples, no verification by
    retraining: three quarters of the audit's time), with its history store ``history.sqlite`` beside it."""
    doc = yaml.safe_load((EXAMPLE / "audit.yaml").read_text())
    doc["model"]["weights"] = "weights.pt"
    doc["model"]["train_fn"] = None
    doc["data"]["table"] = "patients.csv"
    doc["audits"]["fairness"]["bootstrap"] = 50
    doc["history"] = "history.sqlite"
    return doc


def make_case(folder: Path, *, edit=None, table=None) -> Path:
    """Write an audit into ``folder`` (created): patients.csv with ``mrn…`` ids, weights.pt, audit.yaml.

    ``edit(doc)`` changes the configuration, ``table(frame) -> frame`` the patients' table; both in place of
    the example's. Returns the configuration's path.
    """
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.read_csv(EXAMPLE / "model/patients.csv")
    frame["id"] = record_ids(len(frame))
    if table is not None:
        frame = table(frame)
    if frame is not None:
        frame.to_csv(folder / "patients.csv", index=False)
    shutil.copy(EXAMPLE / "model/weights.pt", folder / "weights.pt")
    doc = example_doc()
    if edit is not None:
        edit(doc)
    path = folder / "audit.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def snapshot(folder: Path) -> dict[str, int]:
    """Every path under ``folder`` (hidden ones included) with its size, for 'nothing was written' checks."""
    return {str(p.relative_to(folder)): (p.stat().st_size if p.is_file() else -1)
            for p in sorted(folder.rglob("*"))}


def cli(*args, cwd: Path = ROOT, env: dict | None = None, timeout: float = 300) -> tuple[int, str, str]:
    """``python -m auditkit ARGS`` in a fresh process: (exit code, stdout, stderr)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "auditkit", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, env=full_env, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def assert_one_line_refusal(code: int, err: str, expected: list[str], *, progress: bool = False) -> str:
    """Exit 2, the error as exactly one line on stderr starting ``auditkit: error:`` and holding every expected
    phrase, no traceback. ``progress``: stderr may also hold progress lines (a run without --quiet) before the
    error, which must then be its last line. Returns the message without its prefix."""
    assert code == 2, f"exit {code}, stderr: {err!r}"
    assert "Traceback" not in err and 'File "' not in err, err
    lines = err.splitlines()
    assert err.endswith("\n") and (len(lines) == 1 or progress), f"not one line: {err!r}"
    errors = [line for line in lines if line.startswith("auditkit: ")]
    assert errors == [lines[-1]] and lines[-1].startswith("auditkit: error: "), err
    for phrase in expected:
        assert phrase in lines[-1], f"{phrase!r} not in {err!r}"
    return lines[-1].removeprefix("auditkit: error: ")


def history_rows(path: Path) -> int:
    """Rows in the history store at ``path`` (0 when the file does not exist)."""
    if not path.exists():
        return 0
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return conn.execute("SELECT COUNT(*) FROM auditkit_runs").fetchone()[0] if "auditkit_runs" in tables else 0


def random_name() -> str:
    return "x" + secrets.token_hex(4)


def render_without_pdf(run: dict, outdir: Path, *, templates=None, findings_path=None) -> dict:
    """What ``auditkit.report.render_run`` does (figures, document, HTML) except the PDF, which alone takes
    most of a run's time; tests that need no PDF patch ``auditkit.report.render_run`` with this."""
    import hashlib

    from auditkit.report import build_document, render_figures, render_html

    data = Path(findings_path).read_bytes()
    annex = {"name": "findings.json", "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "keys": []}
    figures = render_figures(run, outdir)
    html = render_html(build_document(run, figures=figures, annex=annex), outdir, templates=templates)
    return {"html": html, "findings": Path(findings_path), "figures": outdir / "figures"}


def report_html(run: dict) -> str:
    """The report's HTML for ``run`` without figures or PDF (the document model through the real templates)."""
    from auditkit.report import build_document
    from auditkit.report.html import render_html_string

    return render_html_string(build_document(run, figures={}, annex={"name": "findings.json"}))


class ScaledFeaturizer:
    """The example's own featurizer (TabularFeaturizer) with every feature multiplied by ``scale``: features of
    an absurd magnitude, for float32 overflow tests (``data.featurizer: reliability_support:scaled_1e19``)."""

    def __init__(self, scale: float):
        from auditkit.data import TabularFeaturizer

        self.scale = scale
        self.inner = TabularFeaturizer(categorical=example_doc()["data"]["categorical"])

    def fit(self, frame):
        self.inner.fit(frame)
        self.feature_names_ = self.inner.feature_names_
        return self

    def transform(self, frame):
        return self.inner.transform(frame) * self.scale


def scaled_1e19() -> ScaledFeaturizer:
    """Featurizer factory named in test configurations: features times 1e19 (squares overflow float32)."""
    return ScaledFeaturizer(1e19)


def text_of(html: str) -> str:
    """The visible text of an HTML report: tags dropped, entities decoded, soft hyphens (hyphenation hints the
    templates put inside long words) removed, whitespace collapsed."""
    import html as html_lib
    import re

    text = html_lib.unescape(re.sub(r"<[^>]+>", " ", html)).replace("\u00ad", "")
    return " ".join(text.split())
