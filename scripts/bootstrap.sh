#!/usr/bin/env bash
# Check the system libraries and fonts the PDF report needs (auditkit/system.py: it names the packages to
# install), then create .venv when it is missing and install auditkit into it (editable, with the dev extra).
# torch is installed first, as a CPU build of the version in constraints.txt (scripts/install_torch.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
"$PY" -c "import runpy; runpy.run_path('auditkit/system.py', run_name='__main__')" || {
  echo "auditkit: install the system packages above, then run make again" >&2; exit 1; }
stamp="$VENV/.auditkit-installed"
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt constraints.txt ]; then exit 0; fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
./scripts/install_torch.sh "$VENV/bin/python"
echo "auditkit: installing auditkit and its dependencies into $VENV" >&2
"$VENV/bin/python" -m pip -q --disable-pip-version-check install -c constraints.txt -e ".[dev]"
touch "$stamp"
