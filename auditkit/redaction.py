"""Record identifiers kept out of the report's copy of the configuration.

The report's provenance annex prints the configuration file as used. A configuration can name records: the
fairness audit's ``explain.records`` lists test-record ids, and a comment or a free-text field may quote one.
:func:`redact_record_ids` returns the text with every such id replaced by the record's random token (the one
the report uses for it, so the annex still says which records were explained):

- every scalar of a list under a key named ``records`` (whatever its YAML type: ``[17, 18]`` are ids too);
- every occurrence, anywhere in the text (comments included), of any value of the id column, whatever its type:
  an id that is a number (``10234``, ``007``) is replaced where it stands as a whole number (not inside a longer
  number, a word or a decimal such as ``1.5``); other ids wherever they occur. A number of the configuration that
  happens to equal an id (a band edge ``40`` when a record's id is ``40``) is replaced too: an id is never shown,
  whatever else the number means.

Only the report's copy changes: ``provenance.hashes.config`` is still the SHA-256 of the file as written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import yaml

from .yamlload import UniqueKeyLoader

WITHHELD = "<record id>"
NUMBER = re.compile(r"^[+-]?\d+(\.\d*)?$")
#: a whole number standing alone in text: not preceded by a word character, a point or a hyphen (so not inside
#: ``1.5``, ``x17`` or a token ``R-…``), not followed by a word character or a decimal part
WHOLE = r"(?<![\w.\-]){}(?!\w|\.\d)"
NUMBERS = re.compile(WHOLE.format(r"[+-]?\d+(?:\.\d+)?"))


def _records_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, value) of every scalar in a sequence under a mapping key ``records``."""
    try:
        root = yaml.compose(text, Loader=UniqueKeyLoader)
    except yaml.YAMLError:
        return []
    spans, stack = [], [root]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == "records" and isinstance(value, yaml.SequenceNode):
                    spans += [(v.start_mark.index, v.end_mark.index, v.value) for v in value.value
                              if isinstance(v, yaml.ScalarNode)]
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return spans


def redact_record_ids(text: str, splits: Mapping, token: Callable[[str, int], str]) -> str:
    """``text`` with the record ids it names replaced by their tokens. ``splits`` maps split names to data with
    an ``ids`` array (test first when an id is in several); ``token(split, position)`` is the run's token.
    One pass over the ids, keeping only those the text names (no map of every id is built)."""
    spans = _records_spans(text)
    named = {value for _, _, value in spans}
    numbers = set(NUMBERS.findall(text))
    located: dict[str, tuple[str, int]] = {}
    for name in sorted(splits, key=lambda k: k != "test"):
        for position, rid in enumerate(splits[name].ids):
            rid = str(rid)
            anywhere = rid in numbers if NUMBER.match(rid) else (rid and rid in text)
            if rid not in located and (rid in named or anywhere):
                located[rid] = (name, position)

    def replacement(rid: str) -> str:
        return token(*located[rid]) if rid in located else WITHHELD

    out = text
    for start, end, value in sorted(spans, reverse=True):
        if value in located:
            out = out[:start] + replacement(value) + out[end:]
    for rid in sorted((i for i in located if not NUMBER.match(i) and i in out), key=len, reverse=True):
        out = out.replace(rid, replacement(rid))
    for rid in sorted((i for i in located if NUMBER.match(i)), key=len, reverse=True):
        out = re.sub(WHOLE.format(re.escape(rid)), lambda _m, rid=rid: replacement(rid), out)
    return out
