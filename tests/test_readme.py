"""The README's Python examples run and print what the README says they print."""

from __future__ import annotations

import contextlib
import io
import os
import re

import pytest
from conftest import ROOT

NUMBER = re.compile(r"[-+]?\d+\.?\d*(?:e[-+]?\d+)?")


def examples() -> list[tuple[str, str]]:
    """(code, expected output) for each ```python block followed by a plain ``` block."""
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n((?:(?!```).)*?)```\s*\n```\n((?:(?!```).)*?)```", text, flags=re.S)


@pytest.mark.parametrize("code, expected", examples(), ids=lambda v: str(len(v)))
def test_readme_example_prints_what_it_says(code, expected, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    got = out.getvalue()
    assert NUMBER.sub("#", got).split() == NUMBER.sub("#", expected).split()
    for a, b in zip(NUMBER.findall(got), NUMBER.findall(expected), strict=True):
        assert float(a) == pytest.approx(float(b), rel=0.02, abs=2e-3)


def test_readme_has_examples():
    assert len(examples()) >= 2 and os.path.exists(ROOT / "README.md")
