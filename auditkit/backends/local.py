"""The in-process backend: the engine's default, chunk after chunk in this process.

It is the engine's own :class:`auditkit.influence.records.InProcess` (the math core cannot import this package),
under the name the configuration uses.
"""

from __future__ import annotations

from ..influence.records import InProcess


class LocalBackend(InProcess):
    """Chunk functions run here, one chunk after the other, in record order (see ``InProcess``)."""

    def close(self) -> None:
        """Nothing to release (for symmetry with ``DaskBackend``)."""

    def __repr__(self) -> str:
        return "LocalBackend()"
