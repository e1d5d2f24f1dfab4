"""Safe, bounded YAML for every file auditkit reads (``audit.yaml``, policies).

:class:`UniqueKeyLoader` is ``yaml.SafeLoader`` (plain scalars, lists and mappings only: a ``!!python/...`` tag
is an error, never an object) that also refuses a key given twice in one mapping, where ``safe_load`` would
silently keep the last value (``seed: 0`` then ``seed: 1`` must not quietly mean ``seed: 1``).

It is bounded, so that no file can hang or crash the reader (a :class:`YAMLLimitError` names the limit):

- the text is at most ``MAX_CHARS`` characters (an audit configuration or a policy is a few kilobytes);
- lists and mappings nest at most ``MAX_DEPTH`` levels (5,000 nested ``[`` would exhaust Python's stack);
- at most ``MAX_ALIASES`` aliases (``*name``), and the document expanded (every alias replaced by what it names)
  has at most ``MAX_NODES`` nodes: a "billion laughs" file (aliases of aliases of aliases, a few hundred bytes
  that expand to 10^9 values) is refused before anything renders or walks the expanded value.
"""

from __future__ import annotations

import yaml

MAX_CHARS = 1 << 20
MAX_DEPTH = 64
MAX_ALIASES = 256
MAX_NODES = 100_000


class YAMLLimitError(yaml.MarkedYAMLError):
    """The document exceeds one of the reader's bounds (size, depth, aliases, expanded size)."""


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also refuses a key given twice in the same mapping, and documents beyond the
    module's bounds; ``hint`` follows the problem in the error (empty when the caller's message gives the fix
    itself)."""

    hint = ": give each key once"

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise YAMLLimitError(None, None, f"more than {MAX_ALIASES} aliases (*name): write the values out",
                                     self.peek_event().start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YAMLLimitError(None, None, f"lists and mappings nested more than {MAX_DEPTH} levels deep: "
                                     "flatten the document", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None and expanded_size(node) > MAX_NODES:
            problem = (f"the document expands to more than {MAX_NODES:,} values (aliases of aliases): write the "
                       "values out" if self._aliases else f"the document holds more than {MAX_NODES:,} values: is "
                       "it the right file?")
            raise YAMLLimitError(None, None, problem, node.start_mark)
        return node

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key '{key}' given twice{self.hint}",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def expanded_size(root: yaml.Node) -> int:
    """Nodes of the document with every alias expanded (a node reached twice counts twice), computed once per
    distinct node, in post-order without recursion; stops counting past ``MAX_NODES``."""
    sizes: dict[int, int] = {}
    stack = [(root, False)]
    while stack:
        node, ready = stack.pop()
        if id(node) in sizes:
            continue
        children = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
                    else list(node.value) if isinstance(node, yaml.SequenceNode) else [])
        if ready or not children:
            sizes[id(node)] = min(MAX_NODES + 1, 1 + sum(sizes[id(c)] for c in children))
        else:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def safe_load(text: str):
    """Parse YAML text with :class:`UniqueKeyLoader`; raises ``yaml.YAMLError`` on bad syntax, a Python tag,
    a duplicate key or a document beyond the bounds (:class:`YAMLLimitError`)."""
    if len(text) > MAX_CHARS:
        raise YAMLLimitError(None, None, f"{len(text):,} characters, more than the {MAX_CHARS:,} a configuration "
                             "may have: is it the right file?")
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
