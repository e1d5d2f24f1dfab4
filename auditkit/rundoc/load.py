"""Reading a saved run document: ``load_run(path or dict) -> RunDocument``, with one clear line when it is not
a valid ``auditkit.run/1`` document (what is missing or invalid, and where); and ``findings_of(run)``, the
machine-readable findings of a run (validated first when given as a dict)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from os import PathLike
from pathlib import Path

from pydantic import ValidationError

from ..errors import InputError
from .document import FINDINGS_KEYS, SCHEMA, RunDocument

#: how many problems one message names before it counts the rest
SHOWN = 3


def _where(loc: tuple) -> str:
    """A pydantic error location as a dotted path: ``('fairness', 'groups', 0, 'count')`` →
    ``fairness.groups[0].count``; the union branch names pydantic adds are left out."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("schema_",):
            out += ".schema" if out else "schema"
        elif "[" in str(part) or str(part)[:1].isupper() or str(part) in ("function-after", "function-before"):
            continue                   # e.g. 'function-after[...]' or a model name of a union branch
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def problems(exc: ValidationError) -> list[str]:
    """Each validation error in a few words: ``missing model.training_fit``, ``unknown key data.extra``,
    ``invalid status ('done': Input should be 'pass', ...)``."""
    out = []
    for e in exc.errors():
        where = _where(tuple(e["loc"]))
        if e["type"] == "missing":
            text = f"missing {where}"
        elif e["type"] == "extra_forbidden":
            text = f"unknown key {where}"
        else:
            text = f"invalid {where} ({e['msg'].removeprefix('Value error, ')})"
        if text not in out:
            out.append(text)
    return out


def load_run(source: str | PathLike | Mapping) -> RunDocument:
    """The run document at ``source`` (the path of a ``run.json``, or the parsed dict) validated against the
    ``auditkit.run/1`` schema; an :class:`~auditkit.errors.InputError` in one line naming the fields that are
    missing or invalid (an older or edited run.json)."""
    if isinstance(source, RunDocument):
        return source
    if isinstance(source, Mapping):
        name, doc = "the run document", dict(source)
    else:
        path = Path(source)
        name = repr(str(path))
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"{name} cannot be read as JSON ({type(exc).__name__}): it may have been edited or "
                             "truncated; rerun the audit") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise InputError(f"{name} is not an auditkit run (schema {SCHEMA}): rerun the audit")
    try:
        return RunDocument.model_validate(doc)
    except ValidationError as exc:
        found = problems(exc)
        listed = "; ".join(found[:SHOWN]) + (f"; and {len(found) - SHOWN} more" if len(found) > SHOWN else "")
        raise InputError(f"{name} does not match the run schema {SCHEMA} ({listed}): it was written by another "
                         "auditkit version or edited; rerun the audit (see `auditkit schema --run`)") from None


def findings_of(run: RunDocument | Mapping) -> dict:
    """The machine-readable findings (``findings.json``): the run's :data:`FINDINGS_KEYS`, in that order, as
    JSON, without the configuration's text (``provenance.config_text``) and without ``plugins`` when no
    third-party plugin ran. A dict is validated first."""
    run = load_run(run)
    fields = {"schema_" if k == "schema" else k for k in FINDINGS_KEYS}
    out = run.model_dump(mode="json", by_alias=True, exclude_unset=True, include=fields,
                         exclude={"provenance": {"config_text"}})
    return {k: out[k] for k in FINDINGS_KEYS if k in out and (k != "plugins" or out[k])}   # no empty plugins
