"""The layers of the package, stated as import-linter contracts in pyproject.toml and checked by `lint-imports`:
influence ← audits ← runner ← cli/report; plugins never import the report, the policy or the runner; the math
core imports nothing of auditkit but its errors; the stability check knows no plugin."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:          # Python 3.10: the backport import-linter itself uses
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("importlinter", reason="import-linter is in the dev extra: pip install -e '.[dev]'")


def lint_imports(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    return subprocess.run([exe, "--no-cache", *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "PATH": str(Path(sys.executable).parent)})


def contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_every_contract_is_kept():
    out = lint_imports()
    assert out.returncode == 0, out.stdout + out.stderr
    for contract in contracts():
        assert f"{contract['name']} KEPT" in out.stdout


def test_a_broken_contract_is_reported(tmp_path):
    """The check can fail: the runner does import the plugins, so a contract forbidding it is broken."""
    config = tmp_path / "broken.toml"
    config.write_text('[tool.importlinter]\nroot_package = "auditkit"\n\n[[tool.importlinter.contracts]]\n'
                      'name = "runner without plugins"\ntype = "forbidden"\nsource_modules = ["auditkit.runner"]\n'
                      'forbidden_modules = ["auditkit.audits"]\n')
    out = lint_imports("--config", str(config))
    assert out.returncode == 1 and "runner without plugins BROKEN" in out.stdout


def test_the_math_core_contract_names_every_other_module():
    """A module added to auditkit is forbidden to the math core unless it is the errors module."""
    [core] = [c for c in contracts() if c.get("source_modules") == ["auditkit.influence"]]
    package = ROOT / "auditkit"
    modules = {f"auditkit.{p.stem}" for p in package.glob("*.py") if p.stem not in ("__init__", "__main__",
                                                                                      "_version")}
    modules |= {f"auditkit.{p.parent.name}" for p in package.glob("*/__init__.py")}
    assert set(core["forbidden_modules"]) == modules - {"auditkit.errors", "auditkit.influence"}
