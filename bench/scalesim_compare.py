"""axc's analytical array model against SCALE-Sim v3, layer by layer.

    bash scripts/scalesim_env.sh                 # SCALE-Sim in .venv-scalesim (numpy 1.26)
    python bench/scalesim_compare.py             # 24 layer shapes, 16x16, ws and os
    python bench/scalesim_compare.py --json

Conv and GEMM shapes come from onnx's light model-zoo models (ResNet-50,
VGG-19, AlexNet, SqueezeNet; batch 1): N output pixels, K the reduction, M
output channels, one product per group. For each shape and dataflow it
prints SCALE-Sim's compute cycles, what axc predicts SCALE-Sim reports
(``axc.hw.systolic.scalesim_cycles``), and axc's own array's cycles
(``gemm_cycles``, equal to the RTL's), with the difference by design that
docs/hardware.md explains: one cycle per fold for ws, R + 1 for os (the
drain SCALE-Sim does not count), plus one. SCALE-Sim runs in its own
virtualenv because it needs numpy 1.x. It ends with the speed ratio of the
two models over the same shapes.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

MODELS = ("light_resnet50", "light_vgg19", "light_bvlc_alexnet", "light_squeezenet")


def shapes(limit: int, max_macs: float) -> list[tuple[str, int, int, int]]:
    """Distinct (name, N, K, M) products of the light models' Conv and Gemm layers."""
    import onnx
    from timing import LIGHT_MODELS

    import axc

    seen: dict[tuple[int, int, int], str] = {}
    folder = Path(onnx.__file__).parent / LIGHT_MODELS
    for model in MODELS:
        graph = axc.load(folder / f"{model}.onnx")
        for node in graph.topological():
            if node.op not in ("Conv", "Gemm"):
                continue
            w = graph.constants[node.inputs[1]]
            if node.op == "Gemm":
                n, k, m = 1, int(math.prod(w.shape[1:])), int(w.shape[0])
            else:
                out = graph.tensors[node.outputs[0]].shape
                group = int(node.attrs["group"])
                n = int(math.prod(int(d) for d in out[2:]))
                k, m = int(math.prod(w.shape[1:])), int(w.shape[0]) // group
            if n * k * m <= max_macs and (n, k, m) not in seen:
                seen[(n, k, m)] = f"{model.removeprefix('light_')}:{node.name}"[:40]
    picked = sorted(seen.items(), key=lambda kv: kv[0][0] * kv[0][1] * kv[0][2])
    if len(picked) > limit:  # spread over the sizes
        step = len(picked) / limit
        picked = [picked[int(i * step)] for i in range(limit)]
    return [(name, n, k, m) for (n, k, m), name in picked]


def scalesim(python: str, rows: int, cols: int, dataflow: str, layers: list) -> dict:  # type: ignore[type-arg]
    spec = ";".join(f"L{i},{n},{m},{k}" for i, (_, n, k, m) in enumerate(layers))
    proc = subprocess.run(
        [python, str(ROOT / "bench" / "scalesim_runner.py"), str(rows), str(cols), dataflow, spec],
        capture_output=True,
        text=True,
        timeout=7200,
    )
    if proc.returncode != 0:
        sys.exit(f"SCALE-Sim failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scalesim-python", default=str(ROOT / ".venv-scalesim" / "bin" / "python")
    )
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--cols", type=int, default=16)
    parser.add_argument("--shapes", type=int, default=24, help="how many layer shapes")
    parser.add_argument("--max-macs", type=float, default=3e7, help="skip larger products")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not Path(args.scalesim_python).exists():
        sys.exit(f"no SCALE-Sim python at {args.scalesim_python}: run bash scripts/scalesim_env.sh")
    from axc.hw.systolic import ArrayShape, gemm_cycles, scalesim_cycles, tiles

    layers = shapes(args.shapes, args.max_macs)
    rows = []
    t_axc = t_sim = 0.0
    for dataflow in ("ws", "os"):
        array = ArrayShape(args.rows, args.cols, dataflow)
        measured = scalesim(args.scalesim_python, args.rows, args.cols, dataflow, layers)
        t_sim += measured["seconds"]
        start = time.perf_counter()
        ours = [gemm_cycles(array, n, k, m) for _, n, k, m in layers]
        predicted = [scalesim_cycles(array, n, k, m) for _, n, k, m in layers]
        t_axc += time.perf_counter() - start
        for (name, n, k, m), got, own, pred in zip(
            layers, measured["layers"], ours, predicted, strict=True
        ):
            folds = len(tiles(array, n, k, m))
            extra = 1 if dataflow == "ws" else args.rows + 1
            rows.append(
                {
                    "layer": name,
                    "dataflow": dataflow,
                    "n": n,
                    "k": k,
                    "m": m,
                    "folds": folds,
                    "scalesim": got["compute_cycles"],
                    "axc_predicts_scalesim": pred,
                    "axc_array": own,
                    "difference_by_design": own - got["compute_cycles"],
                    "explained": own - got["compute_cycles"] == folds * extra + 1,
                }
            )
    ratio = t_sim / max(t_axc, 1e-9)
    agree = sum(r["scalesim"] == r["axc_predicts_scalesim"] for r in rows)
    explained = sum(r["explained"] for r in rows)
    if args.json:
        print(json.dumps({"layers": rows, "scalesim_s": t_sim, "axc_s": t_axc, "ratio": ratio}))
        return
    print(f"{'layer':40} {'flow':4} {'N':>6} {'K':>5} {'M':>5} {'SCALE-Sim':>10} "
          f"{'axc->SS':>10} {'axc RTL':>10}  diff = folds x extra + 1")  # fmt: skip
    for r in rows:
        print(
            f"{r['layer']:40} {r['dataflow']:4} {r['n']:6d} {r['k']:5d} {r['m']:5d} "
            f"{r['scalesim']:10d} {r['axc_predicts_scalesim']:10d} {r['axc_array']:10d}  "
            f"{r['difference_by_design']:+d} ({'yes' if r['explained'] else 'NO'})"
        )
    print(f"{len(layers)} shapes x 2 dataflows on {args.rows}x{args.cols}: axc predicts "
          f"SCALE-Sim's cycles exactly for {agree} of {len(rows)}; the by-design difference "
          f"holds for {explained} of {len(rows)}")  # fmt: skip
    print(f"time: SCALE-Sim {t_sim:.1f} s, axc model {t_axc * 1e3:.3f} ms")
    print(f"ratio axc model vs SCALE-Sim speed: {ratio:.0f}x (target >= 1000)")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory():
        main()
