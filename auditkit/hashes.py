"""SHA-256 of files, read in 1 MiB blocks (memory stays bounded whatever the file's size). Standard library only,
so that the writer (manifests) and the input loader (provenance) share it without importing each other."""

from __future__ import annotations

import hashlib
from os import PathLike


def file_sha256(path: str | PathLike) -> str:
    """Hex SHA-256 of the bytes of the file at ``path``."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
