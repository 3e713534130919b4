"""Approximate-multiplier throughput: axc with an arbitrary table and with a
structured multiplier, against axc exact and onnxruntime float32.

    python bench/approx_throughput.py            # digits (batch 450) and light ResNet-50 (batch 8)
    python bench/approx_throughput.py --quick    # digits only
    python bench/approx_throughput.py --json

One process, one run, two threads for everyone. All axc variants run the
model quantized by axc's `quantize` pass (int8, per channel), with every
convolution and dense layer approximated:

* **arbitrary table**: a random 8-bit table (.npy), which no formula
  describes: every product is a table lookup;
* **structured**: perforated(0, 2), whose error table has exact rank 2, so a
  layer is three exact BLAS products; and trunc(4) (rank 4).

Times are the best of --repeat runs (at least a second of runs) after a
warm-up, the same for every engine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "2")
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import numpy as np
from timing import best_of, light_resnet50, ort_session

import axc
from axc.ir.stats import layer_macs
from axc.sim import Executor

ROOT = Path(__file__).resolve().parent.parent


def variants(folder: Path) -> dict[str, str]:
    rng = np.random.default_rng(0)
    table = rng.integers(0, 65026, (256, 256))
    np.save(folder / "random8.npy", table)
    return {
        "exact": "",
        "arbitrary table": f'approximate * multiplier="{folder / "random8.npy"}"\n',
        "structured perforated(0, 2)": "approximate * multiplier=perforated(0, 2)\n",
        "structured trunc(4)": "approximate * multiplier=trunc(4)\n",
    }


def measure(label: str, path: Path, x: np.ndarray, calib: np.ndarray, repeat: int, folder: Path):
    base = axc.load(path)
    macs = sum(layer_macs(base, n) for n in base.nodes.values()) * x.shape[0]
    name = base.inputs[0]
    np.savez(folder / "calib.npz", x=calib)
    quantize = f'quantize * data="{folder / "calib.npz"}" samples={len(calib)}\n'
    float_session = ort_session(str(path))
    t_f32 = best_of(lambda: float_session.run(None, {name: x}), repeat)
    row: dict[str, object] = {"model": label, "batch": int(x.shape[0]), "gmac": macs / 1e9}
    row["ort_float32_images_per_s"] = x.shape[0] / t_f32
    for variant, directive in variants(folder).items():
        graph = axc.load(path)
        axc.apply(graph, quantize + directive)
        executor = Executor(graph)
        t = best_of(lambda ex=executor: ex.run({name: x}), repeat)
        row[f"{variant}_images_per_s"] = x.shape[0] / t
        row[f"{variant}_gmac_per_s"] = macs / t / 1e9
        row[f"ratio {variant}"] = t_f32 / t
    row["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="digits only")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        digits = np.load(ROOT / "examples" / "digits" / "test.npz")["x"]
        calib = np.load(ROOT / "examples" / "digits" / "calib.npz")["x"]
        model = ROOT / "examples" / "digits" / "digits_cnn.onnx"
        rows.append(measure("digits_cnn", model, digits, calib, args.repeat, folder))
        if not args.quick:
            rng = np.random.default_rng(0)
            x = rng.standard_normal((8, 3, 224, 224)).astype(np.float32)
            path = light_resnet50(folder)
            rows.append(measure("resnet50 (light)", path, x, x, args.repeat, folder))
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    names = [k[: -len("_images_per_s")] for k in rows[0] if k.endswith("_images_per_s")]
    print(f"{'model':18} {'':28} {'images/s':>10} {'GMAC/s':>8}")
    for r in rows:
        for v in names:
            gmac = r.get(f"{v}_gmac_per_s", r["gmac"] * r[f"{v}_images_per_s"] / r["batch"])
            print(f"{r['model']:18} {v:28} {r[f'{v}_images_per_s']:10.1f} {gmac:8.2f}")
        print(f"{'':18} peak RSS {r['peak_rss_mib']:.0f} MiB")
    for r in rows:
        print(
            f"ratio axc approximate (arbitrary table) vs onnxruntime float32 ({r['model']}): "
            f"{r['ratio arbitrary table']:.3f} (target >= 0.1)"
        )
        print(
            f"ratio axc approximate (structured, perforated(0, 2)) vs onnxruntime float32 "
            f"({r['model']}): {r['ratio structured perforated(0, 2)']:.3f} (target >= 0.3)"
        )


if __name__ == "__main__":
    main()
