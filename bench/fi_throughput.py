"""Fault-injection throughput: axc against PyTorchFI, in one run.

    python bench/fi_throughput.py              # 2000 faults x 450 images, and the other models
    python bench/fi_throughput.py --quick      # 300 faults, digits only
    python bench/fi_throughput.py --json

The same float digits CNN (its weights loaded into an equivalent torch
module), the same fault list (single-bit flips of float32 layer outputs,
drawn by axc) and the same images for both. PyTorchFI runs the way its
documentation shows: one ``declare_neuron_fi`` per fault (the same fault on
every image of the batch, its flip done by a custom hook function on the
hooked layer's output), then one forward pass over the batch. axc runs its
campaign engine: golden activations once, each fault from its layer on, all
(fault, image) pairs batched, provably masked pairs dropped early, on two
threads (torch gets two threads as well). Both count top-1 changes (SDC-1);
the counts are printed side by side.

It then prints axc's rate on the int8 model and on a larger CNN
(3x32x32 input, four conv layers, seeded weights). Peak memory is the
process's resident high-water mark.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "2")
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import numpy as np

import axc
from axc.faults.campaign import Campaign
from axc.faults.model import BitFlip, FaultGroup, generate

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "digits"


def axc_rate(
    graph: axc.Graph,
    x: np.ndarray,
    faults: int,
    layers: tuple[str, ...] | None = None,
    seed: int = 1,
) -> dict[str, float]:
    layers = layers or tuple(n.name for n in graph.topological())
    group = FaultGroup("activations", layers, BitFlip(), "any", faults)
    campaign = Campaign(graph, x, None, [group], seed=seed, threads=2, progress=False)
    start = time.perf_counter()
    report = campaign.run()
    seconds = time.perf_counter() - start
    return {
        "faults": report["faults"],
        "inferences": report["total"]["inferences"],
        "seconds": seconds,
        "per_s": report["total"]["inferences"] / seconds,
        "sdc1": report["total"]["sdc1"]["count"],
        "masked": report["total"]["masked"]["rate"],
    }


def torch_digits() -> object:
    import onnx
    import torch
    from onnx import numpy_helper
    from torch import nn

    weights = {
        i.name: torch.from_numpy(numpy_helper.to_array(i).copy())
        for i in onnx.load(str(DIGITS / "digits_cnn.onnx")).graph.initializer
    }

    class ConvReLU(nn.Conv2d):  # a Conv2d (so pytorchfi hooks it) whose output is post-ReLU
        def forward(self, x):  # type: ignore[no-untyped-def]
            return torch.relu(super().forward(x))

    class LinearReLU(nn.Linear):
        def forward(self, x):  # type: ignore[no-untyped-def]
            return torch.relu(super().forward(x))

    # axc fuses each ReLU into its layer, and its activation sites are the fused
    # outputs; these modules give pytorchfi the same hook points
    model = nn.Sequential(
        ConvReLU(1, 8, 3, padding=1),
        nn.MaxPool2d(2),  # 8x8 -> 4x4
        ConvReLU(8, 16, 3, padding=1),
        nn.MaxPool2d(2),  # 4x4 -> 2x2
        nn.Flatten(),
        LinearReLU(64, 32),
        nn.Linear(32, 10),
    )
    weights = {
        key.replace("3.", "2.", 1).replace("7.", "5.", 1).replace("9.", "6.", 1): value
        for key, value in weights.items()
    }
    model.load_state_dict(weights)
    return model.eval()


def pytorchfi_rate(x: np.ndarray, faults: np.ndarray, sites: list) -> dict[str, float]:
    import torch
    from pytorchfi.core import fault_injection
    from torch import nn

    torch.set_num_threads(2)
    model = torch_digits()

    class BitFlipFI(fault_injection):  # the pattern of pytorchfi's own error models
        mask = 0

        def flip(self, module, inputs, output):  # type: ignore[no-untyped-def]
            if self.get_current_layer() == self.corrupt_layer[0]:
                b = self.corrupt_batch
                c, h, w = self.corrupt_dim1[0], self.corrupt_dim2[0], self.corrupt_dim3[0]
                at = (b, c) if h is None else (b, c, h, w)
                word = output[at].contiguous().view(torch.int32)
                output[at] = (word ^ self.mask).view(torch.float32)
            self.updateLayer()
            if self.get_current_layer() >= self.get_total_layers():
                self.reset_current_layer()

    batch = len(x)
    pfi = BitFlipFI(
        model,
        batch,
        input_shape=list(x.shape[1:]),
        layer_types=[nn.Conv2d, nn.Linear],
        use_cuda=False,
    )
    # pytorchfi's layers in order: conv, conv, linear, linear = axc's weighted layers
    layer_of = {s.layer: k for k, s in enumerate(sites)}
    shapes = [list(s) for s in pfi.get_output_size()]
    xt = torch.from_numpy(x)
    with torch.no_grad():
        golden = model(xt).argmax(1)
    sdc1 = 0
    start = time.perf_counter()
    with torch.no_grad():
        for f in faults:
            k = layer_of[sites[int(f["site"])].layer]
            dims = list(shapes[k][1:])
            pos = np.unravel_index(int(f["index"]), dims)
            c = int(pos[0])
            h, w = (int(pos[1]), int(pos[2])) if len(pos) == 3 else (None, None)
            pfi.mask = torch.tensor(np.uint32(int(f["xor_mask"])).view(np.int32))
            corrupted = pfi.declare_neuron_fi(
                batch=list(range(batch)),
                layer_num=[k] * batch,
                dim1=[c] * batch,
                dim2=[h] * batch,
                dim3=[w] * batch,
                function=pfi.flip,
            )
            out = corrupted(xt)
            broken = torch.isnan(out).any(1)
            sdc1 += int(((out.argmax(1) != golden) | broken).sum())
    seconds = time.perf_counter() - start
    return {
        "faults": len(faults),
        "inferences": len(faults) * batch,
        "seconds": seconds,
        "per_s": len(faults) * batch / seconds,
        "sdc1": sdc1,
    }


def larger_cnn(folder: Path) -> Path:
    """A seeded CNN on 3x32x32 inputs: four 3x3 convolutions (32-64 channels),
    two max pools, two dense layers."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits = [], []

    def conv(name: str, x: str, cin: int, cout: int) -> str:
        w = (rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2 / (9 * cin))).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"{name}.w"))
        inits.append(numpy_helper.from_array(np.zeros(cout, np.float32), f"{name}.b"))
        nodes.append(
            helper.make_node(
                "Conv", [x, f"{name}.w", f"{name}.b"], [f"{name}.y"], pads=[1, 1, 1, 1]
            )
        )
        nodes.append(helper.make_node("Relu", [f"{name}.y"], [f"{name}.r"]))
        return f"{name}.r"

    def pool(name: str, x: str) -> str:
        nodes.append(helper.make_node("MaxPool", [x], [name], kernel_shape=[2, 2], strides=[2, 2]))
        return name

    t = conv("c1", "x", 3, 32)
    t = pool("p1", conv("c2", t, 32, 32))
    t = conv("c3", t, 32, 64)
    t = pool("p2", conv("c4", t, 64, 64))
    nodes.append(helper.make_node("Flatten", [t], ["flat"]))
    for name, (k, n) in (("f1", (64 * 8 * 8, 128)), ("f2", (128, 10))):
        w = (rng.standard_normal((k, n)) * np.sqrt(2 / k)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"{name}.w"))
        inits.append(numpy_helper.from_array(np.zeros(n, np.float32), f"{name}.b"))
        src = "flat" if name == "f1" else "f1.r"
        nodes.append(helper.make_node("Gemm", [src, f"{name}.w", f"{name}.b"], [f"{name}.y"]))
        if name == "f1":
            nodes.append(helper.make_node("Relu", ["f1.y"], ["f1.r"]))
    graph = helper.make_graph(
        nodes,
        "cnn32",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("f2.y", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = folder / "cnn32.onnx"
    onnx.save(model, str(path))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="300 faults, digits only")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    count = 300 if args.quick else args.faults
    data = np.load(DIGITS / "test.npz")
    x = data["x"]
    rows: dict[str, object] = {}

    graph = axc.load(DIGITS / "digits_cnn.onnx")
    # the layers pytorchfi can hook (those with weights): the same sites for both
    layers = tuple(n.name for n in graph.topological() if n.op in ("Conv", "Gemm"))
    faults, sites, _ = generate(
        [FaultGroup("activations", layers, BitFlip(), "any", count)], graph, seed=1
    )
    rows["pytorchfi_float"] = pytorchfi_rate(x, faults, sites)
    axc_rate(graph, x[:16], 20)  # warm-up: Numba builds, thread pools
    rows["axc_float"] = axc_rate(graph, x, count, layers)
    quantized = axc.load(DIGITS / "digits_cnn.onnx")
    axc.apply(quantized, f'quantize * data="{DIGITS / "calib.npz"}"\n')
    axc_rate(quantized, x[:16], 20)
    rows["axc_int8"] = axc_rate(quantized, x, count)
    if not args.quick:
        with tempfile.TemporaryDirectory() as tmp:
            big = axc.load(larger_cnn(Path(tmp)))
            images = np.random.default_rng(1).standard_normal((64, 3, 32, 32)).astype(np.float32)
            axc_rate(big, images[:4], 4)
            rows["axc_cnn32_float"] = axc_rate(big, images, max(50, count // 10))
    rows["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ratio = rows["axc_float"]["per_s"] / rows["pytorchfi_float"]["per_s"]  # type: ignore[index]
    rows["ratio_axc_vs_pytorchfi"] = ratio
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(
        f"{'':28} {'faults':>7} {'inferences':>11} {'seconds':>8} {'inferences/s':>13} {'SDC-1':>7}"
    )
    for key, label in (
        ("pytorchfi_float", "PyTorchFI, digits float"),
        ("axc_float", "axc, digits float"),
        ("axc_int8", "axc, digits int8"),
        ("axc_cnn32_float", "axc, 32x32 CNN float"),
    ):
        if key in rows:
            r = rows[key]
            print(
                f"{label:28} {r['faults']:7d} {r['inferences']:11,d} {r['seconds']:8.2f} "
                f"{r['per_s']:13,.0f} {r['sdc1']:7d}"
            )
    print(f"{'':28} peak RSS {rows['peak_rss_mib']:.0f} MiB")
    print(
        f"ratio axc vs pytorchfi (digits float, single-bit activation faults): {ratio:.1f} "
        "(target >= 10)"
    )


if __name__ == "__main__":
    main()
