"""Activation scheme against protection, for single-bit activation faults, as
a Markdown table.

    python examples/digits/protection_table.py          # the table in examples/digits/README.md
    python examples/digits/protection_table.py --json
    python examples/digits/protection_table.py --images 100 --faults 500   # quicker

For each activation scheme (int8 weights per channel; activations signed or
unsigned, symmetric or asymmetric, min-max on calib.npz) one fault list is
drawn: single-bit flips of every layer output (`inject *
site=activations`), --faults of them (seed 0). Each protection runs that same
list with `axc inject --compare-protection`: range restriction with
per-layer or per-channel bounds at profile(100), and a bounded ReLU on the
layers with a ReLU. The table shows clean accuracy, SDC-1 with its 95%
interval (faults as the independent draws: `ci_faults`, docs/faults.md), and
the reduction factor against no protection with its 95% bootstrap interval
(over faults).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import axc

HERE = Path(__file__).resolve().parent
MODEL = HERE / "digits_cnn.onnx"
DATA = HERE / "test.npz"

SCHEMES = (
    ("int8 symmetric", "activations=int8 activation_scheme=symmetric"),
    ("int8 asymmetric", "activations=int8 activation_scheme=asymmetric"),
    ("uint8 symmetric", "activations=uint8 activation_scheme=symmetric"),
    ("uint8 asymmetric", "activations=uint8 activation_scheme=asymmetric"),
)
PROTECTIONS = (
    ("per-layer bounds", "protect * range(bounds=profile(100))"),
    ("per-channel bounds", "protect * range(bounds=profile(100), granularity=per_channel)"),
    ("bounded ReLU", "protect * bounded_relu(bound=profile(100))"),
)


def _pct(entry: dict) -> str:  # type: ignore[type-arg]
    lo, hi = entry["ci_faults"]  # faults as the draws: a fault's images share it
    return f"{100 * entry['rate']:.3f}% [{100 * lo:.3f}, {100 * hi:.3f}]"


def _factor(r: dict) -> str:  # type: ignore[type-arg]
    def num(v: float) -> str:
        return "inf" if v == float("inf") else f"{v:.2f}"

    return f"{num(r['factor'])}x [{num(r['ci'][0])}, {num(r['ci'][1])}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", type=int, default=2000)
    parser.add_argument("--images", type=int, default=None, help="the first N test images")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for scheme, quantize in SCHEMES:
            for label, protect in PROTECTIONS:
                directives = Path(tmp) / "d.ax"
                directives.write_text(
                    f"quantize * {quantize}\n{protect}\n"
                    f"inject * site=activations model=bitflip count={args.faults}\n"
                )
                report = axc.inject(
                    str(MODEL),
                    str(directives),
                    str(DATA),
                    images=args.images,
                    compare_protection=True,
                )
                total = report["total"]
                if not rows or rows[-1]["scheme"] != scheme:
                    rows.append(
                        {
                            "scheme": scheme,
                            "protection": "none",
                            "top1": report["clean"]["unprotected"]["top1"],
                            "sdc1": total["sdc1_before"],
                        }
                    )
                rows.append(
                    {
                        "scheme": scheme,
                        "protection": label,
                        "top1": report["clean"]["protected"]["top1"],
                        "sdc1": total["sdc1_after"],
                        "reduction": total["reduction"],
                    }
                )
    if args.json:
        print(json.dumps({"faults": args.faults, "rows": rows}, indent=1))
        return
    print("| activations | protection | clean top-1 | SDC-1 [95% CI] | reduction [95% CI] |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        reduction = _factor(r["reduction"]) if "reduction" in r else "1x"
        print(
            f"| {r['scheme']} | {r['protection']} | {100 * r['top1']:.2f}% | "
            f"{_pct(r['sdc1'])} | {reduction} |"
        )


if __name__ == "__main__":
    main()
