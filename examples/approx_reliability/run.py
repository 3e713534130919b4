"""Approximation against reliability against resources.

Per-layer selective approximation of two int8 CNNs, the digits CNN and the
deeper digits CNN, on a weight-stationary systolic array. Every Conv and
Gemm layer chooses its own multiplier; `axc explore` searches the choices
for the Pareto front of

* accuracy: loss of top-1 against the float model (the bit-accurate simulator),
* vulnerability: SDC-1 of a seeded sample of single bit flips in the layers'
  outputs (one activation campaign per design point),
* area: LUTs of the generated arrays built without DSPs (yosys
  ``synth_xilinx -nodsp``, through the resource model calibrated on it). A
  design with k multipliers is k arrays, one per multiplier.

The chosen designs are then measured again, each with a larger fault sample
of its own (SDC-1 with its Wilson interval), and their arrays synthesized
whole by yosys.

    python examples/approx_reliability/run.py            # the full study
    python examples/approx_reliability/run.py --quick    # first and last layer, 2 multipliers

writes figures (PNG, SVG) and tables (CSV, Markdown) into --out.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent
MODELS = {
    "digits CNN": (EXAMPLES / "digits" / "digits_cnn.onnx", EXAMPLES / "digits" / "test.npz"),
    "deeper digits CNN": (
        EXAMPLES / "digits_deep" / "digits_deep_cnn.onnx",
        EXAMPLES / "digits_deep" / "test.npz",
    ),
}
#: from the exact product to ones that lose about 5 points of top-1 when used everywhere
MULTIPLIERS = ("exact", "trunc(6)", "bam(2, 8)", "perforated(0, 4)", "drum(3)")
QUICK_MULTIPLIERS = ("exact", "bam(2, 8)")
ROWS = COLS = 4
OBJECTIVES = ("accuracy", "vulnerability", "area")
#: --quick prices LUTs of the DSP build: one yosys characterization per multiplier, not two
QUICK_OBJECTIVES = ("accuracy", "vulnerability", "luts")


def linear_layers(model: Path) -> list[str]:
    import axc

    graph = axc.load(model)
    return [n.name for n in graph.topological() if n.op in ("Conv", "Gemm", "MatMul")]


def base_directives() -> str:
    return (
        "quantize * weights=int8 activations=int8\n"
        "approximate op(Conv, Gemm) multiplier=exact\n"
        f"target systolic rows={ROWS} cols={COLS} dataflow=ws clock_mhz=200 device=xc7z045\n"
    )


def explore_directives(layers: list[str], multipliers: tuple[str, ...], quick: bool) -> str:
    objectives = QUICK_OBJECTIVES if quick else OBJECTIVES
    chosen = [layers[0], layers[-1]] if quick else layers
    options = (
        "algorithm=exhaustive faults=60 fault_images=20"
        if quick
        else "population=24 generations=9 faults=300 fault_images=50"
    )
    items = "".join(
        f'    approximate "{name}" multiplier in [{", ".join(multipliers)}]\n' for name in chosen
    )
    return (
        base_directives()
        + f"explore objectives=[{', '.join(objectives)}] {options} seed=1 {{\n"
        + items
        + "}\n"
    )


def prewarm(model: Path, multipliers: tuple[str, ...], dsp: tuple[bool, ...]) -> None:
    """Characterize each multiplier's array variant (yosys, cached on disk)
    two at a time before the exploration asks for them one by one."""
    from concurrent.futures import ThreadPoolExecutor

    from axc.backends.systolic.cost import characterize

    import axc
    from axc.backend import get_backend

    systolic = sys.modules[get_backend("systolic").__module__]
    jobs = []
    for spec in multipliers:
        graph = axc.load(model)
        axc.apply(
            graph,
            base_directives().replace("multiplier=exact", f"multiplier={spec}"),
            model_path=str(model),
        )
        for part in systolic.array_parts(graph, systolic.SystolicOptions()):
            unit = dataclasses.replace(part.config, rows=1, cols=1, top="axc_systolic")
            jobs += [(unit, part.multiplier, d) for d in dsp]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda j: characterize(j[0], j[1], dsp=j[2]), jobs))


def choose(front: list[dict[str, Any]], objectives: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """The designs the table lists: the front's extremes and its knee (the
    least sum of objectives, each scaled to the front's range)."""
    obj = [{k: p["objectives"][k] for k in objectives} for p in front]
    lo = {k: min(o[k] for o in obj) for k in objectives}
    span = {k: (max(o[k] for o in obj) - lo[k]) or 1.0 for k in objectives}
    hw = objectives[-1]

    def key(*names: str) -> Any:
        return lambda i: tuple(obj[i][n] for n in names)

    idx = range(len(front))
    picks = {
        "most accurate": min(idx, key=key("accuracy", hw, "vulnerability")),
        "least vulnerable": min(idx, key=key("vulnerability", hw, "accuracy")),
        "smallest": min(idx, key=key(hw, "accuracy", "vulnerability")),
        "balanced": min(idx, key=lambda i: sum((obj[i][k] - lo[k]) / span[k] for k in objectives)),
    }
    out: dict[str, dict[str, Any]] = {}
    for label, i in picks.items():
        same = next((k for k, v in out.items() if v["id"] == front[i]["id"]), None)
        if same is not None:  # one design, several titles
            out[f"{same}, {label}"] = out.pop(same)
        else:
            out[label] = front[i]
    return out


def measure(
    model: Path, data: Path, text: str, faults: int, images: int, synth: bool
) -> dict[str, Any]:
    """One design again: top-1, SDC-1 with its interval from a fault sample of
    its own (seed 7, not the exploration's), and yosys on its arrays."""
    from concurrent.futures import ThreadPoolExecutor

    import axc
    from axc.backend import get_backend
    from axc.sim.dataset import load_dataset
    from axc.sim.evaluate import evaluate

    graph = axc.load(model)
    axc.apply(graph, text, model_path=str(model))
    top1 = float(evaluate(graph, load_dataset(data, graph))["top1"])
    axc.apply(graph, f"inject * site=activations model=bitflip count={faults}\n")
    report = axc.inject(graph, None, data, images=images, seed=7, plots=False)
    sdc1 = report["total"]["sdc1"]
    out: dict[str, Any] = {"top1": top1, "sdc1": sdc1, "runs": faults * images}
    if synth:
        systolic = sys.modules[get_backend("systolic").__module__]
        parts = systolic.array_parts(graph, systolic.SystolicOptions())
        with ThreadPoolExecutor(2) as pool:  # the arrays of one design, two at a time
            results = list(
                pool.map(
                    lambda p: systolic.synthesize_array(p.config, p.multiplier, dsp=False), parts
                )
            )
        out["yosys"] = {
            "luts": sum(r.luts for r in results),
            "ff": sum(r.ff for r in results),
            "arrays": [
                {"multiplier": p.multiplier.identifier(), "luts": r.luts, "ff": r.ff}
                for p, r in zip(parts, results, strict=True)
            ],
            "version": results[0].yosys,
        }
    return out


def study(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from axc.explore import explore

    multipliers = QUICK_MULTIPLIERS if args.quick else MULTIPLIERS
    objectives = QUICK_OBJECTIVES if args.quick else OBJECTIVES
    faults, images = (100, 20) if args.quick else (1000, 100)
    results: dict[str, Any] = {
        "multipliers": list(multipliers),
        "array": f"{ROWS}x{COLS} ws",
        "objectives": list(objectives),
        "recheck": {"faults": faults, "images": images},
        "models": [],
    }
    start = time.time()
    for name, (model, data) in MODELS.items():
        stem = model.stem
        layers = linear_layers(model)
        text = explore_directives(layers, multipliers, args.quick)
        prewarm(model, multipliers, (True,) if args.quick else (True, False))
        (out / f"{stem}.ax").write_text(text)
        summary = explore(
            model,
            out / f"{stem}.ax",
            data=data,
            out=out / f"explore_{stem}",
            workers=args.workers,
            progress=not args.quiet,
            force=True,
        )
        chosen = choose(summary["front"], objectives)
        exact = dict.fromkeys(summary["variables"], "exact")
        baseline = next((p for p in summary["points"] if p["values"] == exact), None)
        baseline = {**(baseline or {"values": exact, "id": None}), "baseline": True}
        designs = []
        picks = [("all exact", baseline, base_directives())]
        for label, point in chosen.items():
            files = point["files"]
            picks.append((label, point, (out / f"explore_{stem}" / files[0]).read_text()))
        for label, point, directives in picks:
            if not args.quiet:
                print(f"{name}: measuring '{label}' again", file=sys.stderr)
            again = measure(model, data, directives, faults, images, synth=not args.quick)
            designs.append(
                {
                    "design": label,
                    "id": point.get("id"),
                    "baseline": bool(point.get("baseline")),
                    "values": point["values"],
                    "objectives": point.get("objectives"),
                    "hardware": point.get("metrics", {}).get("hardware"),
                    **again,
                }
            )
        results["models"].append(
            {
                "name": name,
                "model": str(model.relative_to(EXAMPLES)),
                "layers": layers,
                "reference_top1": summary["reference_top1"][0],
                "space_size": summary["space_size"],
                "evaluations": summary["evaluations"],
                "feasible": summary["feasible"],
                "front_ids": [p["id"] for p in summary["front"]],
                "points": [
                    {
                        "id": p["id"],
                        "values": p["values"],
                        "objectives": p["objectives"],
                        "sdc1_ci": p["metrics"]["sdc1_ci"][0],
                    }
                    for p in summary["points"]
                    if p["feasible"]
                ],
                "designs": designs,
            }
        )
    results["seconds"] = round(time.time() - start, 1)
    return results


def multipliers_of(values: dict[str, str], layers: list[str]) -> str:
    """'exact' when every layer has it, else each layer's in layer order."""
    names = [values.get(layer, "exact") for layer in layers]
    return names[0] if len(set(names)) == 1 else " / ".join(names)


def tables(results: dict[str, Any], out: Path) -> list[Path]:
    rows = []
    for m in results["models"]:
        for d in m["designs"]:
            hw = d["hardware"] or {}
            sdc = d["sdc1"]
            rows.append(
                {
                    "model": m["name"],
                    "design": d["design"],
                    "multipliers": multipliers_of(_by_layer(d["values"]), m["layers"]),
                    "top1_pct": round(100 * d["top1"], 2),
                    "loss_pts": round(100 * (m["reference_top1"] - d["top1"]), 2),
                    "sdc1_pct": round(100 * sdc["rate"], 3),
                    # the faults, not the inferences, are the independent draws
                    "sdc1_ci_lo": round(100 * sdc["ci_faults"][0], 3),
                    "sdc1_ci_hi": round(100 * sdc["ci_faults"][1], 3),
                    "arrays": hw.get("arrays", 1),
                    "luts_model": hw.get(results["objectives"][-1], ""),
                    "luts_yosys": d.get("yosys", {}).get("luts", ""),
                    "latency_us": round(hw["latency"], 3) if hw else "",
                }
            )
    with (out / "designs.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "| model | design | multiplier per layer | top-1 | SDC-1 (95% CI, faults as draws) "
        "| arrays | LUTs (model) | LUTs (yosys) | latency |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['design']} | {r['multipliers']} | {r['top1_pct']:.2f}% "
            f"| {r['sdc1_pct']:.2f}% [{r['sdc1_ci_lo']:.2f}, {r['sdc1_ci_hi']:.2f}] "
            f"| {r['arrays']} | {r['luts_model'] or '-'} | {r['luts_yosys'] or '-'} "
            f"| {r['latency_us'] or '-'} µs |"
        )
    (out / "designs.md").write_text("\n".join(lines) + "\n")
    return [out / "designs.csv", out / "designs.md"]


def _by_layer(values: dict[str, str]) -> dict[str, str]:
    """Explore labels ('approximate "/0/Conv" multiplier') to layer: value."""
    out = {}
    for label, value in values.items():
        parts = label.split('"')
        out[parts[1] if len(parts) > 2 else label] = value
    return out


def figures(results: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    hw_key = results["objectives"][-1]
    hw_label = "kLUT, no DSP" if hw_key == "area" else "kLUT, DSP48s for what maps to them"
    n = len(results["models"])
    fig = plt.figure(figsize=(6.4 * n, 5.6))
    for i, m in enumerate(results["models"]):
        ax = fig.add_subplot(1, n, i + 1, projection="3d")
        front = set(m["front_ids"])
        for on_front, color, size, label in (
            (False, "#b0b0b0", 12, "dominated"),
            (True, "#d62728", 30, "Pareto front"),
        ):
            pts = [p for p in m["points"] if (p["id"] in front) == on_front]
            ax.scatter(
                [p["objectives"][hw_key] / 1000 for p in pts],
                [p["objectives"]["vulnerability"] for p in pts],
                [p["objectives"]["accuracy"] for p in pts],
                c=color,
                s=size,
                depthshade=False,
                label=f"{label} ({len(pts)})",
            )
        for p in m["points"]:  # the front's SDC-1 intervals, faults as the draws
            if p["id"] in front:
                o = p["objectives"]
                ax.plot(
                    [o[hw_key] / 1000] * 2,
                    [100 * v for v in p["sdc1_ci"]],
                    [o["accuracy"]] * 2,
                    color="#d62728",
                    alpha=0.6,
                    linewidth=1,
                )
        ax.plot([], [], color="#d62728", alpha=0.6, label="front's SDC-1, 95% interval")
        titles: dict[Any, list[str]] = {}  # one label per point, however many titles it has
        for d in m["designs"]:
            if d["objectives"]:
                titles.setdefault(d["id"], []).append(d["design"])
        for d in m["designs"]:
            if not d["objectives"] or d["design"] != titles[d["id"]][0]:
                continue
            o = d["objectives"]
            ax.text(o[hw_key] / 1000, o["vulnerability"], o["accuracy"],
                    f" {', '.join(titles[d['id']])}", fontsize=6)  # fmt: skip
        ax.set_xlabel(f"arrays' LUTs ({hw_label})", fontsize=8)
        ax.set_ylabel("SDC-1 (%)", fontsize=8)
        ax.set_zlabel("top-1 loss (points)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_title(
            f"{m['name']}: {m['evaluations']} designs evaluated of {m['space_size']}", fontsize=9
        )
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(out / f"front3d.{ext}", dpi=130)
        written.append(out / f"front3d.{ext}")
    plt.close(fig)

    fig, axes = plt.subplots(1, n, figsize=(6.0 * n, 4.4), squeeze=False)
    for ax, m in zip(axes[0], results["models"], strict=True):
        front = set(m["front_ids"])
        pts = [p for p in m["points"] if p["id"] not in front]
        ax.scatter(
            [p["objectives"][hw_key] / 1000 for p in pts],
            [p["objectives"]["vulnerability"] for p in pts],
            c="#b0b0b0",
            s=10,
            label="the other designs (exploration's estimate)",
        )
        for d in m["designs"]:
            hw = d["hardware"]
            if not hw:
                continue
            rate, (lo, hi) = 100 * d["sdc1"]["rate"], d["sdc1"]["ci_faults"]
            first = d["baseline"]
            bar = ax.errorbar(
                hw[hw_key] / 1000,
                rate,
                yerr=[[rate - 100 * lo], [100 * hi - rate]],
                fmt="s" if first else "o",  # the baseline: a hollow square
                mfc="none" if first else None,
                markersize=9 if first else 6,
                capsize=3,
                label=f"{d['design']}: top-1 {100 * d['top1']:.1f}%",
            )
            if d["objectives"]:  # where the exploration's smaller sample had put it
                ax.scatter(
                    [hw[hw_key] / 1000],
                    [d["objectives"]["vulnerability"]],
                    marker="x",
                    s=30,
                    color=bar[0].get_color(),
                )
        ax.set_xlabel(f"arrays' LUTs ({hw_label})")
        ax.set_ylabel("SDC-1 (%), 95% interval over faults")
        ax.set_title(
            f"{m['name']}: the chosen designs measured again (x: the exploration's estimate)",
            fontsize=9,
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(out / f"chosen.{ext}", dpi=130)
        written.append(out / f"chosen.{ext}")
    plt.close(fig)
    return written


def main(argv: list[str] | None = None) -> int:
    from axc.explore.report import relocate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="first and last layer, 2 multipliers")
    parser.add_argument("--out", type=Path, help="output folder (default: results/ here)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quiet", "-q", action="store_true")
    args = parser.parse_args(argv)
    out = args.out or HERE / ("results-quick" if args.quick else "results")
    out.mkdir(parents=True, exist_ok=True)
    results = study(args, out)
    written = tables(results, out) + figures(results, out)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    relocate(out, EXAMPLES.parent)  # the results name no machine
    if not args.quiet:
        print((out / "designs.md").read_text())
        print(f"{results['seconds']} s; wrote {len(written) + 1} files into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
