"""The documentation site builds with ``mkdocs build --strict`` (no broken link, anchor or reference), its generated
pages say what the code says, and the Python examples of its pages run and print what the pages say they print."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT

from auditkit.config import json_schema
from auditkit.policy import builtin_policies, load_policy

DOCS = ROOT / "docs"
NUMBER = re.compile(r"[-+]?\d+\.?\d*(?:e[-+]?\d+)?")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site built once, strictly, into a temporary folder (offline: nothing is fetched)."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1", "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def text_of(page) -> str:
    """The visible text of a built page's article, whitespace collapsed."""
    html = page.read_text(encoding="utf-8")
    article = html[html.index("<article"):html.index("</article>")]
    text = re.sub(r"<[^>]+>", " ", article)
    for entity, char in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&#39;", "'"), ("&amp;", "&")):
        text = text.replace(entity, char)
    return " ".join(text.split())


def test_site_builds_strictly_with_every_page(site):
    pages = {p.stem for p in DOCS.glob("*.md")} - {"index"}
    built = {p.parent.name for p in site.glob("*/index.html")}
    assert pages <= built, sorted(pages - built)
    results = {p.stem for p in (ROOT / "benchmarks" / "results").glob("*.md")}
    assert results and {p.parent.name for p in (site / "benchmarks").glob("*/index.html")} == results


def test_configuration_reference_lists_every_key_of_the_schema(site):
    text = text_of(site / "configuration" / "index.html")
    schema = json_schema()
    keys = list(schema["properties"])
    for name, definition in schema["$defs"].items():
        if name in ("ModelConfig", "DataConfig", "InfluenceConfig", "BackendConfig"):
            section = name.removesuffix("Config").lower()
            keys += [f"{section}.{k}" for k in definition["properties"]]
    assert "model.weights" in keys and "backend.staging" in keys
    missing = [k for k in keys if k not in text]
    assert missing == [], missing
    assert "data.sensitive[].bands" in text and "influence.stability.robust_agreement" in text
    assert "default [0.1, 10.0]" in text   # influence.stability.damping_factors, a default made by a factory


def test_policy_reference_shows_every_builtin_policy_and_rule(site):
    text = text_of(site / "policies" / "index.html")
    for name in builtin_policies():
        policy = load_policy(f"builtin:{name}")
        assert name in text and policy.title in text
        assert all(rule.id in text and rule.metric in text for rule in policy.rules)
    assert "Metric catalogue" in text   # the format and catalogue of auditkit/policies/README.md


def test_cli_reference_is_the_help_of_every_command(site):
    text = text_of(site / "cli" / "index.html")
    for command in ("run", "validate", "render", "schema", "policies"):
        assert f"usage: auditkit {command}" in text
    assert "--scheduler ADDRESS" in text and "--templates TEMPLATES" in text


def test_api_reference_renders_the_public_api(site):
    text = text_of(site / "api" / "index.html")
    for name in ("auditkit.audit", "auditkit.InfluenceEngine", "auditkit.fit_model", "SingularHessianError",
                 "ConvergenceWarning"):
        assert name in text
    assert "self_influence_of" in text   # members of InfluenceEngine, from its docstrings


def examples() -> list[tuple[str, str, str]]:
    """(page, code, expected output) for each ```python block of docs/ followed by a plain ``` block."""
    found = []
    for page in sorted(DOCS.glob("*.md")):
        blocks = re.findall(r"```python\n((?:(?!```).)*?)```\s*\n```\n((?:(?!```).)*?)```",
                            page.read_text(encoding="utf-8"), flags=re.S)
        found += [(page.name, code, expected) for code, expected in blocks]
    return found


@pytest.mark.parametrize("page, code, expected", examples(), ids=lambda v: v if v.endswith(".md") else "")
def test_docs_example_prints_what_it_says(page, code, expected, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, page, "exec"), {"__name__": "docs"})
    got = out.getvalue()
    assert NUMBER.sub("#", got).split() == NUMBER.sub("#", expected).split()
    for a, b in zip(NUMBER.findall(got), NUMBER.findall(expected), strict=True):
        assert float(a) == pytest.approx(float(b), rel=0.02, abs=2e-3)


def test_docs_have_their_examples():
    assert sorted(page for page, _, _ in examples()) == ["audits.md", "audits.md", "influence.md"]
