"""The README: short, its two commands first, and every relative link in it leads to a file that exists."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import ROOT

README = ROOT / "README.md"
#: [text](target) and ![alt](target); the target ends at whitespace or the closing parenthesis
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def relative_links(text: str) -> list[str]:
    """Link targets that are not URLs, without their #anchor."""
    targets = [t for t in LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]
    return [t.split("#", 1)[0] for t in targets if not t.startswith("#")]


def test_link_parser_finds_links_and_images_and_skips_urls():
    text = "a [b](docs/x.md#y) ![c](img/p.png) [d](https://e.org/f) [g](#h) [i](mailto:j@k.l) [m](n/ \"title\")"
    assert relative_links(text) == ["docs/x.md", "img/p.png", "n/"]


def test_readme_starts_with_its_two_commands_and_the_makefile_has_them():
    head = README.read_text(encoding="utf-8").splitlines()[:10]
    commands = [line.split("#")[0].strip() for line in head if line.startswith("make ")]
    assert commands == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^demo:", makefile, flags=re.M) and re.search(r"^test:", makefile, flags=re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_readme_is_short():
    assert len(README.read_text(encoding="utf-8").splitlines()) < 200


def test_every_relative_link_in_the_readme_resolves():
    links = relative_links(README.read_text(encoding="utf-8"))
    assert len(links) >= 20, links
    missing = [t for t in links if not (ROOT / t).exists()]
    assert missing == [], f"README.md links to files that do not exist: {missing}"


def test_readme_links_every_page_of_the_manual():
    linked = {Path(t) for t in relative_links(README.read_text(encoding="utf-8"))}
    pages = {p.relative_to(ROOT) for p in (ROOT / "docs").glob("*.md")}
    assert pages - linked == set(), f"pages of docs/ the README does not link: {sorted(pages - linked)}"
