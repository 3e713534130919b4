"""Held-out accuracy of the digits CNN as axc executes it.

python examples/digits/evaluate.py examples/digits/digits_cnn.onnx
python examples/digits/evaluate.py build/digits/digits_cnn.axc.json --json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

import axc

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="an .onnx model or an axc IR file (.axc.json)")
    parser.add_argument("--data", default=str(HERE / "test.npz"), help="npz with x and y")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        graph = (
            axc.read_ir(args.model) if args.model.endswith(".axc.json") else axc.load(args.model)
        )
    except axc.UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    data = np.load(args.data)
    logits = next(iter(axc.simulate(graph, data["x"]).values()))
    accuracy = float((logits.argmax(1) == data["y"]).mean())
    if args.json:
        print(json.dumps({"model": args.model, "images": len(data["y"]), "accuracy": accuracy}))
    else:
        print(f"{args.model}: held-out accuracy {accuracy:.4f} on {len(data['y'])} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
