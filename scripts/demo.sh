#!/usr/bin/env bash
# Set up and run the main job on the bundled example: import the digits CNN,
# check and apply its directives, compile, evaluate the result, and run a
# fault-injection campaign on its int8 version, and lower it to a systolic array.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
model=examples/digits/digits_cnn.onnx
directives=examples/digits/d.ax
set -x
.venv/bin/axc show "$model"
.venv/bin/axc check "$model" --directives "$directives"
.venv/bin/axc compile "$model" --directives "$directives" -o build/digits --force
.venv/bin/python examples/digits/evaluate.py build/digits/digits_cnn.axc.json
.venv/bin/axc simulate "$model" --directives examples/digits/quantize.ax --data examples/digits/test.npz
.venv/bin/axc inject "$model" --directives examples/digits/fi.ax --data examples/digits/test.npz --out build/campaign --force
.venv/bin/axc compile "$model" --directives examples/digits/systolic.ax -o build/systolic --force
