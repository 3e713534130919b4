"""QONNX Quant nodes (Brevitas's export format) against qonnx's own
reference implementation of Quant, run inside onnx's reference evaluator."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun
from qonnx.custom_op.general.quant import quant as qonnx_quant

import axc
from axc.errors import ModelError
from axc.frontend import import_model

DOMAIN = "qonnx.custom_op.general"


class Quant(OpRun):  # the class name is the op name to the evaluator
    op_domain = DOMAIN

    def _run(
        self,
        x,
        scale,
        zeropt,
        bitwidth,
        signed=None,
        narrow=None,  # type: ignore
        rounding_mode=None,
    ):
        return (
            qonnx_quant(x, scale, zeropt, bitwidth, signed, narrow, rounding_mode).astype(
                np.float32
            ),
        )


def _quant(inputs: list[str], output: str, **attrs: object):
    defaults = {"signed": 1, "narrow": 0, "rounding_mode": "ROUND"}
    return helper.make_node("Quant", inputs, [output], domain=DOMAIN, **{**defaults, **attrs})


def qonnx_cnn(weight_bits: int = 4, act_bits: int = 6):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 3, 3, 3)).astype(np.float32) * 0.4
    limit = (1 << (weight_bits - 1)) - 1
    fc = rng.standard_normal((5, 6 * 4 * 4)).astype(np.float32) * 0.2
    init = {
        "w": w,
        "ws": (np.abs(w).reshape(6, -1).max(1) / limit).reshape(6, 1, 1, 1).astype(np.float32),
        "z": np.array(0, np.float32),
        "bw": np.array(weight_bits, np.float32),
        "b8": np.array(8, np.float32),
        "ba": np.array(act_bits, np.float32),
        "xs": np.array(0.02, np.float32),
        "as": np.array(0.05, np.float32),
        "fc": fc,
        "fs": np.array(np.abs(fc).max() / 127, np.float32),
        "ys": np.array(0.1, np.float32),
    }
    nodes = [
        _quant(["x", "xs", "z", "b8"], "xq"),
        _quant(["w", "ws", "z", "bw"], "wq", narrow=1),
        helper.make_node("Conv", ["xq", "wq"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        _quant(["r", "as", "z", "ba"], "rq", signed=0),
        helper.make_node("MaxPool", ["rq"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"]),
        _quant(["fc", "fs", "z", "b8"], "fcq", narrow=1),
        helper.make_node("Gemm", ["f", "fcq"], ["y0"], transB=1),
        _quant(["y0", "ys", "z", "b8"], "y"),
    ]
    graph = helper.make_graph(
        nodes,
        "qonnx",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])],
        [numpy_helper.from_array(v, k) for k, v in init.items()],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(DOMAIN, 1)]
    )
    model.ir_version = 8
    return model


@pytest.mark.parametrize("weight_bits, act_bits", [(4, 6), (8, 8), (2, 3)])
def test_quant_nodes_match_qonnx_reference(weight_bits, act_bits) -> None:
    model = qonnx_cnn(weight_bits, act_bits)
    x = np.random.default_rng(1).standard_normal((64, 3, 8, 8)).astype(np.float32)
    expected = ReferenceEvaluator(model, new_ops=[Quant]).run(None, {"x": x})[0]
    graph = import_model(model)
    # the whole network runs on integers of the declared widths
    assert [n.op for n in graph.topological()] == [
        "Quantize",
        "QConv",
        "MaxPool",
        "Reshape",
        "QGemm",
        "Dequantize",
    ]
    conv = graph.find(["QConv"])[0]
    assert np.abs(graph.constants[conv.inputs[1]]).max() <= (1 << (weight_bits - 1)) - 1
    assert str(graph.tensors[conv.outputs[0]].dtype) == f"uint{act_bits}"
    np.testing.assert_array_equal(axc.simulate(graph, x)["y"], expected)


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"rounding_mode": "FLOOR"}, "rounding mode FLOOR cannot be represented"),
        ({"bits": 1}, "1-bit quantization cannot be represented"),
        ({"bits": 24}, "24-bit quantization cannot be represented"),
        ({"zero": 0.5}, "non-integer zero points"),
    ],
)
def test_unrepresentable_quant_is_refused(change, fragment) -> None:
    init = {
        "s": np.array(0.1, np.float32),
        "z": np.array(change.get("zero", 0), np.float32),
        "b": np.array(change.get("bits", 8), np.float32),
    }
    node = _quant(["x", "s", "z", "b"], "y", rounding_mode=change.get("rounding_mode", "ROUND"))
    graph = helper.make_graph(
        [node],
        "q",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [numpy_helper.from_array(v, k) for k, v in init.items()],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(DOMAIN, 1)]
    )
    with pytest.raises(ModelError, match=fragment):
        import_model(model)
