"""The math core (auditkit.influence) knows nothing of Dask, backends, configuration, reports or I/O libraries.

Two checks: a fresh interpreter imports auditkit.influence and every module under it and finds no dask or
distributed in sys.modules (nor after ``import auditkit`` and ``import auditkit.backends``, which stay light);
and a static scan of every import statement under auditkit/influence for third-party I/O and cluster libraries.
What the core may import of auditkit itself (its errors, nothing more) is an import-linter contract
(pyproject.toml, checked by tests/test_layers.py).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "auditkit" / "influence"
FORBIDDEN = {"dask", "distributed", "pyarrow", "yaml", "jinja2", "weasyprint", "pandas", "tqdm"}

PROBE = """
import importlib, json, pkgutil, sys
import auditkit.influence as core
names = [m.name for m in pkgutil.walk_packages(core.__path__, "auditkit.influence.")]
for name in names:
    importlib.import_module(name)
after_core = sorted(k for k in sys.modules if k.split(".")[0] in ("dask", "distributed"))
import auditkit, auditkit.backends
after_package = sorted(k for k in sys.modules if k.split(".")[0] in ("dask", "distributed"))
print(json.dumps({"modules": names, "after_core": after_core, "after_package": after_package}))
"""


def test_importing_every_core_module_imports_no_dask():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "auditkit.influence.engine" in result["modules"] and "auditkit.influence.solvers.ekfac" in result["modules"]
    assert result["after_core"] == []
    assert result["after_package"] == []


def _imports(path: Path) -> list[tuple[str, int]]:
    """Absolute module names imported by a file (relative imports resolved against its package)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.append((name, node.lineno))
    return out


def test_no_core_module_imports_dask_or_io_libraries():
    files = sorted(CORE.rglob("*.py"))
    assert len(files) >= 15
    bad = []
    for path in files:
        for name, line in _imports(path):
            if name.split(".")[0] in FORBIDDEN:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert bad == []


def test_the_scan_sees_relative_imports_outside_the_core(tmp_path):
    """The scanner itself: ``from ..backends import X`` in a core module resolves to auditkit.backends."""
    probe = CORE / "solvers" / "base.py"
    names = [n for n, _ in _imports(probe)]
    assert "auditkit.errors" in names and "auditkit.influence.hessian" in names
