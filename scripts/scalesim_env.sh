#!/usr/bin/env bash
# SCALE-Sim v3 in its own virtualenv (.venv-scalesim): it needs numpy 1.x,
# axc needs numpy 2. Used by bench/scalesim_compare.py.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv-scalesim/bin/python ]; then
    python3 -m venv .venv-scalesim
fi
.venv-scalesim/bin/pip install --quiet "numpy==1.26.4" "scalesim==3.0.0"
