#!/usr/bin/env bash
# Create .venv when it is missing and install auditkit into it (editable, with the dev extra).
# torch is installed first and as a CPU build, so that nothing pulls several GB of CUDA libraries:
#   1. torch==2.13.0+cpu from a local wheel or an index pip is already configured with;
#   2. the same from PyTorch's CPU index (Linux without a local wheel);
#   3. plain torch==2.13.0 from PyPI (macOS and Windows, where PyPI's wheel is the CPU build).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
stamp="$VENV/.auditkit-installed"
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then exit 0; fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip -q --disable-pip-version-check)
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "auditkit: installing a CPU build of torch into $VENV" >&2
  "${pip[@]}" install "torch==2.13.0+cpu" 2>/dev/null \
    || "${pip[@]}" install --retries 1 --index-url https://download.pytorch.org/whl/cpu \
         --extra-index-url https://pypi.org/simple "torch==2.13.0+cpu" 2>/dev/null \
    || "${pip[@]}" install "torch==2.13.0"
fi
echo "auditkit: installing auditkit and its dependencies into $VENV" >&2
"${pip[@]}" install -e ".[dev]"
touch "$stamp"
