#!/usr/bin/env bash
# Set up and run the whole test suite (slow tests included), with lint and type checks.
#
# The suite runs on AXC_TEST_WORKERS processes (default 2, pytest-xdist; a test
# file's tests stay together on one), then the tests marked `alone` (timed
# ones) one at a time with the machine to themselves. Extra arguments go to
# both pytest runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/tools.sh
bash scripts/setup.sh dev
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
pytest=(.venv/bin/python -m pytest -q -p no:cacheprovider -W ignore::DeprecationWarning)
set +e
"${pytest[@]}" -n "${AXC_TEST_WORKERS:-2}" --dist loadfile -m "not alone" "$@"
shared=$?
"${pytest[@]}" -m alone "$@"
alone=$?
set -e
# 5 is pytest's "no test selected": a selection in the arguments may hold
# tests of one kind only
if [ "$shared" = 5 ] && [ "$alone" = 5 ]; then exit 5; fi
for rc in "$shared" "$alone"; do
    if [ "$rc" != 0 ] && [ "$rc" != 5 ]; then exit "$rc"; fi
done
