"""axc's float executor against onnxruntime, in the same run.

    python bench/float_executor.py            # digits (batch 450) and the nine light models
    python bench/float_executor.py --quick    # digits and three light models
    python bench/float_executor.py --json

For each model it times both on the same input (best of --repeat runs after
one warm-up), checks that the outputs agree, and reports images per second.
Peak memory is the process's resident high-water mark after each model.
The float executor is the reference the integer simulator extends; it sums
products in float64 so its results do not depend on BLAS blocking, and it is
not meant to beat onnxruntime: the ratio is recorded, no target is set.
"""

from __future__ import annotations

import argparse
import json
import resource
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from timing import best_of

import axc
from axc.sim import Executor

ROOT = Path(__file__).resolve().parent.parent
LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
ALL_LIGHT = [
    "bvlc_alexnet",
    "densenet121",
    "inception_v1",
    "inception_v2",
    "resnet50",
    "shufflenet",
    "squeezenet",
    "vgg19",
    "zfnet512",
]


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(name: str, path: Path, x: np.ndarray | None, repeat: int) -> dict[str, object]:
    graph = axc.load(path)
    if x is None:
        shape = graph.tensors[graph.inputs[0]].shape
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    executor = Executor(graph)
    feeds = {graph.inputs[0]: x}
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    ours = next(iter(executor.run(feeds).values()))
    theirs = session.run(None, feeds)[0]
    t_axc = best_of(lambda: executor.run(feeds), repeat)
    t_ort = best_of(lambda: session.run(None, feeds), repeat)
    return {
        "model": name,
        "batch": int(x.shape[0]),
        "axc_images_per_s": x.shape[0] / t_axc,
        "ort_images_per_s": x.shape[0] / t_ort,
        "ratio": t_ort / t_axc,
        "max_abs_diff": float(np.abs(ours - theirs).max()),
        "peak_rss_mib": peak_mib(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    data = np.load(ROOT / "examples" / "digits" / "test.npz")
    rows = [
        measure(
            "digits_cnn", ROOT / "examples" / "digits" / "digits_cnn.onnx", data["x"], args.repeat
        )
    ]
    for name in ["squeezenet", "resnet50", "bvlc_alexnet"] if args.quick else ALL_LIGHT:
        rows.append(measure(name, LIGHT / f"light_{name}.onnx", None, args.repeat))
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(
        f"{'model':14} {'batch':>5} {'axc img/s':>10} {'ort img/s':>10} {'max|diff|':>10} "
        f"{'peak MiB':>9}"
    )
    for r in rows:
        print(
            f"{r['model']:14} {r['batch']:5d} {r['axc_images_per_s']:10.1f} "
            f"{r['ort_images_per_s']:10.1f} {r['max_abs_diff']:10.2e} {r['peak_rss_mib']:9.0f}"
        )
    for r in rows:
        print(
            f"ratio float executor speed vs onnxruntime ({r['model']}): {r['ratio']:.2f} "
            "(target none; reference figure)"
        )


if __name__ == "__main__":
    main()
