"""Quantization against activation-fault reliability against hardware.

For the digits CNN at 4 to 8 bits, with symmetric and with asymmetric
activations, on a weight-stationary systolic array:

* accuracy (the bit-accurate simulator),
* SDC-1 of single bit flips in every layer's output, in total, per layer and
  per bit position, with Wilson intervals (one seeded fault list per design),
* the same faults with per-layer range restriction (profiled bounds,
  saturation), and the reduction with its bootstrap interval,
* the array's LUTs and flip-flops from yosys, with and without the output
  stage's range unit.

    python examples/quant_reliability/run.py            # the full study (~10 min)
    python examples/quant_reliability/run.py --quick    # a small one (~1 min)

writes figures (PNG, SVG) and tables (CSV, Markdown) into --out.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DIGITS = HERE.parent / "digits"
MODEL = DIGITS / "digits_cnn.onnx"
DATA = DIGITS / "test.npz"
SCHEMES = ("symmetric", "asymmetric")


def directives(bits: int, scheme: str, faults: int, rows: int, cols: int) -> str:
    return (
        f"quantize * weights=int{bits} activations=int{bits} activation_scheme={scheme}\n"
        "protect * range(bounds=profile(100))\n"
        f"inject * site=activations model=bitflip count={faults}\n"
        f"target systolic rows={rows} cols={cols} dataflow=ws\n"
    )


def campaign(text: str, images: int, seed: int) -> dict[str, Any]:
    from axc import api

    return api.inject(
        str(MODEL),
        text,
        str(DATA),
        images=images,
        seed=seed,
        plots=False,
        compare_protection=True,
    )


def hardware(text: str) -> dict[str, int]:
    """yosys on the array this design lowers to, with and without range unit."""
    from axc.backends.systolic import SystolicOptions, array_config, synthesize_array

    import axc

    graph = axc.load(MODEL)
    axc.apply(graph, text, model_path=str(MODEL))
    cfg, mult = array_config(graph, SystolicOptions())
    ranged = synthesize_array(cfg, mult)
    bare = synthesize_array(dataclasses.replace(cfg, range_unit=False), mult)
    return {
        "luts": ranged.luts,
        "ff": ranged.ff,
        "dsp": ranged.dsp,
        "luts_without_range": bare.luts,
        "ff_without_range": bare.ff,
    }


LABEL = {"protected": "range restriction", "unprotected": "no protection"}


def span(ci: list[float], scale: float, digits: int) -> str:
    return f"{scale * ci[0]:.{digits}f}-{scale * ci[1]:.{digits}f}"


def interval(entry: dict[str, Any]) -> list[float]:
    """A rate's 95% interval with faults as the draws (the images of one
    fault share it; docs/faults.md), where the report has it."""
    return list(entry.get("ci_faults", entry["ci"]))


def rate(entry: dict[str, Any]) -> tuple[float, float, float]:
    lo, hi = interval(entry)
    return 100 * entry["rate"], 100 * lo, 100 * hi


def study(args: argparse.Namespace) -> dict[str, Any]:
    bits_list = [4, 8] if args.quick else [4, 5, 6, 7, 8]
    faults = args.faults or (300 if args.quick else 3000)
    images = args.images or (100 if args.quick else 450)
    rows = cols = 2 if args.quick else 8
    designs = [(b, s) for b in bits_list for s in SCHEMES]
    texts = {d: directives(d[0], d[1], faults, rows, cols) for d in designs}
    results: dict[str, Any] = {
        "model": MODEL.name,
        "faults": faults,
        "images": images,
        "seed": args.seed,
        "array": f"{rows}x{cols} ws",
        "designs": [],
    }
    started = time.perf_counter()
    # yosys runs in threads (subprocesses) while the campaigns run here
    with ThreadPoolExecutor(2) as pool:
        synth = {d: pool.submit(hardware, texts[d]) for d in designs}
        for d in designs:
            report = campaign(texts[d], images, args.seed)
            if not args.quiet:
                print(f"{d[0]} bits, {d[1]}: campaign done", file=sys.stderr)
            results["designs"].append(
                {"bits": d[0], "scheme": d[1], "report": report, "hw": None, "key": d}
            )
        for entry in results["designs"]:
            entry["hw"] = synth[entry.pop("key")].result()
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results


def tables(results: dict[str, Any], out: Path) -> list[Path]:
    summary, layers, bits_rows = [], [], []
    for d in results["designs"]:
        r, hw = d["report"], d["hw"]
        before, after = r["unprotected"]["total"]["sdc1"], r["protected"]["total"]["sdc1"]
        red = r["total"]["reduction"]
        summary.append(
            {
                "bits": d["bits"],
                "activations": d["scheme"],
                "top1": round(r["clean"]["unprotected"]["top1"], 4),
                "top1_protected": round(r["clean"]["protected"]["top1"], 4),
                "sdc1_pct": round(100 * before["rate"], 3),
                "sdc1_ci_pct": span(interval(before), 100, 3),
                "sdc1_protected_pct": round(100 * after["rate"], 3),
                "sdc1_protected_ci_pct": span(interval(after), 100, 3),
                "reduction": round(red["factor"], 2) if red["factor"] is not None else "",
                "reduction_ci": span(red["ci"], 1, 2) if red["factor"] is not None else "",
                "luts": hw["luts"],
                "ff": hw["ff"],
                "range_luts_pct": round(100 * (hw["luts"] / hw["luts_without_range"] - 1), 2),
                "range_ff_pct": round(100 * (hw["ff"] / hw["ff_without_range"] - 1), 2),
            }
        )
        for side in ("unprotected", "protected"):
            for layer, e in r[side]["per_layer"].items():
                v, lo, hi = rate(e["sdc1"])
                layers.append(
                    {
                        "bits": d["bits"],
                        "activations": d["scheme"],
                        "design": side,
                        "layer": layer,
                        "faults": e["faults"],
                        "sdc1_pct": round(v, 4),
                        "lo_pct": round(lo, 4),
                        "hi_pct": round(hi, 4),
                    }
                )
        for bit, e in r["unprotected"]["per_bit"].items():
            v, lo, hi = rate(e["sdc1"])
            bits_rows.append(
                {
                    "bits": d["bits"],
                    "activations": d["scheme"],
                    "bit": int(bit),
                    "faults": e["faults"],
                    "sdc1_pct": round(v, 4),
                    "lo_pct": round(lo, 4),
                    "hi_pct": round(hi, 4),
                }
            )
    written = []
    for name, rows in (("summary", summary), ("per_layer", layers), ("per_bit", bits_rows)):
        path = out / f"{name}.csv"
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        written.append(path)
    md = out / "summary.md"
    head = [
        "bits",
        "activations",
        "top-1",
        "SDC-1 (95% CI)",
        "with range restriction",
        "reduction",
        "LUT",
        "FF",
        "range unit: LUT",
        "FF",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for s in summary:
        lines.append(
            f"| {s['bits']} | {s['activations']} | {100 * s['top1']:.1f}% | "
            f"{s['sdc1_pct']:.3f}% ({s['sdc1_ci_pct']}) | "
            f"{s['sdc1_protected_pct']:.3f}% ({s['sdc1_protected_ci_pct']}) | "
            f"{s['reduction']}x ({s['reduction_ci']}) | {s['luts']} | {s['ff']} | "
            f"+{s['range_luts_pct']}% | +{s['range_ff_pct']}% |"
        )
    md.write_text("\n".join(lines) + "\n")
    written.append(md)
    return written


def figures(results: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import numpy as np

    designs = results["designs"]
    bits = sorted({d["bits"] for d in designs})
    written: list[Path] = []

    def save(fig: Any, stem: str) -> None:
        fig.tight_layout()
        for ext in ("png", "svg"):
            fig.savefig(out / f"{stem}.{ext}", dpi=120)
            written.append(out / f"{stem}.{ext}")
        plt.close(fig)

    # 1. SDC-1 against bit width, both schemes, with and without protection
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for scheme, color in zip(SCHEMES, ("#1f77b4", "#d62728"), strict=True):
        for side, style in (("unprotected", "-o"), ("protected", "--s")):
            pts = [d for d in designs if d["scheme"] == scheme]
            v = np.array([rate(d["report"][side]["total"]["sdc1"]) for d in pts])
            ax.errorbar(
                [d["bits"] for d in pts],
                v[:, 0],
                yerr=[v[:, 0] - v[:, 1], v[:, 2] - v[:, 0]],
                fmt=style,
                color=color,
                capsize=3,
                label=f"{scheme} activations, {LABEL[side]}",
            )
    ax.set_xlabel("weight and activation width (bits)")
    ax.set_ylabel("SDC-1 (% of faulty inferences), 95% CI")
    ax.set_xticks(bits)
    ax.set_yscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(
        f"Single bit flips in layer outputs "
        f"({results['faults']} faults x {results['images']} images)",
        fontsize=9,
    )
    save(fig, "sdc1_vs_bits")

    # 2. per layer (unprotected), one bar group per layer
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, scheme in zip(axes, SCHEMES, strict=True):
        pts = [d for d in designs if d["scheme"] == scheme]
        names = list(pts[0]["report"]["unprotected"]["per_layer"])
        width = 0.8 / len(pts)
        for i, d in enumerate(pts):
            v = np.array([rate(d["report"]["unprotected"]["per_layer"][n]["sdc1"]) for n in names])
            x = np.arange(len(names)) + (i - (len(pts) - 1) / 2) * width
            ax.bar(
                x,
                v[:, 0],
                width,
                yerr=[v[:, 0] - v[:, 1], v[:, 2] - v[:, 0]],
                capsize=2,
                label=f"{d['bits']} bits",
            )
        ax.set_xticks(np.arange(len(names)), names, rotation=30, fontsize=8)
        ax.set_title(f"{scheme} activations")
        ax.set_xlabel("layer whose output is hit")
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_ylabel("SDC-1 (%), 95% CI")
    axes[1].legend(fontsize=8)
    save(fig, "sdc1_per_layer")

    # 3. per bit position (unprotected)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, scheme in zip(axes, SCHEMES, strict=True):
        for d in (d for d in designs if d["scheme"] == scheme):
            per = d["report"]["unprotected"]["per_bit"]
            keys = sorted(per, key=int)
            v = np.array([rate(per[k]["sdc1"]) for k in keys])
            ax.errorbar(
                [int(k) for k in keys],
                v[:, 0],
                yerr=[v[:, 0] - v[:, 1], v[:, 2] - v[:, 0]],
                fmt="-o",
                capsize=2,
                ms=3,
                label=f"{d['bits']} bits",
            )
        ax.set_title(f"{scheme} activations")
        ax.set_xlabel("bit position flipped (0 = least significant; top = sign)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("SDC-1 (%), 95% CI")
    axes[1].legend(fontsize=8)
    save(fig, "sdc1_per_bit")

    # 4. what the range unit costs
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    pts = [d for d in designs if d["scheme"] == "symmetric"]
    lut = [100 * (d["hw"]["luts"] / d["hw"]["luts_without_range"] - 1) for d in pts]
    ff = [100 * (d["hw"]["ff"] / d["hw"]["ff_without_range"] - 1) for d in pts]
    x = np.arange(len(pts))
    ax.bar(x - 0.2, lut, 0.4, label="LUTs")
    ax.bar(x + 0.2, ff, 0.4, label="flip-flops")
    ax.set_xticks(x, [f"{d['bits']} bits\n{d['hw']['luts']} LUT" for d in pts], fontsize=8)
    ax.set_ylabel("range unit overhead (% of the array)")
    ax.set_title(f"{results['array']} array, yosys synth_xilinx", fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    save(fig, "range_overhead")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 and 8 bits, fewer faults, 2x2")
    parser.add_argument("--out", type=Path, help="output folder (default: results/ here)")
    parser.add_argument("--faults", type=int, help="faults per design")
    parser.add_argument("--images", type=int, help="images per fault")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", "-q", action="store_true")
    args = parser.parse_args(argv)
    out = args.out or HERE / ("results-quick" if args.quick else "results")
    out.mkdir(parents=True, exist_ok=True)
    results = study(args)
    written = tables(results, out) + figures(results, out)
    slim = {k: v for k, v in results.items() if k != "designs"}
    slim["designs"] = [
        {
            "bits": d["bits"],
            "scheme": d["scheme"],
            "hw": d["hw"],
            "clean": d["report"]["clean"],
            "total": d["report"]["total"],
            "unprotected": {
                k: d["report"]["unprotected"][k] for k in ("total", "per_layer", "per_bit")
            },
            "protected": {k: d["report"]["protected"][k] for k in ("total", "per_layer")},
        }
        for d in results["designs"]
    ]
    (out / "results.json").write_text(json.dumps(slim, indent=1) + "\n")
    if not args.quiet:
        print((out / "summary.md").read_text())
        print(f"{results['seconds']} s; wrote {len(written) + 1} files into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
