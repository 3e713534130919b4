"""Held-out accuracy of the digits CNN against bit width, as a Markdown table.

    python examples/digits/sweep_bits.py            # the table in examples/digits/README.md
    python examples/digits/sweep_bits.py --json

Each row quantizes every layer with axc's `quantize` pass (symmetric
per-channel weights, asymmetric activations, min-max calibration on
calib.npz) and runs the bit-accurate simulator on the 450 held-out images.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import axc

HERE = Path(__file__).resolve().parent
MODEL = HERE / "digits_cnn.onnx"
DATA = HERE / "test.npz"


def accuracy(weights: str, activations: str) -> float:
    graph = axc.load(MODEL)
    axc.apply(
        graph, f"quantize * weights={weights} activations={activations}\n", model_path=str(MODEL)
    )
    return float(axc.evaluate(graph, DATA)["top1"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    float_top1 = float(axc.evaluate(axc.load(MODEL), DATA)["top1"])
    rows = []
    for bits in range(8, 1, -1):
        rows.append(
            {
                "bits": bits,
                "both": accuracy(f"int{bits}", f"int{bits}"),
                "weights_only": accuracy(f"int{bits}", "int8"),
                "activations_only": accuracy("int8", f"int{bits}"),
            }
        )
    if args.json:
        print(json.dumps({"float_top1": float_top1, "rows": rows}, indent=1))
        return
    print(f"Float model: {100 * float_top1:.2f}% top-1 on {DATA.name}.\n")
    print(
        "| bits | weights and activations | weights only (activations int8) "
        "| activations only (weights int8) |"
    )
    print("|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['bits']} | {100 * r['both']:.2f}% | {100 * r['weights_only']:.2f}% "
            f"| {100 * r['activations_only']:.2f}% |"
        )


if __name__ == "__main__":
    main()
