#!/usr/bin/env bash
# Build the peers' own virtual environment at benchmarks/peers/.venv (git-ignored), separate from
# auditkit's .venv: pyDVL pins numpy<2, kronfluence/dattri would otherwise drag a CUDA torch.
#   1. torch==2.13.0 CPU first (local wheel / configured index, then PyTorch's CPU index, then PyPI),
#      exactly as scripts/bootstrap.sh does for auditkit;
#   2. pydvl[influence] (its influence module imports dask.distributed), kronfluence, dattri, captum with `-c constraints` pinning torch==2.13.0;
#   3. torchvision uninstalled if something dragged it in (none of the benchmarks needs it);
#   4. the installed versions written to benchmarks/peers/.venv/versions.json.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip -q --disable-pip-version-check)
"${pip[@]}" install --upgrade pip setuptools wheel >/dev/null 2>&1 || true
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "peers: installing a CPU build of torch into $VENV" >&2
  "${pip[@]}" install "torch==2.13.0+cpu" 2>/dev/null \
    || "${pip[@]}" install --retries 1 --index-url https://download.pytorch.org/whl/cpu \
         --extra-index-url https://pypi.org/simple "torch==2.13.0+cpu" 2>/dev/null \
    || "${pip[@]}" install "torch==2.13.0"
fi
TORCH_VERSION=$("$VENV/bin/python" -c "import torch; print(torch.__version__)")
CONS="$VENV/constraints.txt"
printf 'torch==%s\n' "$TORCH_VERSION" > "$CONS"
# Each peer separately, so that one failing does not stop the others; failures are recorded.
: > "$VENV/install-failures.txt"
for pkg in ${PEERS:-"pydvl[influence]" kronfluence dattri captum}; do
  echo "peers: installing $pkg (torch constrained to $TORCH_VERSION)" >&2
  if ! "${pip[@]}" install -c "$CONS" "$pkg" 2> "$VENV/install-${pkg%%[*}.log"; then
    echo "peers: $pkg FAILED to install, see $VENV/install-$pkg.log" >&2
    echo "$pkg" >> "$VENV/install-failures.txt"
  fi
done
if "$VENV/bin/python" -m pip show torchvision >/dev/null 2>&1; then
  echo "peers: uninstalling torchvision (dragged in)" >&2
  "${pip[@]}" uninstall -y torchvision
fi
"$VENV/bin/python" - <<'PY' > "$VENV/versions.json"
import json, importlib.metadata as md, sys
names = ["torch", "numpy", "scipy", "dask", "distributed", "pydvl", "kronfluence", "dattri", "captum", "torchvision"]
out = {"python": sys.version.split()[0]}
for n in names:
    try:
        out[n] = md.version(n)
    except md.PackageNotFoundError:
        out[n] = None
print(json.dumps(out, indent=1))
PY
cat "$VENV/versions.json" >&2
