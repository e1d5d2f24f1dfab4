"""Safe YAML for every file auditkit reads (``audit.yaml``, policies).

:class:`UniqueKeyLoader` is ``yaml.SafeLoader`` (plain scalars, lists and mappings only: a ``!!python/...`` tag
is an error, never an object) that also refuses a key given twice in one mapping, where ``safe_load`` would
silently keep the last value (``seed: 0`` then ``seed: 1`` must not quietly mean ``seed: 1``).
"""

from __future__ import annotations

import yaml


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also refuses a key given twice in the same mapping; ``hint`` follows the problem
    in the error (empty when the caller's message gives the fix itself)."""

    hint = ": give each key once"

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key '{key}' given twice{self.hint}",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def safe_load(text: str):
    """Parse YAML text with :class:`UniqueKeyLoader`; raises ``yaml.YAMLError`` on bad syntax, a Python tag or
    a duplicate key."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
