"""Models quantized by onnxruntime (QDQ) run bit-exactly in axc's simulator.

onnxruntime executes a QDQ model in one of two ways:

* with basic graph optimizations it runs QuantizeLinear, the float op and
  DequantizeLinear as ONNX specifies them. axc must equal this bit for bit,
  on every model;
* with all optimizations it fuses the patterns into its own integer kernels
  (QLinearConv, QGemm, QLinearGlobalAveragePool, ...). On x86 CPUs without
  VNNI its u8s8 kernels add pairs of products in 16 bits with saturation
  (vpmaddubsw), so 8-bit weights can give different results: this is
  onnxruntime's documented reason for ``reduce_range`` (7-bit weights). With
  reduce_range the saturation cannot happen and axc equals the fused kernels
  bit for bit; ``test_eight_bit_weights_and_saturating_fused_kernels`` pins
  the difference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_static,
)

import axc
from axc.sim import Executor
from tests.conftest import DIGITS, make_model, save, tensor


def _calib_reader(name: str, x: np.ndarray) -> CalibrationDataReader:
    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{name: x[i : i + 1]} for i in range(len(x))])

        def get_next(self):  # type: ignore[no-untyped-def]
            return next(self.items, None)

    return Reader()


def ort_quantize(
    src: Path,
    dst: Path,
    name: str,
    calib: np.ndarray,
    *,
    per_channel: bool,
    reduce_range: bool = False,
    quant_format: QuantFormat = QuantFormat.QDQ,
) -> Path:
    quantize_static(
        str(src),
        str(dst),
        _calib_reader(name, calib),
        quant_format=quant_format,
        per_channel=per_channel,
        reduce_range=reduce_range,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
    )
    return dst


def ort_qoperator(
    src: Path, tmp_path: Path, name: str, calib: np.ndarray, per_channel: bool
) -> tuple[Path, set[str]]:
    """The model in onnxruntime's QOperator format (7-bit weights), and its op types."""
    dst = ort_quantize(
        src,
        tmp_path / "qop.onnx",
        name,
        calib,
        per_channel=per_channel,
        reduce_range=True,
        quant_format=QuantFormat.QOperator,
    )
    return dst, {n.op_type for n in onnx.load(str(dst)).graph.node}


def integer_output(model: Path) -> str:
    """The name of the quantized tensor the final DequantizeLinear reads."""
    m = onnx.load(str(model))
    final = next(n for n in m.graph.node if n.output[0] == m.graph.output[0].name)
    assert final.op_type == "DequantizeLinear"
    return final.input[0]


def ort_integers(model: Path, name: str, x: np.ndarray, level: str) -> np.ndarray:
    m = onnx.load(str(model))
    wanted = integer_output(model)
    m.graph.output.append(helper.make_empty_tensor_value_info(wanted))
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    session = ort.InferenceSession(
        m.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return session.run([wanted], {name: x})[0]


def axc_integers(model: Path, name: str, x: np.ndarray) -> np.ndarray:
    graph = axc.load(model)
    wanted = integer_output(model)
    seen: dict[str, np.ndarray] = {}
    Executor(graph).run({name: x}, observe=lambda n, v: seen.__setitem__(n, v))
    return seen[wanted]


def strided_cnn(tmp_path: Path) -> tuple[Path, str, np.ndarray, np.ndarray]:
    """Strided and dilated convs, a depthwise layer, global average pooling."""
    rng = np.random.default_rng(11)
    init = {
        "w1": rng.standard_normal((6, 2, 3, 3)).astype(np.float32) * 0.5,
        "w2": rng.standard_normal((6, 1, 3, 3)).astype(np.float32) * 0.5,
        "b2": rng.standard_normal(6).astype(np.float32) * 0.2,
        "w3": rng.standard_normal((10, 6, 3, 3)).astype(np.float32) * 0.3,
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["a1"]),
        helper.make_node(
            "Conv", ["a1", "w2", "b2"], ["b"], group=6, dilations=[2, 2], pads=[2, 2, 2, 2]
        ),
        helper.make_node("Relu", ["b"], ["b1"]),
        helper.make_node("Conv", ["b1", "w3"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["c"], ["g"]),
        helper.make_node("Flatten", ["g"], ["y"]),
    ]
    model = make_model(
        nodes, [tensor("x", ["N", 2, 9, 9])], [tensor("y", ["N", 10])], init, opset=13
    )
    x = rng.standard_normal((300, 2, 9, 9)).astype(np.float32)
    return save(model, tmp_path / "strided.onnx"), "x", x[:100], x[100:]


def digits(tmp_path: Path) -> tuple[Path, str, np.ndarray, np.ndarray]:
    return (
        DIGITS / "digits_cnn.onnx",
        "image",
        np.load(DIGITS / "calib.npz")["x"],
        np.load(DIGITS / "test.npz")["x"],
    )


MODELS = {"digits": digits, "strided": strided_cnn}


def _has_vnni() -> bool:
    cpuinfo = Path("/proc/cpuinfo")
    return cpuinfo.exists() and "avx512_vnni" in cpuinfo.read_text()


@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("which", list(MODELS))
def test_bit_exact_against_onnxruntime(tmp_path, which, per_channel) -> None:
    """7-bit weights (reduce_range): onnxruntime fuses every layer into its
    integer kernels, and axc equals them, and the unfused ONNX semantics, bit
    for bit on the whole test split."""
    src, name, calib, test = MODELS[which](tmp_path)
    qdq = ort_quantize(
        src, tmp_path / "q.onnx", name, calib, per_channel=per_channel, reduce_range=True
    )
    ours = axc_integers(qdq, name, test)
    assert ours.dtype == np.int8
    for level in ("ORT_ENABLE_ALL", "ORT_ENABLE_BASIC"):
        np.testing.assert_array_equal(ours, ort_integers(qdq, name, test, level), err_msg=level)
    ops = {n.op for n in axc.load(qdq).nodes.values()}
    assert {"QConv", "Quantize", "Dequantize"} <= ops  # the convolutions run on integers


@pytest.mark.parametrize("per_channel", [True, False])
def test_eight_bit_weights_and_saturating_fused_kernels(tmp_path, per_channel) -> None:
    """8-bit weights: axc equals onnxruntime's ONNX-semantics execution. Its
    fused u8s8 kernels equal axc only where pairs of products cannot saturate
    16 bits, i.e. on CPUs with VNNI (int32 dot products)."""
    src, name, calib, test = digits(tmp_path)
    qdq = ort_quantize(src, tmp_path / "w.onnx", name, calib, per_channel=per_channel)
    ours = axc_integers(qdq, name, test)
    np.testing.assert_array_equal(ours, ort_integers(qdq, name, test, "ORT_ENABLE_BASIC"))
    fused = ort_integers(qdq, name, test, "ORT_ENABLE_ALL")
    if _has_vnni():
        np.testing.assert_array_equal(ours, fused)
    else:
        assert (ours != fused).any()  # onnxruntime's AVX2 kernels saturate (vpmaddubsw)


def test_per_tensor_requantizer_is_float32_half_even() -> None:
    from axc.arith.requant import apply_float32, float32_requantizer
    from axc.sim.int_kernels import requantize

    attr = float32_requantizer(np.array([0.5, 0.25], np.float32), 3, -128, 127)
    acc = np.array([[5, 6], [-5, -6], [7, 2], [1000, -1000]])
    expected = [[2 + 3, 2 + 3], [-2 + 3, -2 + 3], [4 + 3, 0 + 3], [127, -128]]
    assert apply_float32(acc, attr).tolist() == expected  # 2.5 -> 2, 1.5 -> 2, 3.5 -> 4
    np.testing.assert_array_equal(requantize(acc, attr), expected)


def test_quantized_graph_exports_as_qdq_that_onnxruntime_runs(tmp_path) -> None:
    model = DIGITS / "digits_cnn.onnx"
    graph = axc.load(model)
    axc.apply(graph, "quantize * weights=int8 activations=int8\n", model_path=str(model))
    axc.export(graph, tmp_path / "q.onnx")
    ops = {n.op_type for n in onnx.load(str(tmp_path / "q.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "Gemm", "MaxPool"} <= ops
    x, y = np.load(DIGITS / "test.npz")["x"], np.load(DIGITS / "test.npz")["y"]
    theirs = session_run(tmp_path / "q.onnx", {"image": x})
    ours = axc.simulate(graph, x)["logits"]
    # onnxruntime requantizes in float32 where axc uses its fixed-point rule
    # (docs/arithmetic.md), so a few codes may differ; the classes agree.
    assert (theirs.argmax(1) == ours.argmax(1)).mean() >= 0.99
    assert abs((theirs.argmax(1) == y).mean() - (ours.argmax(1) == y).mean()) <= 0.01


def test_imported_qdq_model_round_trips_exactly(tmp_path) -> None:
    src, name, calib, test = digits(tmp_path)
    qdq = ort_quantize(src, tmp_path / "q.onnx", name, calib, per_channel=True, reduce_range=True)
    axc.export(axc.load(qdq), tmp_path / "back.onnx")
    np.testing.assert_array_equal(
        session_run(tmp_path / "back.onnx", {name: test}), session_run(qdq, {name: test})
    )


def test_conv_integer_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(3)
    w = rng.integers(-100, 100, (4, 2, 3, 3)).astype(np.int8)
    model = make_model(
        [helper.make_node("ConvInteger", ["x", "w", "xz"], ["y"], pads=[1, 1, 1, 1])],
        [tensor("x", ["N", 2, 5, 5], onnx.TensorProto.UINT8)],
        [tensor("y", ["N", 4, 5, 5], onnx.TensorProto.INT32)],
        {"w": w, "xz": np.array(7, np.uint8)},
    )
    path = save(model, tmp_path / "ci.onnx")
    graph = axc.load(path)
    assert [n.op for n in graph.topological()] == ["QConv"]
    x = rng.integers(0, 256, (3, 2, 5, 5)).astype(np.uint8)
    expected = session_run(path, {"x": x})
    np.testing.assert_array_equal(axc.simulate(graph, x)["y"], expected)
    axc.export(graph, tmp_path / "back.onnx")
    np.testing.assert_array_equal(session_run(tmp_path / "back.onnx", {"x": x}), expected)


def session_run(model: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    return ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, feeds)[0]


@pytest.mark.parametrize("per_channel", [True, False])
def test_qoperator_format_is_bit_exact(tmp_path, per_channel) -> None:
    """onnxruntime's QOperator format (QLinearConv, integer MaxPool, and its
    com.microsoft QGemm contrib op for dense layers)."""
    src, name, calib, test = digits(tmp_path)
    dst, ops = ort_qoperator(src, tmp_path, name, calib, per_channel)
    assert {"QLinearConv", "QGemm"} <= ops
    np.testing.assert_array_equal(
        axc_integers(dst, name, test), ort_integers(dst, name, test, "ORT_ENABLE_ALL")
    )


def residual_cnn(tmp_path: Path) -> tuple[Path, str, np.ndarray, np.ndarray]:
    """3x3 conv, depthwise conv, 1x1 conv, residual Add, average pooling, Gemm."""
    rng = np.random.default_rng(5)
    init = {
        "w1": rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.4,
        "b1": rng.standard_normal(8).astype(np.float32) * 0.1,
        "w2": rng.standard_normal((8, 1, 3, 3)).astype(np.float32) * 0.4,
        "w3": rng.standard_normal((8, 8, 1, 1)).astype(np.float32) * 0.3,
        "fc": rng.standard_normal((6, 8 * 4 * 4)).astype(np.float32) * 0.2,
        "fb": rng.standard_normal(6).astype(np.float32) * 0.1,
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["a1"]),
        helper.make_node("Conv", ["a1", "w2"], ["b"], pads=[1, 1, 1, 1], group=8),
        helper.make_node("Relu", ["b"], ["b1r"]),
        helper.make_node("Conv", ["b1r", "w3"], ["c"]),
        helper.make_node("Add", ["a1", "c"], ["s"]),
        helper.make_node("AveragePool", ["s"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc", "fb"], ["y"], transB=1),
    ]
    model = make_model(
        nodes, [tensor("x", ["N", 3, 8, 8])], [tensor("y", ["N", 6])], init, opset=13
    )
    x = rng.standard_normal((300, 3, 8, 8)).astype(np.float32)
    return save(model, tmp_path / "residual.onnx"), "x", x[:100], x[100:]


@pytest.mark.parametrize("per_channel", [True, False])
def test_residual_add_and_average_pool_are_bit_exact(tmp_path, per_channel) -> None:
    """In onnxruntime's QOperator format every layer of a residual block is an
    integer kernel (QLinearConv, QLinearAdd, QLinearAveragePool, QGemm); axc
    reproduces each, so the whole network agrees bit for bit."""
    src, name, calib, test = residual_cnn(tmp_path)
    dst, ops = ort_qoperator(src, tmp_path, name, calib, per_channel)
    assert {"QLinearConv", "QLinearAdd", "QLinearAveragePool", "QGemm"} <= ops
    ours = axc_integers(dst, name, test)
    for level in ("ORT_ENABLE_ALL", "ORT_ENABLE_BASIC"):
        np.testing.assert_array_equal(ours, ort_integers(dst, name, test, level), err_msg=level)
    graph_ops = [n.op for n in axc.load(dst).topological()]
    assert graph_ops.count("QConv") == 3 and "QAdd" in graph_ops


def ort_fused(model: Path, name: str, x: np.ndarray, saved: Path) -> np.ndarray:
    """onnxruntime's result with all optimizations; the graph it actually ran
    (its fused integer kernels) is saved to ``saved``."""
    m = onnx.load(str(model))
    wanted = integer_output(model)
    m.graph.output.append(helper.make_empty_tensor_value_info(wanted))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(saved)
    session = ort.InferenceSession(
        m.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return session.run([wanted], {name: x})[0]


@pytest.mark.parametrize("per_channel", [True, False])
def test_residual_qdq_is_bit_exact_and_the_fused_pooling_difference_is_pinned(
    tmp_path, per_channel
) -> None:
    """The residual CNN in QDQ format (3x3, depthwise and 1x1 convolutions,
    residual Add, average pooling, Gemm).

    axc equals onnxruntime's execution of the QDQ model's ONNX semantics bit
    for bit. With all optimizations onnxruntime replaces
    DequantizeLinear -> AveragePool -> QuantizeLinear by its QLinearAveragePool
    kernel, which sums the window in another order and adds the zero point
    before rounding (docs/arithmetic.md), so its fused result is not the QDQ
    model's value. The test pins exactly that: axc, given the graph onnxruntime
    ran (saved after its optimizations), equals onnxruntime's fused result bit
    for bit, and the one rewritten integer kernel that rounds differently is
    QLinearAveragePool."""
    src, name, calib, test = residual_cnn(tmp_path)
    qdq = ort_quantize(
        src, tmp_path / "q.onnx", name, calib, per_channel=per_channel, reduce_range=True
    )
    ours = axc_integers(qdq, name, test)
    np.testing.assert_array_equal(ours, ort_integers(qdq, name, test, "ORT_ENABLE_BASIC"))
    graph_ops = [n.op for n in axc.load(qdq).topological()]
    assert graph_ops.count("QConv") == 3 and "Add" in graph_ops and "QGemm" in graph_ops

    saved = tmp_path / "ran.onnx"
    fused = ort_fused(qdq, name, test, saved)
    ran = onnx.load(str(saved))
    rewritten = {n.op_type for n in ran.graph.node if n.domain == "com.microsoft"}
    assert "QLinearAveragePool" in rewritten
    np.testing.assert_array_equal(axc_integers_of(saved, name, test, integer_output(qdq)), fused)
    assert (ours != fused).any()  # the pooling kernel's rounding, not the model's


def axc_integers_of(model: Path, name: str, x: np.ndarray, wanted: str) -> np.ndarray:
    seen: dict[str, np.ndarray] = {}
    Executor(axc.load(model)).run({name: x}, observe=lambda n, v: seen.__setitem__(n, v))
    return seen[wanted]


@pytest.mark.parametrize("per_channel", [True, False])
def test_qoperator_global_average_pool_is_bit_exact(tmp_path, per_channel) -> None:
    """onnxruntime's QLinearGlobalAveragePool (its QOperator format writes it
    for GlobalAveragePool) imports as a whole-image depthwise QConv with the
    kernel's float32 requantizer; the strided CNN agrees bit for bit."""
    src, name, calib, test = strided_cnn(tmp_path)
    dst, ops = ort_qoperator(src, tmp_path, name, calib, per_channel)
    assert "QLinearGlobalAveragePool" in ops
    ours = axc_integers(dst, name, test)
    for level in ("ORT_ENABLE_ALL", "ORT_ENABLE_BASIC"):
        np.testing.assert_array_equal(ours, ort_integers(dst, name, test, level), err_msg=level)


def branches_cnn(tmp_path: Path) -> tuple[Path, str, np.ndarray, np.ndarray]:
    """Two convolution branches of different ranges, concatenated, then a Gemm."""
    rng = np.random.default_rng(9)
    init = {
        "w1": rng.standard_normal((4, 2, 3, 3)).astype(np.float32) * 0.5,
        "w2": rng.standard_normal((3, 2, 1, 1)).astype(np.float32) * 2.0,
        "fc": rng.standard_normal((5, 7 * 6 * 6)).astype(np.float32) * 0.1,
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["x", "w2"], ["b"]),
        helper.make_node("Concat", ["a", "b"], ["c"], axis=1),
        helper.make_node("Flatten", ["c"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1),
    ]
    model = make_model(
        nodes, [tensor("x", ["N", 2, 6, 6])], [tensor("y", ["N", 5])], init, opset=13
    )
    x = rng.standard_normal((300, 2, 6, 6)).astype(np.float32)
    return save(model, tmp_path / "branches.onnx"), "x", x[:100], x[100:]


def test_qoperator_concat_of_different_scales_is_bit_exact(tmp_path) -> None:
    src, name, calib, test = branches_cnn(tmp_path)
    dst, ops = ort_qoperator(src, tmp_path, name, calib, per_channel=True)
    assert "QLinearConcat" in ops
    ours = axc_integers(dst, name, test)
    for level in ("ORT_ENABLE_ALL", "ORT_ENABLE_BASIC"):
        np.testing.assert_array_equal(ours, ort_integers(dst, name, test, level), err_msg=level)
    graph = axc.load(dst)
    assert any(n.op == "Concat" for n in graph.nodes.values())
    rescaled = [n for n in graph.nodes.values() if ".requantize" in n.name]
    assert rescaled  # the branches' scales differ: at least one is requantized
