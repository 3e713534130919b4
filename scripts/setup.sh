#!/usr/bin/env bash
# Create .venv (Python >= 3.11) and install axc into it. Usage: scripts/setup.sh [EXTRAS]
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "axc needs Python >= 3.11; set PYTHON=/path/to/python3.11" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".${extras:+[$extras]}"
if [[ ",$extras," == *",dev,"* ]]; then
    # the open-source ap_int headers that HLS csim compiles against ship in the
    # hls4ml wheel; its dependencies are not needed for that
    .venv/bin/python -m pip install -q --no-deps "hls4ml==1.3.0"
fi
