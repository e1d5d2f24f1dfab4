"""The built wheel installs into a clean virtual environment and its ``auditkit`` command audits an example
copied out of the repository.

Marked ``packaging``: the default test run leaves it out (it creates a virtual environment and installs every
dependency, a minute or two); ``.ci/run`` runs it after ``make test`` (``pytest -m packaging``). Needs the
package index pip is configured with (the dependencies) and, for torch, what scripts/install_torch.sh uses.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
import yaml
from report_fixtures import pdf_text

ROOT = Path(__file__).resolve().parents[1]
VERSION = re.search(r'__version__ = "([^"]+)"', (ROOT / "auditkit/_version.py").read_text()).group(1)

pytestmark = pytest.mark.packaging


def sh(*args, cwd=None, timeout=900) -> str:
    """Run a command with no PYTHONPATH (nothing may come from the source tree); its stdout, or fail."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args}: exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built (pip, isolated build) from a copy of the files pyproject.toml packages."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "auditkit", src / "auditkit", ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path_factory.mktemp("dist")
    sh(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, src)
    (built,) = dist.glob("auditkit-*.whl")
    return built


def test_wheel_holds_templates_policies_marker_and_license(wheel):
    assert wheel.name == f"auditkit-{VERSION}-py3-none-any.whl"
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {p.name for p in (ROOT / "auditkit/report/templates").iterdir()}
    policies = {p.name for p in (ROOT / "auditkit/policies").iterdir()}
    assert templates and {n.removeprefix("auditkit/report/templates/") for n in names
                          if n.startswith("auditkit/report/templates/")} == templates
    assert policies and {n.removeprefix("auditkit/policies/") for n in names if n.startswith("auditkit/policies/")} \
        == policies
    assert "auditkit/py.typed" in names
    meta = zipfile.ZipFile(wheel).read(f"auditkit-{VERSION}.dist-info/METADATA").decode()
    assert f"\nVersion: {VERSION}\n" in meta and "\nLicense-Expression: Apache-2.0\n" in meta
    assert zipfile.ZipFile(wheel).read(f"auditkit-{VERSION}.dist-info/licenses/LICENSE") \
        == (ROOT / "LICENSE").read_bytes()
    assert not any(n.startswith(("tests/", "examples/", "benchmarks/")) for n in names)


def test_installed_wheel_audits_an_example_outside_the_repository(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python, auditkit = env_dir / "bin/python", env_dir / "bin/auditkit"
    sh(ROOT / "scripts/install_torch.sh", python)
    sh(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-c", ROOT / "constraints.txt", wheel)
    where = sh(python, "-c", "import auditkit, importlib.metadata as m; "
                             "print(auditkit.__file__, auditkit.__version__, m.version('auditkit'))", cwd=tmp_path)
    path, version, meta_version = where.split()
    assert Path(path).is_relative_to(env_dir) and version == meta_version == VERSION

    # the heart-disease example, its builder imported from the example's own folder (not the repository)
    example = tmp_path / "heart_disease"
    shutil.copytree(ROOT / "examples/heart_disease", example, ignore=shutil.ignore_patterns("output", "__pycache__"))
    config = yaml.safe_load((example / "audit.yaml").read_text())
    config["model"]["builder"] = "model:build"
    config["audits"]["fairness"]["bootstrap"] = 200
    (example / "audit.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run([auditkit, "run", "audit.yaml", "--out", "report", "--quiet"], cwd=example, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    pdf = example / "report/report.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    text = pdf_text(pdf)
    assert "Page 1 of" in text and f"auditkit version {VERSION}" in " ".join(text.split())
