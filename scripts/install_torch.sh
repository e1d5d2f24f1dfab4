#!/usr/bin/env bash
# Install torch (the version pinned in constraints.txt) as a CPU build into the environment of PYTHON
# (first argument, default .venv/bin/python), unless that environment already imports torch. A CPU build,
# so that nothing pulls several GB of CUDA libraries:
#   1. torch==X+cpu from a local wheel or an index pip is already configured with;
#   2. the same from PyTorch's CPU index (Linux without a local wheel);
#   3. plain torch==X from PyPI (macOS and Windows, where PyPI's wheel is the CPU build).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python=${1:-.venv/bin/python}
version=$(sed -n 's/^torch==\([^ #]*\).*/\1/p' "$root/constraints.txt")
[ -n "$version" ] || { echo "auditkit: constraints.txt has no line torch==VERSION" >&2; exit 2; }
if "$python" -c "import torch" 2>/dev/null; then exit 0; fi
pip=("$python" -m pip -q --disable-pip-version-check)
echo "auditkit: installing a CPU build of torch $version into $("$python" -c 'import sys; print(sys.prefix)')" >&2
"${pip[@]}" install "torch==$version+cpu" 2>/dev/null \
  || "${pip[@]}" install --retries 1 --index-url https://download.pytorch.org/whl/cpu \
       --extra-index-url https://pypi.org/simple "torch==$version+cpu" 2>/dev/null \
  || "${pip[@]}" install "torch==$version"
