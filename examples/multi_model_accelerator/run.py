"""One systolic array for several models at once.

Three int8 models share one weight-stationary or output-stationary array on
a Zynq-7020: the digits CNN, the deeper digits CNN and ResNet-50 (the light
model-zoo version that ships with the onnx package, 224x224 inputs).
`axc explore` evaluates every array shape and dataflow and scores each by the
geometric mean of the three models' latencies, under the part's LUT, FF and
DSP budget. The study compares the chosen shared array with the best array
for each model alone.

    python examples/multi_model_accelerator/run.py            # 4..32 x 4..32, ws/os
    python examples/multi_model_accelerator/run.py --quick    # 4..8 x 4..8, ws

writes figures (PNG, SVG) and tables (CSV, Markdown) into --out.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
#: the budgets compared: a small Zynq (80 DSPs) and the common one (220)
PARTS = ("xc7z010", "xc7z020")
EXAMPLES = HERE.parent


def light_model(work: Path, images: int) -> Path:
    """ResNet-50 (light) in a folder with calibration and test images:
    uniform random inputs, labelled by the float model's own top-1."""
    import onnx

    import axc

    source = Path(onnx.__file__).parent / "backend/test/data/light/light_resnet50.onnx"
    folder = work / "resnet50"
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / "resnet50.onnx"
    # the file hard-codes batch 1 (input, output, the final Reshape to [1, 2048]): free it
    proto = onnx.load(str(source))
    proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "N"
    for i, init in enumerate(proto.graph.initializer):
        if init.name == "OC2_DUMMY_1":
            free = onnx.numpy_helper.from_array(np.array([0, -1], np.int64), init.name)
            proto.graph.initializer[i].CopyFrom(free)
    onnx.save(proto, str(model))
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (images, 3, 224, 224)).astype(np.float32)
    graph = axc.load(model)
    logits = next(iter(axc.simulate(graph, x).values()))
    np.savez(folder / "calib.npz", x=x)
    np.savez(folder / "test.npz", x=x, y=logits.reshape(images, -1).argmax(1))
    return model


def directives(rows: list[int], dataflows: list[str], images: int) -> tuple[str, str]:
    base = (
        "quantize * weights=int8 activations=int8\n"
        "target systolic rows=8 cols=8 dataflow=ws clock_mhz=200 device=xc7z020\n"
    )
    block = (
        f"explore objectives=[latency, luts] algorithm=exhaustive images={images} {{\n"
        f"    target rows in [{', '.join(map(str, rows))}]\n"
        f"    target cols in [{', '.join(map(str, rows))}]\n"
        f"    target dataflow in [{', '.join(dataflows)}]\n"
        "}\n"
    )
    return base + block, base


def fits(point: dict[str, Any], part: str) -> bool:
    from axc.hw.devices import device, utilization

    hw = point["metrics"].get("hardware")
    return bool(hw) and bool(utilization(hw, device(part))["fits"])


def analyse(summary: dict[str, Any], names: list[str], part: str) -> dict[str, Any]:
    """The shared array (least geometric-mean latency) and each model's own
    best, among the arrays that fit ``part``."""
    points = [p for p in summary["points"] if p["objectives"] and fits(p, part)]
    if not points:
        raise SystemExit(f"no array fits {part}")

    def config(p: dict[str, Any]) -> str:
        return str(p["metrics"]["hardware"]["array"])

    def latency(p: dict[str, Any], i: int) -> float:
        return float(p["metrics"]["hardware"]["latency_us"][i])

    shared = min(points, key=lambda p: p["objectives"]["latency"])
    rows = []
    for i, name in enumerate(names):
        own = min(points, key=lambda p: latency(p, i))
        rows.append(
            {
                "device": part,
                "model": name,
                "best_array": config(own),
                "best_latency_us": round(latency(own, i), 3),
                "best_luts": own["metrics"]["hardware"]["luts"],
                "best_dsp": own["metrics"]["hardware"]["dsp"],
                "shared_array": config(shared),
                "shared_latency_us": round(latency(shared, i), 3),
                "slowdown": round(latency(shared, i) / latency(own, i), 3),
            }
        )
    best = [min(latency(p, i) for p in points) for i in range(len(names))]
    return {
        "device": part,
        "shared": {
            "array": config(shared),
            "geomean_latency_us": round(shared["objectives"]["latency"], 3),
            "luts": shared["metrics"]["hardware"]["luts"],
            "dsp": shared["metrics"]["hardware"]["dsp"],
            "values": shared["values"],
        },
        "geomean_of_per_model_best_us": round(
            math.exp(sum(math.log(v) for v in best) / len(best)), 3
        ),
        "models": rows,
        "fitting": len(points),
        "evaluated": summary["evaluations"],
    }


def write(results: list[dict[str, Any]], summary: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for result in results for r in result["models"]]
    with (out / "comparison.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "| device | model | best array alone | latency | shared array | latency | slowdown |",
        "| --- | --- | --- | ---: | --- | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['device']} | {r['model']} | {r['best_array']} ({r['best_luts']} LUT, "
            f"{r['best_dsp']} DSP) | {r['best_latency_us']:.2f} µs | {r['shared_array']} | "
            f"{r['shared_latency_us']:.2f} µs | {r['slowdown']:.2f}x |"
        )
    (out / "comparison.md").write_text("\n".join(lines) + "\n")

    fig, axes = plt.subplots(1, len(results) + 1, figsize=(5.2 * (len(results) + 1), 4.4))
    for ax, result in zip(axes, results, strict=False):
        models = result["models"]
        x = np.arange(len(models))
        ax.bar(
            x - 0.2,
            [r["best_latency_us"] for r in models],
            0.4,
            label="best array for the model alone",
        )
        ax.bar(
            x + 0.2,
            [r["shared_latency_us"] for r in models],
            0.4,
            label=f"shared array ({result['shared']['array']})",
        )
        ax.set_xticks(x, [f"{r['model']}\nalone: {r['best_array']}" for r in models], fontsize=7)
        ax.set_yscale("log")
        ax.set_ylabel("latency per image (µs at 200 MHz)")
        ax.set_title(f"arrays that fit the {result['device']}", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=7, loc="upper left")
    right = axes[-1]
    priced = [p for p in summary["points"] if p["objectives"]]
    right.scatter(
        [p["metrics"]["hardware"]["luts"] for p in priced],
        [p["objectives"]["latency"] for p in priced],
        c="#bbbbbb",
        s=16,
        label="every array shape and dataflow",
    )
    for result, color in zip(results, ("#2ca02c", "#d62728"), strict=False):
        chosen = result["shared"]
        right.scatter(
            [chosen["luts"]],
            [chosen["geomean_latency_us"]],
            marker="*",
            s=200,
            c=color,
            zorder=3,
            label=f"chosen for the {result['device']}: {chosen['array']}",
        )
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("LUTs (resource model)")
    right.set_ylabel("geometric mean latency of the three models (µs)")
    right.set_title("the shared choice", fontsize=9)
    right.grid(alpha=0.3)
    right.legend(fontsize=7)
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(out / f"shared_vs_best.{ext}", dpi=120)
    plt.close(fig)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    from axc.explore import explore
    from axc.explore.report import relocate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 and 8 rows and columns, ws")
    parser.add_argument("--out", type=Path, help="output folder (default: results/ here)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quiet", "-q", action="store_true")
    args = parser.parse_args(argv)
    out = args.out or HERE / ("results-quick" if args.quick else "results")
    out.mkdir(parents=True, exist_ok=True)
    images = 2 if args.quick else 8
    sizes = [4, 8] if args.quick else [4, 8, 16, 32]
    dataflows = ["ws"] if args.quick else ["ws", "os"]
    resnet = light_model(out / "models", images)
    first, rest = directives(sizes, dataflows, images)
    files = []
    for name, text in (("digits.ax", first), ("digits_deep.ax", rest), ("resnet50.ax", rest)):
        (out / name).write_text(text)
        files.append(out / name)
    models = [
        EXAMPLES / "digits" / "digits_cnn.onnx",
        EXAMPLES / "digits_deep" / "digits_deep_cnn.onnx",
        resnet,
    ]
    data = [
        EXAMPLES / "digits" / "test.npz",
        EXAMPLES / "digits_deep" / "test.npz",
        resnet.parent / "test.npz",
    ]
    names = ["digits CNN", "deeper digits CNN", "ResNet-50 (light)"]
    summary = explore(
        models,
        files,
        data=data,
        out=out / "explore",
        workers=args.workers,
        progress=not args.quiet,
        force=True,
    )
    results = [analyse(summary, names, part) for part in PARTS]
    write(results, summary, out)
    relocate(out, EXAMPLES.parent)  # the results name no machine
    if not args.quiet:
        print((out / "comparison.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
