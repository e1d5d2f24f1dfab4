"""Valid run documents for tests that need one without running an audit: the heart example's run.json as
the previous auditkit version saved it (``tests/rundoc/data/run_heart_previous.json``), with parts replaced."""

from __future__ import annotations

import copy
import json
from pathlib import Path

PREVIOUS = Path(__file__).resolve().parent / "rundoc" / "data" / "run_heart_previous.json"
_SAVED = json.loads(PREVIOUS.read_text(encoding="utf-8"))


def run_document(**parts) -> dict:
    """The saved run document (a fresh copy) with top-level ``parts`` replaced; a dict given for ``model`` or
    ``provenance`` is merged into the saved one (so ``model={"name": "m"}`` keeps the other model facts)."""
    doc = copy.deepcopy(_SAVED)
    for key, value in parts.items():
        doc[key] = {**doc[key], **value} if key in ("model", "provenance") else value
    return doc
