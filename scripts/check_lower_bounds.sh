#!/usr/bin/env bash
# Check the lower bounds of auditkit's direct dependencies: install the lowest versions pyproject.toml allows
# that resolve together with Python wheels only (uv's --resolution lowest-direct; transitive dependencies at
# their newest) into a throwaway virtual environment, then run the tests that touch them.
# torch stays at the version of constraints.txt (a CPU build): older torch wheels from PyPI are multi-GB CUDA
# builds, so the torch bound is checked at that version only.
#
# Usage: scripts/check_lower_bounds.sh [VENV]    (default /tmp/auditkit-lowest; PYTHON=python3.11 to choose)
# Prints the versions installed and pytest's result; benchmarks/results/lower_bounds.md records a run.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-/tmp/auditkit-lowest}
PY=${PYTHON:-python3}
TESTS=(
  tests/report                        # jinja2, matplotlib, weasyprint, pypdf: rendering the report
  tests/test_config.py                # pydantic, pyyaml
  tests/test_data.py                  # pandas, numpy, pyarrow (parquet)
  tests/audits/test_fairness_metrics.py tests/audits/test_fairness_plugin.py   # fairlearn, scikit-learn
  tests/influence/test_engine.py tests/influence/test_arnoldi_ekfac.py        # torch, scipy, threadpoolctl
  tests/models/test_sklearn.py        # scikit-learn models converted to torch
  tests/cli/test_writer.py tests/cli/test_system.py                           # sqlalchemy (history store)
)

if [ -e "$VENV" ] && [ ! -f "$VENV/.auditkit-lowest" ]; then
  echo "auditkit: $VENV exists and was not made by this script: give another folder" >&2; exit 2
fi
rm -rf "$VENV"
"$PY" -m venv "$VENV"
touch "$VENV/.auditkit-lowest"
py="$VENV/bin/python"
pip=("$py" -m pip -q --disable-pip-version-check)
./scripts/install_torch.sh "$py"
"${pip[@]}" install uv

# The direct dependencies (with the parquet extra's pyarrow) except torch: compiling torch's PyPI metadata
# would list its CUDA libraries. Their lowest versions that resolve together; transitive ones at their newest.
"$py" -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(d for d in p["dependencies"] + p["optional-dependencies"]["parquet"] if not d.startswith("torch")))' \
  > "$VENV/direct.txt"
"$VENV/bin/uv" pip compile -q "$VENV/direct.txt" --resolution lowest-direct --only-binary :all: --python "$py" \
  -o "$VENV/lowest.txt"
if grep -iqE '^(torch|triton|nvidia|cuda)' "$VENV/lowest.txt"; then
  echo "auditkit: the resolution pulls torch or CUDA packages; not installing it" >&2; exit 1
fi
"${pip[@]}" install --only-binary :all: -r "$VENV/lowest.txt"
"${pip[@]}" install --only-binary :all: -c "$VENV/lowest.txt" pytest hypothesis pypdf

echo "--- direct dependencies installed (python $("$py" -c 'import platform; print(platform.python_version())'))"
"$py" - <<'EOF'
import importlib.metadata as m
import re
import tomllib

deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"] + ["pyarrow"]
for dep in deps:
    name = re.match(r"[A-Za-z0-9_.-]+", dep).group(0)
    print(f"{name:14} {m.version(name):12} (pyproject: {dep})")
EOF
echo "--- tests: ${TESTS[*]}"
PYTHONPATH="$PWD" nice "$py" -m pytest -q -p no:cacheprovider "${TESTS[@]}"
