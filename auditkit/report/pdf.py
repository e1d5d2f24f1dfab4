"""PDF rendering with WeasyPrint: tagged PDF/A-3b with the findings attached once, fetching nothing from outside.

The PDF carries the author (the organisation) and the creation date of the run in its document information and
its XMP metadata (WeasyPrint reads them from the HTML's ``<meta name="author">`` and ``dcterms.created``), is
tagged (``pdf_tags=True``: a structure tree, ``/MarkInfo /Marked true``, so that assistive technology can read
it), and lists the attached findings exactly once in the catalog's ``/AF`` array (WeasyPrint 70 lists an
attachment there twice, once from the EmbeddedFiles name tree and once from its file specification;
:func:`unique_associated_files` removes the repeat).

:class:`AssetFetcher` is the only way WeasyPrint can load anything (stylesheets, images, attachments): it
serves ``file://`` URLs that resolve (symbolic links followed) to a file inside the report's own
directory, and refuses everything else (``http(s)://``, ``ftp://``, ``data:``, ``file://`` elsewhere) by
raising :class:`RefusedURL`. Refused URLs are recorded in ``fetcher.refused`` and logged by WeasyPrint as
warnings; the resource is simply left out, so a hostile ``<img src=...>`` that slipped past escaping still
causes no request and no read.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from urllib.parse import unquote, urlsplit

from weasyprint import HTML, Attachment
from weasyprint.urls import URLFetcher, URLFetcherResponse

from ..errors import InputError


class RefusedURL(ValueError):
    """A resource outside the report's own assets was requested."""


class AssetFetcher(URLFetcher):
    """Serve only regular files under ``root`` (the report's output directory)."""

    def __init__(self, root: Path):
        super().__init__(allowed_protocols=("file",))
        self.root = Path(root).resolve()
        self.served: list[str] = []
        self.refused: list[str] = []

    def fetch(self, url, headers=None):
        parts = urlsplit(url)
        if parts.scheme.lower() != "file" or parts.netloc not in ("", "localhost"):
            self.refused.append(url)
            raise RefusedURL(f"refused {url!r}: the report renderer loads only its own files under {self.root}")
        path = Path(unquote(parts.path)).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            self.refused.append(url)
            raise RefusedURL(f"refused {url!r}: the report renderer loads only its own files under {self.root}")
        self.served.append(url)
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return URLFetcherResponse(path.as_uri(), path.read_bytes(), {"Content-Type": kind})


def render_pdf(html_path: Path, pdf_path: Path, *, attachments: list[Path] = (),
               fetcher: AssetFetcher | None = None) -> Path:
    """Write ``pdf_path`` (PDF/A-3b) from ``html_path``; each attachment must lie in the HTML's directory."""
    html_path, pdf_path = Path(html_path), Path(pdf_path)
    root = html_path.parent.resolve()
    fetcher = fetcher or AssetFetcher(root)
    files = []
    for a in attachments:
        a = Path(a).resolve()
        if not a.is_relative_to(root) or not a.is_file():
            raise InputError(f"attachment {str(a)!r} must be an existing file inside the report directory {root}")
        files.append(Attachment(url=a.as_uri(), url_fetcher=fetcher, name=a.name,
                                description="auditkit findings (machine-readable)", relationship="Data"))
    document = HTML(filename=str(html_path), base_url=root.as_uri() + "/", url_fetcher=fetcher)
    document.write_pdf(str(pdf_path), pdf_variant="pdf/a-3b", pdf_tags=True, attachments=files,
                       uncompressed_pdf=False, finisher=unique_associated_files)
    return pdf_path


def unique_associated_files(_document, pdf) -> None:
    """Keep each associated file once in the catalog's ``/AF`` array (first occurrence, order kept)."""
    af = pdf.catalog.get("AF")
    if af is None:
        return
    seen, keep = set(), []
    for ref in af:
        if str(ref) not in seen:
            seen.add(str(ref))
            keep.append(ref)
    af[:] = keep
