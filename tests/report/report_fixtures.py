"""Fixtures of the report tests: the sample run (real plugin output on UCI heart disease), a hostile
variant of it, and helpers that read a PDF without third-party Python packages."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest

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
    """Text of the PDF in reading order: pdftotext (poppler-utils) when installed; otherwise the text of
    WeasyPrint's own layout of the ``report.html`` beside it (the same pages, before PDF serialisation)."""
    if shutil.which("pdftotext"):
        return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                              check=True).stdout
    from weasyprint import HTML
    from weasyprint.formatting_structure import boxes

    from auditkit.report.pdf import AssetFetcher
    root = pdf.parent
    doc = HTML(filename=str(root / "report.html"), base_url=root.as_uri() + "/",
               url_fetcher=AssetFetcher(root)).render()
    return "\f".join(" ".join(b.text for b in page._page_box.descendants() if isinstance(b, boxes.TextBox))
                      for page in doc.pages)
