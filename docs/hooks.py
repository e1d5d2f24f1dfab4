"""MkDocs hooks: the pages that describe code are generated from that code at build time, so they cannot go stale.

- ``<!-- generated: configuration -->`` → every key of ``audit.yaml``, from the JSON Schema of
  :class:`auditkit.config.AuditConfig` (what ``auditkit schema`` prints);
- ``<!-- generated: example-config -->`` → ``examples/heart_disease/audit.yaml`` as it is;
- ``<!-- generated: policies -->`` → the built-in policies of ``auditkit/policies/``, loaded and validated;
- ``<!-- generated: policy-format -->`` → ``auditkit/policies/README.md`` from its "Format" section on;
- ``<!-- generated: report-sections -->``, ``report-verdicts`` → the report's sections and verdicts;
- ``<!-- generated: cli -->`` → ``auditkit --help`` and ``auditkit COMMAND --help``;
- ``benchmarks/*.md`` pages → ``benchmarks/results/*.md``, as the benchmark scripts wrote them.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
import typing
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MARKER = re.compile(r"<!-- generated: ([a-z-]+) -->")


# ---- configuration reference (JSON Schema) ----

def _type(schema: dict, defs: dict) -> str:
    """A JSON Schema type in words: 'string', 'list of number', 'mapping of string to …', 'one of "a", "b"'."""
    if "$ref" in schema:
        return "mapping (keys below)"
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        text = ", or ".join(_type(s, defs) for s in options)
        return text + (", or null" if len(options) < len(schema["anyOf"]) else "")
    if "enum" in schema:
        return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    kind = schema.get("type")
    if kind == "array":
        items = _type(schema.get("items", {}), defs)
        return "list of " + items.replace("mapping (keys below)", "mappings (keys below)")
    if kind == "object":
        values = schema.get("additionalProperties")
        return "mapping" + (f" of string to {_type(values, defs)}" if isinstance(values, dict) and values else "")
    words = {"string": "string", "number": "number", "integer": "integer", "boolean": "true/false"}
    text = words.get(kind, "any value")
    limits = [f"{sign} {schema[key]}" for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"),
                                                      ("maximum", "≤"), ("exclusiveMaximum", "<"))
              if key in schema]
    if "minLength" in schema:
        limits.append("not empty" if schema["minLength"] == 1 else f"at least {schema['minLength']} characters")
    if "pattern" in schema:
        limits.append(f"matching `{schema['pattern']}`")
    return text + (f" ({', '.join(limits)})" if limits else "")


def _target(schema: dict, defs: dict) -> dict | None:
    """The object definition a property leads to (directly, in a union, or as the items of a list)."""
    for candidate in [schema, *schema.get("anyOf", []), schema.get("items", {})]:
        if "$ref" in candidate:
            return defs[candidate["$ref"].split("/")[-1]]
    return None


def _field(model, name: str):
    """The pydantic field of ``model`` whose name or alias is ``name`` (None when ``model`` is unknown)."""
    fields = getattr(model, "model_fields", {})
    return next((f for key, f in fields.items() if name in (key, f.alias)), None)


def _submodel(annotation):
    """The pydantic model class inside a field's annotation (``X``, ``X | None``, ``list[X]``), if any."""
    if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
        return annotation
    return next((m for m in map(_submodel, typing.get_args(annotation)) if m is not None), None)


def _default(prop: dict, field) -> str | None:
    """The default in JSON, from the schema or, for a default computed by a factory, from the pydantic field."""
    if "default" in prop:
        value = prop["default"]
    elif field is not None and field.default_factory is not None:
        value = field.default_factory()
        value = [v.model_dump() if hasattr(v, "model_dump") else v for v in value] if isinstance(value, list) else value
    else:
        return None
    return json.dumps(value, ensure_ascii=False)


def _keys(obj: dict, defs: dict, prefix: str, lines: list[str], model=None) -> None:
    required = set(obj.get("required", []))
    nested = []
    for name, prop in obj.get("properties", {}).items():
        key = f"{prefix}{name}"
        target = _target(prop, defs)
        field = _field(model, name)
        default = _default(prop, field)
        facts = [_type(prop, defs)]
        if name in required:
            facts.append("**required**")
        elif default is not None and not (target is not None and default.startswith("{")):
            facts.append(f"default `{default}`")
        else:
            facts.append("optional")
        min_items = prop.get("minItems")
        if min_items:
            facts.append("at least one item" if min_items == 1 else f"at least {min_items} items")
        lines.append(f"- **`{key}`**: {'; '.join(facts)}.")
        if prop.get("description"):
            text = prop["description"].rstrip(".")
            first = text.split(" ", 1)[0]
            if first.isalpha() and first.islower():   # a word, not a value or a code reference
                text = text[0].upper() + text[1:]
            lines.append(f"  {text}.")
        if target is not None:
            submodel = _submodel(field.annotation) if field is not None else None
            nested.append((key + ("[]" if prop.get("type") == "array" else ""), target, submodel))
    for key, target, submodel in nested:
        lines += ["", f"### `{key}`", ""]
        if target.get("description"):
            lines += [target["description"].replace("``", "`"), ""]
        _keys(target, defs, key + ".", lines, submodel)


def configuration_reference() -> str:
    from auditkit.config import AuditConfig, json_schema

    schema = json_schema()
    defs = schema.get("$defs", {})
    lines = ["### Top level", ""]
    _keys(schema, defs, "", lines, AuditConfig)
    return "\n".join(lines) + "\n"


def example_config() -> str:
    text = (ROOT / "examples/heart_disease/audit.yaml").read_text(encoding="utf-8")
    return f"```yaml\n{text.rstrip()}\n```\n"


# ---- policies ----

def builtin_policies() -> str:
    from auditkit.policy import bound_text, builtin_policies, load_policy

    lines = []
    for name in builtin_policies():
        policy = load_policy(f"builtin:{name}")
        lines += [f"### `{name}`", "", f"**{policy.title}**", ""]
        if policy.description:
            lines += [policy.description, ""]
        if policy.flag_budget is not None:
            lines += [f"Privacy flags' false-positive budget: {policy.flag_budget}.", ""]
        if policy.references:
            lines += ["References:", ""] + [f"- {ref}" for ref in policy.references] + [""]
        lines += ["Rules:", ""]
        for rule in policy.rules:
            scope = rule.scope.model_dump(exclude_none=True)
            facts = [f"metric `{rule.metric}`", f"bound {bound_text(rule)}", f"severity `{rule.severity}`"]
            if scope:
                facts.append("scope " + ", ".join(f"{k}: {v}" for k, v in scope.items()))
            if rule.min_n is not None:
                facts.append(f"min_n {rule.min_n}")
            facts += [f"if_straddles `{rule.if_straddles}`", f"when_insufficient `{rule.when_insufficient}`"]
            lines.append(f"- **`{rule.id}`**: {'; '.join(facts)}.")
            if rule.description:
                lines.append(f"  {rule.description}")
            lines.append(f"  Requirement: {rule.requirement}.")
        lines.append("")
    return "\n".join(lines)


def policy_format() -> str:
    text = (ROOT / "auditkit/policies/README.md").read_text(encoding="utf-8")
    start = text.index("## Format")
    return text[start:]


# ---- the report ----

def report_sections() -> str:
    from auditkit.report.document import SECTION_TITLES

    return "\n".join(f"{i}. {title}" for i, (_key, title) in enumerate(SECTION_TITLES, start=1)) + "\n"


def report_verdicts() -> str:
    from auditkit.report.document import STATUS_LABELS

    return "\n".join(f"- **{label}** (`{status}`): {meaning}" for status, (label, meaning) in STATUS_LABELS.items())


# ---- command line ----

def _help(argv: list[str]) -> str:
    from auditkit.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main(argv)
    return out.getvalue().rstrip()


def cli_reference() -> str:
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        top = _help(["--help"])
        commands = re.search(r"\{([\w,-]+)\} \.\.\.", top).group(1).split(",")   # usage: ... {run,validate,...} ...
        parts = ["### `auditkit --help`", "", "```", top, "```", ""]
        for command in commands:
            parts += [f"### `auditkit {command}`", "", "```", _help([command, "--help"]), "```", ""]
    finally:
        if columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = columns
    return "\n".join(parts)


GENERATORS = {"configuration": configuration_reference, "example-config": example_config,
              "policies": builtin_policies, "policy-format": policy_format, "cli": cli_reference,
              "report-sections": report_sections, "report-verdicts": report_verdicts}


def on_page_markdown(markdown, page, config, files):
    def replace(match):
        name = match.group(1)
        if name not in GENERATORS:
            raise ValueError(f"{page.file.src_uri}: unknown generated block {name!r}: use one of {sorted(GENERATORS)}")
        return GENERATORS[name]()

    return MARKER.sub(replace, markdown)


# ---- benchmark results ----

def on_files(files, config):
    for result in sorted((ROOT / "benchmarks/results").glob("*.md")):
        files.append(File.generated(config, f"benchmarks/{result.name}", abs_src_path=str(result)))
    return files
