"""PDF rendering with WeasyPrint: PDF/A-3b with the findings attached, fetching nothing from outside.

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
    document.write_pdf(str(pdf_path), pdf_variant="pdf/a-3b", attachments=files, uncompressed_pdf=False)
    return pdf_path
