"""Record identifiers kept out of the report's copy of the configuration.

The report's provenance annex prints the configuration file as used. A configuration can name records: the
fairness audit's ``explain.records`` lists test-record ids, and a comment or a free-text field may quote one.
:func:`redact_record_ids` returns the text with every such id replaced by the record's random token (the one
the report uses for it, so the annex still says which records were explained):

- every scalar of a list under a key named ``records`` (whatever its YAML type: ``[17, 18]`` are ids too);
- every other occurrence in the text (comments, quoted or free text) of any value of the id column, whatever
  its type: an id that is a number (``10234``, ``007``) where it stands as a whole number (not inside a longer
  number, a word, a token or a decimal such as ``1.5``: "patient 10234", "(10234)" and "10234." are replaced);
  other ids wherever they occur.

The one exception is a setting's own number: a plain YAML number that is a key or a value of the configuration
(``bootstrap: 500``, ``bands: [55]``, ``n_features: 39``) is a setting, not a reference to a record, and stays as
written even when a record has that id (ids 1, 2, 3, ... are common). Anywhere else, a number equal to an id is
replaced, whatever else it may mean.

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
NUMERIC_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


def _scan(text: str) -> tuple[list[tuple[int, int, str]], list[tuple[int, int]]]:
    """``(records, settings)``: (start, end, value) of every scalar in a sequence under a mapping key ``records``,
    and (start, end) of every other plain numeric scalar (a setting's own number). Empty for text that is not
    YAML."""
    try:
        root = yaml.compose(text, Loader=UniqueKeyLoader)
    except yaml.YAMLError:
        return [], []
    records, settings, stack = [], [], [(root, False)]
    while stack:
        node, under_records = stack.pop()
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                named = isinstance(key, yaml.ScalarNode) and key.value == "records"
                stack += [(key, False), (value, named and isinstance(value, yaml.SequenceNode))]
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((child, under_records) for child in node.value)
        elif isinstance(node, yaml.ScalarNode):
            span = (node.start_mark.index, node.end_mark.index)
            if under_records:
                records.append((*span, node.value))
            elif node.style is None and node.tag in NUMERIC_TAGS:
                settings.append(span)
    return records, settings


def redact_record_ids(text: str, splits: Mapping, token: Callable[[str, int], str]) -> str:
    """``text`` with the record ids it names replaced by their tokens. ``splits`` maps split names to data with
    an ``ids`` array (test first when an id is in several); ``token(split, position)`` is the run's token.
    One pass over the ids, keeping only those the text names (no map of every id is built)."""
    records, settings = _scan(text)
    taken = sorted((start, end) for start, end, _ in records) + settings

    def free(start: int, end: int) -> bool:
        return not any(s < end and start < e for s, e in taken)

    numbers = [(m.start(), m.end(), m.group(0)) for m in NUMBERS.finditer(text) if free(m.start(), m.end())]
    named = {value for _, _, value in records}
    in_text = {value for _, _, value in numbers}
    located: dict[str, tuple[str, int]] = {}
    for name in sorted(splits, key=lambda k: k != "test"):
        for position, rid in enumerate(splits[name].ids):
            rid = str(rid)
            anywhere = rid in in_text if NUMBER.match(rid) else bool(rid) and rid in text
            if rid not in located and (rid in named or anywhere):
                located[rid] = (name, position)

    def replacement(rid: str) -> str:
        return token(*located[rid]) if rid in located else WITHHELD

    edits = [(start, end, value) for start, end, value in records + numbers if value in located]
    out = text
    for start, end, value in sorted(edits, reverse=True):
        out = out[:start] + replacement(value) + out[end:]
    for rid in sorted((i for i in located if not NUMBER.match(i) and i in out), key=len, reverse=True):
        out = out.replace(rid, replacement(rid))
    return out
