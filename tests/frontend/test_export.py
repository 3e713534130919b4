from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

import axc
from axc.frontend import export_model, import_model
from tests.conftest import LIGHT, LIGHT_MODELS, make_model, ort_run, tensor


def test_digits_export_runs_in_onnxruntime_with_same_results(
    tmp_path, digits_model, digits_data
) -> None:
    g = axc.load(digits_model)
    axc.export(g, tmp_path / "out.onnx")
    x, _ = digits_data
    exported = ort_run(tmp_path / "out.onnx", {"image": x})[0]
    original = ort_run(digits_model, {"image": x})[0]
    np.testing.assert_array_equal(exported, original)
    # the free batch dimension survives export
    dims = onnx.load(str(tmp_path / "out.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N"


def test_export_of_multi_axis_softmax_and_constant_output() -> None:
    model = make_model(
        [
            helper.make_node("Softmax", ["x"], ["y"], axis=1),
            helper.make_node("Shape", ["x"], ["s"]),
        ],
        [tensor("x", [2, 3, 4])],
        [tensor("y", [2, 3, 4]), tensor("s", [3], onnx.TensorProto.INT64)],
        opset=11,
    )
    exported = export_model(import_model(model))
    x = np.random.default_rng(1).standard_normal((2, 3, 4)).astype(np.float32)
    got, ref = ort_run(exported, {"x": x}), ort_run(model, {"x": x})
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-6)
    np.testing.assert_array_equal(got[1], [2, 3, 4])


@pytest.mark.slow
@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_models_round_trip_through_export(name) -> None:
    path = LIGHT / f"light_{name}.onnx"
    g = axc.load(path)
    x = np.random.default_rng(0).standard_normal(g.tensors[g.inputs[0]].shape).astype(np.float32)
    exported = ort_run(export_model(g), {g.inputs[0]: x})[0]
    np.testing.assert_allclose(exported, ort_run(path, {g.inputs[0]: x})[0], rtol=1e-5, atol=1e-7)
