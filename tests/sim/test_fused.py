"""A chain of integer layers run as one compiled program (axc/sim/fused.py)
gives the node-by-node executor's bits, and graphs it does not cover run
node by node."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import helper

import axc
from axc.frontend import import_model
from axc.sim import Executor
from axc.sim.jit import serial
from tests.conftest import DIGITS, make_model, tensor


def chain_cnn() -> tuple:
    """Every layer shape the program handles: a direct 3x3 layer over two
    channels, pooling whose windows reach into the padding, a dilated and a
    strided convolution through the patch matrix, a 1x1 convolution, two
    dense layers."""
    rng = np.random.default_rng(3)
    init = {
        "w1": rng.standard_normal((6, 2, 3, 3)).astype(np.float32) * 0.4,
        "bias1": rng.standard_normal(6).astype(np.float32) * 0.1,
        "w2": rng.standard_normal((8, 6, 3, 3)).astype(np.float32) * 0.2,
        "w3": rng.standard_normal((5, 8, 3, 3)).astype(np.float32) * 0.2,
        "w4": rng.standard_normal((4, 5, 1, 1)).astype(np.float32) * 0.4,
        "fc1": rng.standard_normal((7, 16)).astype(np.float32) * 0.3,
        "fc2": rng.standard_normal((3, 7)).astype(np.float32) * 0.3,
        "shape": np.array([0, -1], np.int64),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1", "bias1"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["a1"]),
        helper.make_node(
            "MaxPool", ["a1"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]
        ),
        helper.make_node("Conv", ["p", "w2"], ["b"], pads=[2, 2, 2, 2], dilations=[2, 2]),
        helper.make_node("Relu", ["b"], ["b1"]),
        helper.make_node("Conv", ["b1", "w3"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Conv", ["c", "w4"], ["d"]),
        helper.make_node("Reshape", ["d", "shape"], ["f"]),
        helper.make_node("Gemm", ["f", "fc1"], ["g"], transB=1),
        helper.make_node("Relu", ["g"], ["g1"]),
        helper.make_node("Gemm", ["g1", "fc2"], ["y"], transB=1),
    ]
    model = make_model(nodes, [tensor("x", ["N", 2, 7, 7])], [tensor("y", ["N", 3])], init)
    x = rng.standard_normal((300, 2, 7, 7)).astype(np.float32)
    return model, x


def wide_cnn() -> tuple:
    """Layers with enough output channels (20 or 24) that factored multipliers
    with several terms run as their terms rather than from the table, and
    short enough reductions that the stacked terms' sums stay float32-exact."""
    rng = np.random.default_rng(4)
    init = {
        "w1": rng.standard_normal((24, 2, 3, 3)).astype(np.float32) * 0.4,
        "w2": rng.standard_normal((20, 24, 1, 1)).astype(np.float32) * 0.2,
        "fc1": rng.standard_normal((20, 20)).astype(np.float32) * 0.2,
        "fc2": rng.standard_normal((3, 20)).astype(np.float32) * 0.3,
        "shape": np.array([0, -1], np.int64),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["a1"]),
        helper.make_node("Conv", ["a1", "w2"], ["b"], strides=[2, 2]),
        helper.make_node("Relu", ["b"], ["b1"]),
        helper.make_node("MaxPool", ["b1"], ["p"], kernel_shape=[3, 3]),
        helper.make_node("Reshape", ["p", "shape"], ["f"]),
        helper.make_node("Gemm", ["f", "fc1"], ["g"], transB=1),
        helper.make_node("Relu", ["g"], ["g1"]),
        helper.make_node("Gemm", ["g1", "fc2"], ["y"], transB=1),
    ]
    model = make_model(nodes, [tensor("x", ["N", 2, 5, 5])], [tensor("y", ["N", 3])], init)
    x = rng.standard_normal((200, 2, 5, 5)).astype(np.float32)
    return model, x


def _quantized(model, x: np.ndarray, directive: str, tmp_path: Path, then: str = ""):
    np.savez(tmp_path / "calib.npz", x=x[:100])
    graph = import_model(model)
    axc.apply(graph, f'{directive} data="{tmp_path / "calib.npz"}"\n{then}')
    return graph


def _same_as_node_by_node(graph, x: np.ndarray) -> None:
    name = graph.inputs[0]
    fused = Executor(graph, threads=2)
    assert fused.fused is not None
    want = Executor(graph, threads=1, fuse=False).run({name: x})
    for threads in (1, 2):
        for batch in (1, 2, 7, len(x)):
            got = Executor(graph, threads=threads).run({name: x[:batch]})
            for out in graph.outputs:
                assert got[out].dtype == want[out].dtype
                np.testing.assert_array_equal(got[out], want[out][:batch])
    with serial():  # a thread that runs a shard of a larger job
        np.testing.assert_array_equal(
            fused.run({name: x})[graph.outputs[0]], want[graph.outputs[0]]
        )


@pytest.mark.parametrize(
    "directive",
    [
        "quantize *",
        "quantize * activation_scheme=symmetric granularity=per_tensor",
        "quantize * weight_scheme=asymmetric activations=uint8",
        "quantize * weights=int4 activations=int5",
        "quantize * weights=int2 activations=int3",
        "quantize * accumulator=int16",
    ],
)
def test_chain_equals_node_by_node(tmp_path, directive) -> None:
    model, x = chain_cnn()
    graph = _quantized(model, x, directive, tmp_path)
    ops = {n.op for n in graph.nodes.values()}
    assert {"Quantize", "QConv", "MaxPool", "QGemm", "Dequantize"} <= ops
    _same_as_node_by_node(graph, x)


def test_digits_and_its_integer_output(tmp_path) -> None:
    """The digits CNN, with its float output and with the graph cut at its
    integer logits (an int8 output, no Dequantize)."""
    x = np.load(DIGITS / "test.npz")["x"]
    graph = axc.load(DIGITS / "digits_cnn.onnx")
    axc.apply(graph, f'quantize * data="{DIGITS / "calib.npz"}"\n')
    _same_as_node_by_node(graph, x)
    last = next(n for n in graph.nodes.values() if n.op == "Dequantize")
    graph.remove_node(last.name)
    graph.outputs = [last.inputs[0]]
    program = Executor(graph).fused
    assert program is not None and program.out_dtype == np.int8
    _same_as_node_by_node(graph, x)


def test_onnxruntime_qdq_model(tmp_path) -> None:
    """A model quantized by onnxruntime (float32 requantization, per-channel
    scales) runs as one program with the bits of the node-by-node executor,
    which tests/frontend/test_qdq.py holds to onnxruntime's."""
    from tests.frontend.test_qdq import ort_quantize

    x = np.load(DIGITS / "test.npz")["x"]
    calib = np.load(DIGITS / "calib.npz")["x"]
    path = ort_quantize(
        DIGITS / "digits_cnn.onnx", tmp_path / "q.onnx", "image", calib, per_channel=True
    )
    graph = axc.load(path)
    assert any(n.attrs.get("requant", {}).get("mode") == "float32" for n in graph.nodes.values())
    _same_as_node_by_node(graph, x)


def test_graphs_it_does_not_cover(tmp_path) -> None:
    from tests.passes.test_quantize import residual_cnn

    model, x = residual_cnn()  # branches, Add, Concat, average pooling, Softmax
    assert Executor(_quantized(model, x, "quantize *", tmp_path)).fused is None
    model, x = chain_cnn()
    assert Executor(import_model(model)).fused is None  # float
    exact = _quantized(model, x, "quantize *", tmp_path, "approximate * multiplier=exact\n")
    assert Executor(exact).fused is not None
    wide = _quantized(model, x, "quantize * weights=int12 activations=int12", tmp_path)
    assert Executor(wide).fused is None  # float32 sums could be inexact
    assert Executor(exact, fuse=False).fused is None


@pytest.mark.parametrize(
    "multiplier",
    ["perforated(0, 2)", "trunc(4)", "trunc_corrected(4)", "drum(3)", "table", "wide table"],
)
def test_approximate_layers(tmp_path, multiplier) -> None:
    """Factored multipliers (one term with its own activation table, and five
    terms) through the direct kernel and the patch matrix; tables through the
    packed and the plain lookup kernels, and with entries so large (17 bits)
    that the packed lanes are emptied every 15 taps."""
    from axc.sim import fused

    rng = np.random.default_rng(5)
    if "table" in multiplier:
        top = 1 << 17 if multiplier == "wide table" else 65026
        np.save(tmp_path / "t.npy", rng.integers(0, top, (256, 256)))
        multiplier = f'"{tmp_path / "t.npy"}"'
    then = f"approximate * multiplier={multiplier}\n"
    model, x = chain_cnn()
    wide, xw = wide_cnn()
    digits = axc.load(DIGITS / "digits_cnn.onnx")
    axc.apply(digits, f'quantize * data="{DIGITS / "calib.npz"}"\n{then}')
    for graph, data in (
        (_quantized(model, x, "quantize *", tmp_path, then), x),
        (_quantized(wide, xw, "quantize *", tmp_path, then), xw),
        (digits, np.load(DIGITS / "test.npz")["x"]),
    ):
        program = Executor(graph).fused
        assert program is not None
        linear = program.code[program.code[:, fused.OP] == fused.CONV]
        assert (linear[:, fused.TERMS] > 0).any() or (linear[:, fused.TABLE] >= 0).any()
        _same_as_node_by_node(graph, data)


def test_every_approximate_path_is_taken(tmp_path) -> None:
    """The cases of test_approximate_layers between them take each path."""
    from axc.sim import fused

    model, x = chain_cnn()
    rows = []
    for top, spec in (
        (65026, "table"),
        (1 << 17, "table"),
        (0, "perforated(0, 2)"),
        (0, "trunc(4)"),
    ):
        if spec == "table":
            np.save(tmp_path / "t.npy", np.random.default_rng(5).integers(0, top, (256, 256)))
            spec = f'"{tmp_path / "t.npy"}"'
        for graph in (
            _quantized(model, x, "quantize *", tmp_path, f"approximate * multiplier={spec}\n"),
        ):
            program = Executor(graph).fused
            assert program is not None
            rows.extend(program.code)
    wide, xw = wide_cnn()
    graph = _quantized(
        wide, xw, "quantize *", tmp_path, "approximate * multiplier=trunc_corrected(4)\n"
    )
    program = Executor(graph).fused
    assert program is not None
    several = program.code[program.code[:, fused.TERMS] > 1]
    assert (several[:, fused.OP] == fused.CONV).any() and (several[:, fused.OP] == fused.GEMM).any()
    fills = [program.fvals[r[fused.FILLS] : r[fused.FILLS] + r[fused.TERMS]] for r in several]
    assert any(f.any() for f in fills)  # a term whose padding (centered 0) is not 0
    code = np.stack(rows)
    terms = code[code[:, fused.TERMS] > 0]
    assert {0, 1} <= set(terms[terms[:, fused.OP] == fused.CONV][:, fused.DIRECT])
    assert (terms[:, fused.OP] == fused.GEMM).any()
    tables = code[code[:, fused.TABLE] >= 0]
    assert (tables[:, fused.PACKED] > 0).any() and (tables[:, fused.PACKED] == 0).any()
    taps = tables[:, fused.C] * tables[:, fused.KH] * tables[:, fused.KW]
    packed = tables[tables[:, fused.PACKED] > 0]
    assert (packed[:, fused.PACKED] < taps[tables[:, fused.PACKED] > 0]).any()  # lanes emptied


def test_observers_see_every_value(tmp_path) -> None:
    model, x = chain_cnn()
    graph = _quantized(model, x, "quantize *", tmp_path)
    seen: dict[str, np.ndarray] = {}
    out = Executor(graph).run({"x": x}, observe=seen.__setitem__)
    assert len(seen) > len(graph.outputs) + 5  # the node-by-node run, value by value
    np.testing.assert_array_equal(out["y"], Executor(graph).run({"x": x})["y"])


def test_numpys_blas_from_compiled_code() -> None:
    from axc.sim.blas import sgemm, sgemm_address

    rng = np.random.default_rng(0)
    a = rng.integers(-127, 128, (16, 72)).astype(np.float32)
    b = rng.integers(-128, 128, (72, 300)).astype(np.float32)
    address = sgemm_address()
    assert address  # numpy's wheels ship OpenBLAS with cblas_sgemm
    c = np.full((16, 300), np.nan, np.float32)
    sgemm(address, a, b, c)
    np.testing.assert_array_equal(c, a @ b)
