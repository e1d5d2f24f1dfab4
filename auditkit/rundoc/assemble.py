"""The run document assembled from what the runner computed: the built-in plugins' findings validated by
their models, each third-party plugin's findings through its ``findings_model`` (or kept free-form) under
``plugins``."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError

from ..errors import InputError
from .document import RunDocument
from .load import problems


def plugin_findings(name: str, findings: dict) -> dict:
    """A third-party plugin's JSON-safe findings, validated by its ``findings_model`` when it declares one (an
    :class:`~auditkit.errors.InputError` naming what does not match); kept as they are otherwise."""
    from ..audits import registry  # plugins are found (and imported) only when a run has third-party findings

    model = registry.load_plugin(name).findings_model
    if model is None:
        return findings
    try:
        return model.model_validate(findings).model_dump(mode="json", exclude_unset=True)
    except ValidationError as exc:
        raise InputError(f"audit plugin {name!r}: its findings do not match its findings_model "
                         f"{model.__name__} ({'; '.join(problems(exc)[:3])}): fix the plugin") from None


def run_document(run: Mapping) -> RunDocument:
    """The :class:`RunDocument` of the runner's JSON-safe ``run`` dict, whose third-party plugins' findings
    sit beside the built-in ones at the top level: they move under ``plugins``."""
    doc = dict(run)
    plugins = {}
    for name in [k for k in doc if k not in RunDocument.model_fields and k != "schema"]:
        found = doc.pop(name)
        if found is not None:
            plugins[name] = plugin_findings(name, found)
    if plugins:
        doc["plugins"] = {**doc.get("plugins", {}), **plugins}
    return RunDocument.model_validate(doc)
