"""Policies: YAML rules → checks → pass / warn / fail / insufficient data (pure apart from reading the file).

::

    policy = load_policy("builtin:nyc-ll144-impact-ratio")     # or a path to a YAML file
    check_metrics_available(policy, {"fairness", "privacy"})   # InputError before running, if a plugin is missing
    checks = evaluate(policy, observations(run), previous=previous_run)
    status = overall_status(checks)                            # pass | pass_with_warnings | fail | incomplete

The file format and the metric catalogue are documented in ``auditkit/policies/README.md``; the rules of
decision in :mod:`auditkit.policy.evaluate`; the metric ids in :mod:`auditkit.policy.observations`.
"""

from __future__ import annotations

from collections.abc import Iterable

from auditkit.errors import InputError

from .evaluate import Check, bound_text, evaluate, meaning, overall_status
from .observations import CATALOGUE, Observation, canonical_metric, metric_info, observations
from .rules import Policy, Rule, builtin_policies, load_policy, parse_policy, policy_sha256

PLUGINS = ("fairness", "privacy", "data_quality", "influence")


def required_plugins(policy: Policy) -> set[str]:
    """Producers the policy's metrics need: ``fairness``, ``privacy``, ``data_quality`` (plugins) and
    ``influence`` (the stability / retraining trust step of the run)."""
    return {metric_info(r.metric)[1] for r in policy.rules}


def check_metrics_available(policy: Policy, enabled_plugins: Iterable[str]) -> None:
    """Raise :class:`InputError` (one line) for the first rule whose metric no enabled producer gives."""
    enabled = set(enabled_plugins)
    for rule in policy.rules:
        plugin = metric_info(rule.metric)[1]
        if plugin not in enabled:
            fix = ("enable the stability check of the influence estimates" if plugin == "influence"
                   else f"enable the {plugin} plugin in the configuration")
            raise InputError(f"policy {policy.source or policy.name}: rule '{rule.id}': metric {rule.metric} "
                             f"needs {plugin}, which this audit does not run; {fix} or remove the rule")


__all__ = [
    "CATALOGUE",
    "Check",
    "Observation",
    "PLUGINS",
    "Policy",
    "Rule",
    "bound_text",
    "builtin_policies",
    "canonical_metric",
    "check_metrics_available",
    "evaluate",
    "load_policy",
    "meaning",
    "metric_info",
    "observations",
    "overall_status",
    "parse_policy",
    "policy_sha256",
    "required_plugins",
]
