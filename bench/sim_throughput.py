"""Simulator throughput: axc exact int8 against onnxruntime float32 and int8 (QDQ).

    python bench/sim_throughput.py             # digits (batch 450) and light ResNet-50 (batch 8)
    python bench/sim_throughput.py --quick     # digits only
    python bench/sim_throughput.py --json

One process, one run, two threads for everyone (Numba and BLAS threads for
axc, intra-op threads for onnxruntime). axc's model is quantized by its own
`quantize` pass (int8 weights per channel, int8 activations, min-max); the
onnxruntime int8 model by `onnxruntime.quantization.quantize_static` (QDQ,
per channel, MinMax) on the same calibration inputs. Times are the best of
--repeat runs after a warm-up (which includes Numba compilation). Peak memory
is the process's resident high-water mark.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import tempfile
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "2")
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
os.environ.setdefault("MKL_NUM_THREADS", "2")

import numpy as np
from timing import best_of, light_resnet50, ort_session

import axc
from axc.ir.stats import layer_macs
from axc.sim import Executor

ROOT = Path(__file__).resolve().parent.parent


def ort_int8(path: Path, name: str, calib: np.ndarray, folder: Path) -> Path:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{name: calib[i : i + 1]} for i in range(len(calib))])

        def get_next(self):  # type: ignore[no-untyped-def]
            return next(self.items, None)

    out = folder / f"{path.stem}.qdq.onnx"
    logging.getLogger().setLevel(logging.ERROR)  # its advice on pre-processing, per layer
    quantize_static(
        str(path),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
    )
    return out


def measure(
    label: str, path: Path, x: np.ndarray, calib: np.ndarray, repeat: int, folder: Path
) -> dict[str, object]:
    graph = axc.load(path)
    macs = sum(layer_macs(graph, n) for n in graph.nodes.values()) * x.shape[0]
    name = graph.inputs[0]
    np.savez(folder / "calib.npz", x=calib)
    axc.apply(graph, f'quantize * data="{folder / "calib.npz"}" samples={len(calib)}\n')
    executor = Executor(graph)
    float_session = ort_session(str(path))
    int8_session = ort_session(str(ort_int8(path, name, calib, folder)))
    t_axc = best_of(lambda: executor.run({name: x}), repeat)
    t_f32 = best_of(lambda: float_session.run(None, {name: x}), repeat)
    t_i8 = best_of(lambda: int8_session.run(None, {name: x}), repeat)
    row: dict[str, object] = {"model": label, "batch": int(x.shape[0]), "gmac": macs / 1e9}
    for key, t in (("axc_int8", t_axc), ("ort_float32", t_f32), ("ort_int8_qdq", t_i8)):
        row[f"{key}_images_per_s"] = x.shape[0] / t
        row[f"{key}_gmac_per_s"] = macs / t / 1e9
    row["ratio_axc_vs_ort_float32"] = t_f32 / t_axc
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
        rows.append(
            measure(
                "digits_cnn",
                ROOT / "examples" / "digits" / "digits_cnn.onnx",
                digits,
                calib,
                args.repeat,
                folder,
            )
        )
        if not args.quick:
            rng = np.random.default_rng(0)
            x = rng.standard_normal((8, 3, 224, 224)).astype(np.float32)
            calib = rng.standard_normal((8, 3, 224, 224)).astype(np.float32)
            path = light_resnet50(folder)
            rows.append(measure("resnet50 (light)", path, x, calib, args.repeat, folder))
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"{'model':18} {'batch':>5} {'':>12} {'images/s':>10} {'GMAC/s':>8}")
    for r in rows:
        for key, label in (
            ("axc_int8", "axc int8"),
            ("ort_float32", "ort float32"),
            ("ort_int8_qdq", "ort int8 QDQ"),
        ):
            print(
                f"{r['model']:18} {r['batch']:5d} {label:>12} "
                f"{r[f'{key}_images_per_s']:10.1f} {r[f'{key}_gmac_per_s']:8.2f}"
            )
        print(f"{'':18} peak RSS {r['peak_rss_mib']:.0f} MiB")
    for r in rows:
        print(
            f"ratio axc exact int8 vs onnxruntime float32 ({r['model']}): "
            f"{r['ratio_axc_vs_ort_float32']:.2f} (target >= 0.5)"
        )


if __name__ == "__main__":
    main()
