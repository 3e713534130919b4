"""Held-out accuracy of the int8 digits CNN with each built-in multiplier, and
what the multiplier costs, as a Markdown table.

    python examples/digits/sweep_multipliers.py            # the table in examples/digits/README.md
    python examples/digits/sweep_multipliers.py --json
    python examples/digits/sweep_multipliers.py --no-cost  # skip synthesis

Every row quantizes the model with axc's `quantize` pass (int8 weights per
channel, int8 activations, min-max on calib.npz), computes every convolution
and dense layer's products with the multiplier (`approximate *`), and runs
the bit-accurate simulator on the 450 held-out images. LUT and CARRY4 counts
come from yosys `synth_xilinx -nodsp` on the multiplier's Verilog view (8-bit
magnitudes with sign-magnitude operands); the mean absolute error is
EvoApproxLib's, over unsigned 8-bit operands.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tqdm import tqdm

import axc
from axc.arith.metrics import error_metrics
from axc.arith.multipliers import FAMILIES, builtin

HERE = Path(__file__).resolve().parent
MODEL = HERE / "digits_cnn.onnx"
DATA = HERE / "test.npz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-cost", action="store_true", help="no synthesis (no LUT counts)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    args = parser.parse_args()
    rows = []
    for fam in tqdm(list(FAMILIES.values()), desc="multipliers", disable=args.quiet):
        m = builtin(fam.name, *fam.example)
        spec = fam.name + (f"({', '.join(map(str, fam.example))})" if fam.example else "")
        graph = axc.load(MODEL)
        axc.apply(
            graph,
            f"quantize * weights=int8 activations=int8\napproximate * multiplier={spec}\n",
            model_path=str(MODEL),
        )
        row = {
            "multiplier": spec,
            "top1": float(axc.evaluate(graph, DATA)["top1"]),
            "mae_percent": error_metrics(m)["mae_percent"],
        }
        if not args.no_cost:
            from axc.hw.synth import synthesize

            cost = synthesize(m.verilog(), m.identifier())
            row.update(luts=cost.luts, carry=cost.carry, yosys=cost.yosys)
        rows.append(row)
    if args.json:
        print(json.dumps({"rows": rows}, indent=1))
        return
    print("| multiplier | top-1 | MAE (% of 2^16) | LUTs | CARRY4 |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        luts = f"{r['luts']} | {r['carry']}" if "luts" in r else "- | -"
        print(f"| {r['multiplier']} | {100 * r['top1']:.2f}% | {r['mae_percent']:.3f}% | {luts} |")
    if rows and "yosys" in rows[0]:
        print(f"\nyosys {rows[0]['yosys']}, `synth_xilinx -nodsp -flatten`.")


if __name__ == "__main__":
    main()
