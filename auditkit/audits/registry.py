"""Audit plugins found by registered name through the ``auditkit.audits`` entry-point group.

Built-in plugins register the same way as third-party ones (see ``pyproject.toml``). Nothing here imports
a module named by a configuration or a policy: only names that an installed distribution registered.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from pydantic import ValidationError

from ..errors import InputError, shown
from .base import AuditContext, AuditPlugin, InfluenceRequests

ENTRY_POINT_GROUP = "auditkit.audits"


def available_plugins() -> list[str]:
    """Names of the installed audit plugins."""
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def load_plugin(name: str) -> type[AuditPlugin]:
    """The plugin class registered as ``name``."""
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not found:
        raise InputError(f"audit plugin {name!r} is not installed: available plugins are {available_plugins()} "
                         f"(plugins register under the {ENTRY_POINT_GROUP!r} entry-point group)")
    plugin = found[0].load()
    if not (isinstance(plugin, type) and issubclass(plugin, AuditPlugin)):
        raise InputError(f"entry point {name!r} in group {ENTRY_POINT_GROUP!r} is not an AuditPlugin subclass")
    return plugin


def validate_options(plugin: type[AuditPlugin], options: dict | None):
    """The plugin's options, validated; an error names the first bad key and what was wrong."""
    try:
        return plugin.Options.model_validate(options or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "options"
        raise InputError(f"options of audit {plugin.name!r}: {where}: {first['msg']} "
                         f"(got {shown(first.get('input'))})") from None


def run_plugin(name: str, context: AuditContext, options: dict | None = None):
    """Run the plugin registered as ``name`` with its validated ``options``; returns its findings."""
    plugin = load_plugin(name)
    return plugin().run(context, validate_options(plugin, options))


def follow_up_plugin(name: str, context: AuditContext, options: dict | None, findings: dict,
                     flagged_checks: list[dict]) -> dict:
    """``follow_up`` of the plugin registered as ``name`` with its validated ``options``: its findings completed
    with the policy checks that warn or fail."""
    plugin = load_plugin(name)
    return plugin().follow_up(context, validate_options(plugin, options), findings, flagged_checks)


def prefetch(context: AuditContext, options_by_plugin: dict[str, dict | None]) -> InfluenceRequests:
    """Ask each plugin named in ``options_by_plugin`` for its influence plan and answer all of them with ONE
    streamed pass over the training gradients (``AuditContext.prefetch``); run before the plugins."""
    requests = InfluenceRequests()
    for name, options in options_by_plugin.items():
        plugin = load_plugin(name)
        requests.merge(plugin().plan(context, validate_options(plugin, options)))
    context.prefetch(requests)
    return requests
