"""No import circle anywhere inside ``auditkit/``: the graph of which module imports which (every ``import``
and ``from ... import`` statement, at module level or inside a function, relative imports resolved) has no
cycle. A circle makes the import order decide what works and hides which layer depends on which.

The layer contracts themselves (influence ← audits ← runner ← cli/report) are stated elsewhere; this test
only forbids circles. ``from pkg import name`` counts as an import of ``pkg.name`` when that is a module,
else of ``pkg``; a module importing its own package (``from . import x`` in ``pkg/__init__``) is no edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]


def modules(root: Path, package: str = "auditkit") -> dict[str, Path]:
    """Dotted module name → file, for every ``.py`` file under ``root/package``."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of ``known`` that module ``name`` (its file ``path``) imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets += [f"{source}.{a.name}" if f"{source}.{a.name}" in known else source for a in node.names]
    out = set()
    for target in targets:
        while target and target not in known:      # auditkit.report.fmt.pct → auditkit.report.fmt
            target = target.rpartition(".")[0]
        if target and target != name:
            out.add(target)
    return out


def import_graph(root: Path, package: str = "auditkit") -> nx.DiGraph:
    known = modules(root, package)
    graph = nx.DiGraph()
    graph.add_nodes_from(known)
    graph.add_edges_from((name, t) for name, path in known.items() for t in imported(name, path, known))
    return graph


def circles(graph: nx.DiGraph) -> list[str]:
    """One cycle, as "a → b → a", per strongly connected group of more than one module."""
    out = []
    for group in nx.strongly_connected_components(graph):
        if len(group) > 1:
            cycle = [a for a, _ in nx.find_cycle(graph.subgraph(group))]
            out.append(" → ".join(cycle + cycle[:1]))
    return sorted(out)


def test_no_import_circle_in_auditkit():
    graph = import_graph(ROOT)
    assert graph.number_of_nodes() > 60 and graph.has_edge("auditkit.report.document", "auditkit.report.blocks")
    assert circles(graph) == []


def test_the_check_finds_a_circle_through_a_relative_import_inside_a_function(tmp_path):
    """The scanner itself, on a throw-away package: a → b at module level, b → a lazily inside a function,
    plus an acyclic c; the circle a → b → a is found, c is not part of it."""
    pkg = tmp_path / "auditkit" / "sub"
    pkg.mkdir(parents=True)
    (tmp_path / "auditkit" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from .c import value\n")
    (pkg / "a.py").write_text("from .b import f\n")
    (pkg / "b.py").write_text("def f():\n    from auditkit.sub import a\n    return a\n")
    (pkg / "c.py").write_text("import auditkit.sub.b\nvalue = 1\n")
    found = circles(import_graph(tmp_path))
    assert found in (["auditkit.sub.a → auditkit.sub.b → auditkit.sub.a"],
                     ["auditkit.sub.b → auditkit.sub.a → auditkit.sub.b"])
