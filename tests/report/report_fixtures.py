"""Fixtures of the report tests: the sample run (real plugin output on UCI heart disease), a hostile
variant of it, and helpers that read a PDF in Python (pypdf, from the ``dev`` extra; no poppler-utils)."""

from __future__ import annotations

import copy
import functools
import json
import re
import zlib
from pathlib import Path

import pytest
from pypdf import PdfReader

DATA = Path(__file__).parent / "data"

HOSTILE = {
    "Female": '<img src="http://127.0.0.1:9/evil.png">',
    "Male": '<img src="file:///etc/passwd">',
    "55+": "{{ 7*7 }}",
    "age_band": "<script>alert('x')</script> $x$",
}


@pytest.fixture(scope="session")
def sample_run() -> dict:
    return json.loads((DATA / "sample_run.json").read_text(encoding="utf-8"))


def hostile_copy(run: dict) -> dict:
    """The run with group labels, a column name and the organisation replaced by hostile strings
    (keys and values alike, so that the run stays consistent)."""

    def swap(text: str) -> str:
        for a in sorted(HOSTILE, key=len, reverse=True):
            if text == a or (a in text and " & " in text):
                text = text.replace(a, HOSTILE[a])
        return text

    def walk(o):
        if isinstance(o, dict):
            return {swap(k) if isinstance(k, str) else k: walk(v) for k, v in o.items()}
        if isinstance(o, list):
            return [walk(v) for v in o]
        return swap(o) if isinstance(o, str) else o

    out = walk(copy.deepcopy(run))
    out["scope"]["organisation"] = '<script>document.write(1)</script> & <b>Org</b> {{ 7*7 }}'
    return out


@pytest.fixture(scope="session")
def hostile_run(sample_run) -> dict:
    return hostile_copy(sample_run)


@pytest.fixture(scope="session")
def rendered(sample_run, tmp_path_factory):
    """The sample run rendered once: {"html", "pdf", "findings", "figures"} paths."""
    from auditkit.report import render_run
    return render_run(sample_run, tmp_path_factory.mktemp("report"))


def pdf_streams(pdf: Path) -> list[bytes]:
    """Every stream of the PDF, inflated where it is Flate-compressed (enough to find embedded files)."""
    data = pdf.read_bytes()
    out = []
    for m in re.finditer(rb"stream\r?\n", data):
        end = data.find(b"endstream", m.end())
        raw = data[m.end():end]
        try:
            out.append(zlib.decompressobj().decompress(raw))
        except zlib.error:
            out.append(raw)
    return out


def pdf_text(pdf: Path) -> str:
    """Text of every page of the PDF as pypdf extracts it from the content streams (WeasyPrint writes them in
    reading order), pages separated by form feeds. Cached per file version: extraction takes seconds."""
    pdf = Path(pdf).resolve()
    stat = pdf.stat()
    return _pdf_text(pdf, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _pdf_text(pdf: Path, _mtime_ns: int, _size: int) -> str:
    return "\f".join(page.extract_text() for page in PdfReader(pdf).pages)


def pdf_attachments(pdf: Path) -> dict[str, bytes]:
    """The files embedded in the PDF (its EmbeddedFiles name tree), by name."""
    return {name: data[0] for name, data in PdfReader(pdf).attachments.items()}
