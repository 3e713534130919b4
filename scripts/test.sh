#!/usr/bin/env bash
# Set up and run the whole test suite (slow tests included), with lint and type checks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/tools.sh
bash scripts/setup.sh dev
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest -q -p no:cacheprovider -W ignore::DeprecationWarning "$@"
