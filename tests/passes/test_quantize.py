from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import axc
from axc.errors import DirectiveError, UserError
from axc.frontend import import_model
from axc.ir import verify
from tests.conftest import DIGITS, make_model, tensor

MODEL = DIGITS / "digits_cnn.onnx"
TEST = DIGITS / "test.npz"


def quantized(text: str, model=MODEL):
    g = axc.load(model)
    axc.apply(g, text, model_path=str(model))
    return g


def test_int8_digits_within_one_point_of_float() -> None:
    float_top1 = axc.evaluate(axc.load(MODEL), TEST)["top1"]
    g = quantized("quantize * weights=int8 activations=int8\n")
    verify(g)
    result = axc.evaluate(g, TEST)
    assert result["top1"] >= float_top1 - 0.01
    ops = [n.op for n in g.topological()]
    assert ops == [
        "Quantize",
        "QConv",
        "MaxPool",
        "QConv",
        "MaxPool",
        "Reshape",
        "QGemm",
        "QGemm",
        "Dequantize",
    ]
    assert g.metadata["integer_outputs"] == {"logits": "logits.q"}
    assert g.tensors["logits.q"].dtype == axc.ir.ElemType("int", 8, True)


def test_later_directives_override_earlier_ones_per_layer() -> None:
    g = quantized(
        "quantize * weights=int8\nquantize op(Gemm) weights=int4 granularity=per_tensor\n"
    )
    gemm_weights = [g.constants[n.inputs[1]] for n in g.find(["QGemm"])]
    conv_weights = [g.constants[n.inputs[1]] for n in g.find(["QConv"])]
    assert all(np.abs(w).max() <= 7 for w in gemm_weights)
    assert all(np.abs(w).max() == 127 for w in conv_weights)  # symmetric per channel
    assert all(len(n.attrs["requant"]["multiplier"]) >= 1 for n in g.find(["QGemm"]))


def test_symmetric_activations_and_unsigned_types() -> None:
    g = quantized("quantize * activations=int8 activation_scheme=symmetric\n")
    assert all(n.attrs["x_zero_point"] == 0 for n in g.find(["QConv", "QGemm"]))
    g = quantized("quantize * activations=uint8 weights=uint8 weight_scheme=asymmetric\n")
    assert g.tensors["image.q"].dtype == axc.ir.ElemType("int", 8, False)
    assert axc.evaluate(g, TEST)["top1"] >= 0.95


@pytest.mark.parametrize("method", ["percentile(99.9)", "mse"])
def test_calibration_methods_clip_the_range(method) -> None:
    # at 4 bits both methods trade clipping of rare large values for resolution
    def scales(g):
        return [g.tensors[t].quant.scale[0] for t in ("/1/Relu_output_0.q", "logits.q")]

    wide = scales(quantized("quantize * activations=int4 calibration=minmax\n"))
    narrow = scales(quantized(f"quantize * activations=int4 calibration={method}\n"))
    assert all(n < w for n, w in zip(narrow, wide, strict=True))


def residual_cnn() -> tuple:
    """Conv, depthwise conv, residual Add, Concat of two scales, AveragePool, Gemm, Softmax."""
    rng = np.random.default_rng(7)
    init = {
        "w1": rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3,
        "w2": rng.standard_normal((8, 1, 3, 3)).astype(np.float32) * 0.3,
        "w3": rng.standard_normal((4, 8, 1, 1)).astype(np.float32) * 0.3,
        "fc": rng.standard_normal((5, 12 * 2 * 2)).astype(np.float32) * 0.2,
        "shape": np.array([0, -1], np.int64),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["a1"]),
        helper.make_node("Conv", ["a1", "w2"], ["b"], pads=[1, 1, 1, 1], group=8),
        helper.make_node("Add", ["a1", "b"], ["s"]),
        helper.make_node("Conv", ["s", "w3"], ["c"]),
        helper.make_node("Concat", ["s", "c"], ["cat"], axis=1),
        helper.make_node("AveragePool", ["cat"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Reshape", ["p", "shape"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1),
        helper.make_node("Softmax", ["y"], ["prob"]),
    ]
    model = make_model(nodes, [tensor("x", ["N", 3, 4, 4])], [tensor("prob", ["N", 5])], init)
    x = rng.standard_normal((64, 3, 4, 4)).astype(np.float32)
    return model, x


def test_lowering_of_add_concat_average_and_float_islands(tmp_path) -> None:
    model, x = residual_cnn()
    data = tmp_path / "calib.npz"
    np.savez(data, x=x)
    g = import_model(model)
    reference = g.copy()
    axc.apply(g, f'quantize * data="{data}"\n')
    verify(g)
    ops = [n.op for n in g.topological()]
    for op in ("QConv", "QAdd", "Requantize", "Concat", "QAveragePool", "QGemm", "Softmax"):
        assert op in ops, ops
    assert ops[-2:] == ["Dequantize", "Softmax"]  # Softmax stays float
    assert g.find(["QConv"])[1].attrs["group"] == 8
    result = axc.evaluate(g, data, reference=reference)
    assert result["agreement_top1"] >= 0.9 and result["max_abs_diff"] < 0.1


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "text, fragment, column",
    [
        ("quantize * weights=int1\n", "weights=int1: 1-bit integers are not supported", 20),
        ("quantize * activations=int40\n", "40-bit integers are not supported", 24),
        ("quantize * weights=float8\n", "expected an integer type", 20),
        ("quantize * accumulator=uint32\n", "must be a signed type", 24),
        ("quantize * calibration=percentile(30)\n", "percentile must lie in (50, 100]", 24),
        ("quantize * calibration=percentil(99)\n", "did you mean 'percentile'", 24),
    ],
)
def test_bad_quantize_parameters(text, fragment, column) -> None:
    with pytest.raises(DirectiveError) as info:
        axc.apply(axc.load(MODEL), text)
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"<directives>:1:{column}:"), str(info.value)


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda: {"x": np.zeros((10, 1, 7, 7), np.float32)}, "needs [batch, 1, 8, 8]"),
        (lambda: {"x": np.array([["a"] * 64] * 3).reshape(3, 1, 8, 8)}, "expected floating point"),
        (lambda: {"x": np.zeros((0, 1, 8, 8), np.float32)}, "the data set is empty"),
        (lambda: {"x": np.full((4, 1, 8, 8), np.nan, np.float32)}, "NaN or infinite"),
        (lambda: {"images": np.zeros((4, 1, 8, 8), np.float32)}, "needs an array 'x'"),
    ],
)
def test_bad_calibration_data(tmp_path, make, fragment) -> None:
    path = tmp_path / "calib.npz"
    np.savez(path, **make())
    with pytest.raises(UserError) as info:
        axc.apply(axc.load(MODEL), f'quantize * data="{path}"\n')
    assert fragment in str(info.value)


def test_missing_calibration_data(tmp_path) -> None:
    with pytest.raises(UserError, match="no such data set"):
        axc.apply(axc.load(MODEL), f'quantize * data="{tmp_path / "none.npz"}"\n')
    lonely = tmp_path / "m.onnx"
    lonely.write_bytes(MODEL.read_bytes())
    with pytest.raises(UserError, match="quantize needs calibration data"):
        axc.apply(axc.load(lonely), "quantize *\n", model_path=str(lonely))
