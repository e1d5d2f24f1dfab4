"""The suite's PDF checks pass on a machine without poppler-utils: they run in a subprocess whose PATH starts
with a folder in which pdftotext, pdfdetach and poppler's other commands log the call and exit 127."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
POPPLER = ("pdftotext", "pdfdetach", "pdffonts", "pdfinfo", "pdfimages", "pdftoppm", "pdftocairo", "pdfseparate",
           "pdfunite", "pdfattach", "pdfsig")
# The tests that read a rendered PDF's text and attachments (one rendering of the sample run: about 25 s).
PDF_TESTS = ["tests/report/test_report_render.py::test_pdf_text_has_every_section_title_in_order_and_page_numbers",
             "tests/report/test_report_render.py::test_findings_json_attached"]


def test_pdf_checks_pass_with_poppler_shadowed_on_path(tmp_path):
    shims, calls = tmp_path / "bin", tmp_path / "calls.log"
    shims.mkdir()
    for name in POPPLER:
        shim = shims / name
        shim.write_text(f'#!/bin/sh\necho "{name} $*" >> "{calls}"\nexit 127\n')
        shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{shims}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *PDF_TESTS], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert re.search(r"\b2 passed\b", proc.stdout) and "skipped" not in proc.stdout, proc.stdout[-2000:]
    assert not calls.exists(), calls.read_text()            # nothing even tried poppler
