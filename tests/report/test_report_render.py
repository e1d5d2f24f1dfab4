"""HTML and PDF: sections in order, escaping, nothing fetched from outside, attachment, page numbers."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import jinja2
import pytest
from report_fixtures import pdf_attachments, pdf_streams, pdf_text
from test_report_document import REPORT_MD_TITLES

from auditkit.errors import InputError
from auditkit.report import build_document, render_figures, render_html, render_run
from auditkit.report.pdf import AssetFetcher, RefusedURL, render_pdf


def positions(text: str, needles: list[str]) -> list[int]:
    return [text.find(n) for n in needles]


def test_outputs_written(rendered):
    for key in ("html", "pdf", "findings"):
        assert rendered[key].is_file()
    assert rendered["pdf"].read_bytes()[:5] == b"%PDF-"
    assert rendered["pdf"].stat().st_size < 2_000_000
    assert len(list(rendered["figures"].glob("*.svg"))) == 14


def test_html_sections_in_order(rendered):
    html = rendered["html"].read_text(encoding="utf-8")
    heads = re.findall(r"<h2>(\d+)\. ([^<]+)</h2>", html)
    assert [t for _, t in heads] == REPORT_MD_TITLES
    assert [int(n) for n, _ in heads] == list(range(1, len(REPORT_MD_TITLES) + 1))
    assert 'class="banner status-fail"' in html and "Overall result: FAIL" in html
    # figures are referenced relatively, from the report's own folder only
    assert set(re.findall(r'<img src="([^"]+)"', html)) == {f"figures/{p.name}" for p in rendered["figures"].iterdir()}


def test_pdf_text_has_every_section_title_in_order_and_page_numbers(rendered):
    text = pdf_text(rendered["pdf"])
    flat = re.sub(r"\s+", " ", text)
    # body headings ("N. Title") appear after the contents list on the cover
    body = flat[flat.find("1. Cover and document control Document control"):]
    pos = positions(body, [f"{i}. {t}" for i, t in enumerate(REPORT_MD_TITLES, 1)])
    assert -1 not in pos, [t for t, p in zip(REPORT_MD_TITLES, pos, strict=False) if p == -1]
    assert pos == sorted(pos)
    pages = re.findall(r"Page (\d+) of (\d+)", flat)
    n = int(pages[0][1])
    assert [int(p) for p, _ in pages] == list(range(1, n + 1))
    assert {int(t) for _, t in pages} == {n}
    assert 10 < n < 40


def test_findings_json_attached(rendered):
    findings = rendered["findings"].read_bytes()
    inflated = pdf_streams(rendered["pdf"])
    assert any(s == findings for s in inflated), "the attached file's bytes are not in the PDF"
    assert any(b"findings.json" in s and b"/EmbeddedFile" in s for s in inflated)
    assert pdf_attachments(rendered["pdf"]) == {"findings.json": findings}   # what a PDF reader lists


def test_pdf_is_pdf_a_3b(rendered):
    xmp = b"".join(s for s in pdf_streams(rendered["pdf"]) if b"pdfaid" in s)
    assert re.search(rb"pdfaid:part[^0-9]{0,3}3", xmp) and re.search(rb"pdfaid:conformance[^A-Z]{0,3}B", xmp)


def test_annex_states_the_hash_of_the_attached_file(rendered):
    digest = hashlib.sha256(rendered["findings"].read_bytes()).hexdigest()
    html = rendered["html"].read_text(encoding="utf-8")
    assert " ".join(digest[i:i + 16] for i in range(0, 64, 16)) in html


@pytest.fixture(scope="module")
def hostile_rendered(hostile_run, tmp_path_factory, monkeypatch_module):
    """The hostile run through every stage, with the network and the fetcher watched."""
    attempts = []

    def no_connect(self, address):
        attempts.append(address)
        raise OSError("network disabled in this test")

    monkeypatch_module.setattr(socket.socket, "connect", no_connect)
    monkeypatch_module.setattr(urllib.request.OpenerDirector, "open",
                               lambda self, *a, **k: attempts.append(a) or (_ for _ in ()).throw(OSError("no")))
    out = tmp_path_factory.mktemp("hostile")
    (out / "findings.json").write_text(json.dumps({"status": "fail"}))
    figures = render_figures(hostile_run, out)
    html = render_html(build_document(hostile_run, figures=figures), out)
    fetcher = AssetFetcher(out)
    pdf = render_pdf(html, out / "report.pdf", attachments=[out / "findings.json"], fetcher=fetcher)
    return {"html": html, "pdf": pdf, "fetcher": fetcher, "attempts": attempts, "out": out}


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_hostile_strings_are_escaped_in_html(hostile_rendered):
    html = hostile_rendered["html"].read_text(encoding="utf-8")
    assert "<script" not in html
    assert set(re.findall(r"<img\b[^>]*>", html)) == set(re.findall(r'<img src="figures/[a-z_0-9]+\.svg"[^>]*>', html))
    assert "&lt;img src=&#34;http://127.0.0.1:9/evil.png&#34;&gt;" in html
    assert "&lt;img src=&#34;file:///etc/passwd&#34;&gt;" in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "{{ 7*7 }}" in html  # printed literally, never evaluated
    assert "&lt;b&gt;Org&lt;/b&gt;" in html


def test_hostile_render_fetches_nothing_outside(hostile_rendered):
    fetcher, out = hostile_rendered["fetcher"], hostile_rendered["out"]
    assert hostile_rendered["attempts"] == []
    assert fetcher.refused == []
    assert fetcher.served, "the figures and the attachment go through the fetcher"
    assert all(Path(u.removeprefix("file://")).resolve().is_relative_to(out.resolve()) for u in fetcher.served)
    text = re.sub(r"\s+", " ", pdf_text(hostile_rendered["pdf"]))
    assert "127.0.0.1:9/evil.png" in text and "{{ 7*7 }}" in text  # printed as text, not loaded


def test_fetcher_refuses_everything_but_its_own_files(tmp_path):
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "a.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.txt"
    outside.write_text("secret")
    (tmp_path / "link.txt").symlink_to(outside)
    fetcher = AssetFetcher(tmp_path)
    ok = fetcher.fetch((tmp_path / "figures" / "a.svg").as_uri())
    assert ok.read().startswith(b"<svg") and ok.content_type == "image/svg+xml"
    for url in ["http://127.0.0.1:9/x.png", "https://example.org/a.css", "ftp://example.org/x",
                "data:text/plain,hi", "file:///etc/passwd", outside.as_uri(), (tmp_path / "link.txt").as_uri(),
                (tmp_path / "figures" / ".." / ".." / outside.name).as_uri(), "file://evil.host/x",
                (tmp_path / "missing.svg").as_uri()]:
        with pytest.raises(RefusedURL, match="refused"):
            fetcher.fetch(url)
    assert len(fetcher.refused) == 10 and len(fetcher.served) == 1


def test_pdf_renderer_refuses_resources_in_a_hostile_template(tmp_path, monkeypatch):
    attempts = []

    def no_connect(self, address):
        attempts.append(address)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", no_connect)
    html = tmp_path / "report.html"
    html.write_text('<html><head><link rel="stylesheet" href="http://127.0.0.1:9/x.css"></head><body>'
                    '<img src="http://127.0.0.1:9/evil.png"><img src="file:///etc/passwd">'
                    '<p style="background: url(https://example.org/t.png)">x</p></body></html>')
    fetcher = AssetFetcher(tmp_path)
    render_pdf(html, tmp_path / "report.pdf", fetcher=fetcher)
    assert attempts == []
    assert set(fetcher.refused) == {"http://127.0.0.1:9/x.css", "http://127.0.0.1:9/evil.png", "file:///etc/passwd",
                                    "https://example.org/t.png"}
    assert fetcher.served == []


def test_attachment_outside_the_report_is_refused(tmp_path):
    html = tmp_path / "r" / "report.html"
    html.parent.mkdir()
    html.write_text("<p>x</p>")
    (tmp_path / "f.json").write_text("{}")
    with pytest.raises(InputError, match="must be an existing file inside the report directory"):
        render_pdf(html, html.parent / "report.pdf", attachments=[tmp_path / "f.json"])


def test_user_templates_override_and_undefined_names_fail(sample_run, tmp_path):
    doc = build_document(sample_run)
    user = tmp_path / "tpl"
    user.mkdir()
    (user / "report.css").write_text("h2 { color: rgb(1, 2, 3); }")
    html = render_html(doc, tmp_path / "a", templates=user).read_text(encoding="utf-8")
    assert "rgb(1, 2, 3)" in html and "Page \" counter(page)" not in html
    assert "<h2>9. Fairness results</h2>" in html  # the packaged main template still renders
    (user / "report.html.j2").write_text("{{ doc.no_such_field }}")
    with pytest.raises(jinja2.UndefinedError):
        render_html(doc, tmp_path / "b", templates=user)
    with pytest.raises(InputError, match="is not a directory"):
        render_html(doc, tmp_path / "c", templates=tmp_path / "missing")


def test_findings_path_outside_is_copied_in(sample_run, tmp_path):
    src = tmp_path / "elsewhere.json"
    src.write_text(json.dumps({"status": "fail", "checks": []}))
    small = dict(sample_run, fairness=None, privacy=None, data_quality=None)
    paths = render_run(small, tmp_path / "out", findings_path=src)
    assert paths["findings"] == tmp_path / "out" / "findings.json"
    assert paths["findings"].read_bytes() == src.read_bytes()
    assert any(s == src.read_bytes() for s in pdf_streams(paths["pdf"]))


def test_import_auditkit_report_stays_light():
    code = ("import sys, auditkit, auditkit.report; "
            "print(sorted(m for m in ('weasyprint', 'matplotlib', 'jinja2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2], check=True)
    assert out.stdout.strip() == "[]"
