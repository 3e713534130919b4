from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import axc
from axc.errors import ModelError
from axc.frontend import import_model
from axc.ir import BATCH, verify
from tests.conftest import LIGHT, LIGHT_MODELS, make_model, ort_run, save, tensor

RNG = np.random.default_rng(0)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def test_digits_model_imports_canonically(digits_model, digits_data) -> None:
    g = axc.load(digits_model)
    verify(g)
    ops = [n.op for n in g.topological()]
    assert ops == ["Conv", "MaxPool", "Conv", "MaxPool", "Reshape", "Gemm", "Gemm"]
    assert [n.attrs.get("activation") for n in g.find(["Conv", "Gemm"])] == [
        "relu",
        "relu",
        "relu",
        None,
    ]
    assert g.tensors["image"].shape == (BATCH, 1, 8, 8)
    x, y = digits_data
    for batch in (1, 7, len(x)):  # the batch is free
        out = axc.simulate(g, x[:batch])["logits"]
        ref = ort_run(digits_model, {"image": x[:batch]})[0]
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-4)
    accuracy = (axc.simulate(g, x)["logits"].argmax(1) == y).mean()
    assert accuracy >= 0.95


def test_batchnorm_folds_into_conv_and_relu_fuses() -> None:
    c = 4
    init = {
        "w": rand(c, 3, 3, 3),
        "b": rand(c),
        "s": rand(c) + 2,
        "bb": rand(c),
        "m": rand(c),
        "v": np.abs(rand(c)) + 0.5,
    }
    model = make_model(
        [
            helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["n"], epsilon=1e-3),
            helper.make_node("Relu", ["n"], ["y"]),
        ],
        [tensor("x", ["batch", 3, 6, 6])],
        [tensor("y", ["batch", c, 6, 6])],
        init,
    )
    g = import_model(model)
    assert [n.op for n in g.topological()] == ["Conv"]
    assert g.nodes[next(iter(g.nodes))].attrs["activation"] == "relu"
    x = rand(2, 3, 6, 6)
    np.testing.assert_allclose(
        axc.simulate(g, x)["y"], ort_run(model, {"x": x})[0], rtol=1e-5, atol=1e-5
    )


def test_standalone_batchnorm_dropout_identity() -> None:
    c = 3
    init = {"s": rand(c), "bb": rand(c), "m": rand(c), "v": np.abs(rand(c)) + 0.5}
    model = make_model(
        [
            helper.make_node("Identity", ["x"], ["i"]),
            helper.make_node("BatchNormalization", ["i", "s", "bb", "m", "v"], ["n"]),
            helper.make_node("Dropout", ["n"], ["d"]),
            helper.make_node("Sigmoid", ["d"], ["y"]),
        ],
        [tensor("x", [1, c, 4, 4])],
        [tensor("y", [1, c, 4, 4])],
        init,
    )
    g = import_model(model)
    assert [n.op for n in g.topological()] == ["Mul", "Add", "Sigmoid"]
    x = rand(1, c, 4, 4)
    np.testing.assert_allclose(axc.simulate(g, x)["y"], ort_run(model, {"x": x})[0], rtol=1e-5)


def test_constant_subgraphs_fold_including_batch_dependent_shapes() -> None:
    # weights built with ConstantOfShape; a PyTorch-style flatten x.view(x.size(0), -1)
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [6, 12])
    model = make_model(
        [
            helper.make_node(
                "ConstantOfShape",
                ["wshape"],
                ["w"],
                value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.25]),
            ),
            helper.make_node("Shape", ["x"], ["s"]),
            helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
            helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
            helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
            helper.make_node("Reshape", ["x", "target"], ["flat"]),
            helper.make_node("Gemm", ["flat", "w"], ["y"], transB=1),
        ],
        [tensor("x", ["N", 3, 2, 2])],
        [tensor("y", ["N", 6])],
        {
            "wshape": np.array([6, 12], np.int64),
            "zero": np.array(0, np.int64),
            "axes": np.array([0], np.int64),
            "minus1": np.array([-1], np.int64),
        },
    )
    del shape
    g = import_model(model)
    assert [n.op for n in g.topological()] == ["Reshape", "Gemm"]
    assert g.nodes[g.topological()[0].name].attrs["shape"] == (BATCH, 12)
    x = rand(5, 3, 2, 2)
    np.testing.assert_allclose(axc.simulate(g, x)["y"], ort_run(model, {"x": x})[0], rtol=1e-5)


@pytest.mark.parametrize(
    "attrs",
    [
        {"auto_pad": "SAME_UPPER", "strides": [2, 2]},
        {"auto_pad": "SAME_LOWER"},
        {"pads": [0, 1, 2, 1], "dilations": [2, 1]},
        {"group": 4, "pads": [1, 1, 1, 1]},  # depthwise
    ],
)
def test_conv_variants_match_onnxruntime(attrs) -> None:
    group = attrs.get("group", 1)
    w = rand(4, 4 // group, 3, 3)
    model = make_model(
        [helper.make_node("Conv", ["x", "w"], ["y"], **attrs)],
        [tensor("x", [2, 4, 7, 7])],
        [tensor("y", None)],
        {"w": w},
    )
    x = rand(2, 4, 7, 7)
    g = import_model(model)
    np.testing.assert_allclose(
        axc.simulate(g, x)["y"], ort_run(model, {"x": x})[0], rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("opset", [11, 13, 18, 19, 22])
@pytest.mark.parametrize(
    "attrs",
    [
        {"kernel_shape": [2, 2], "strides": [2, 2]},
        {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]},
        {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1},
        {"kernel_shape": [3, 2], "strides": [2, 1], "pads": [0, 1, 1, 0], "ceil_mode": 1},
        {"kernel_shape": [2, 3, 2]},
        {"kernel_shape": [3], "pads": [1, 1]},
    ],
)
def test_average_pool_sums_in_onnxruntimes_order(opset, attrs) -> None:
    """Bit for bit: onnxruntime sums windows column by column before opset 19
    and row by row from it on; the importer records which (sum_order)."""
    nd = len(attrs["kernel_shape"])
    shape = [3, 4, 9, 11, 6][: 2 + nd]
    model = make_model(
        [helper.make_node("AveragePool", ["x"], ["y"], **attrs)],
        [tensor("x", shape)],
        [tensor("y", None)],
        opset=opset,
    )
    x = rand(*shape) * 3
    g = import_model(model)
    (node,) = g.nodes.values()
    assert node.attrs["sum_order"] == ("columns" if opset < 19 else "rows")
    np.testing.assert_array_equal(axc.simulate(g, x)["y"], ort_run(model, {"x": x})[0])


def test_old_opset_softmax_flattens_trailing_axes() -> None:
    model = make_model(
        [helper.make_node("Softmax", ["x"], ["y"], axis=1)],
        [tensor("x", [2, 3, 4])],
        [tensor("y", [2, 3, 4])],
        opset=11,
    )
    g = import_model(model)
    assert g.topological()[0].attrs["axes"] == (1, 2)
    x = rand(2, 3, 4)
    np.testing.assert_allclose(axc.simulate(g, x)["y"], ort_run(model, {"x": x})[0], rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_models_match_onnxruntime(name) -> None:
    path = LIGHT / f"light_{name}.onnx"
    g = axc.load(path)
    verify(g)
    x = rand(*g.tensors[g.inputs[0]].shape)
    out = next(iter(axc.simulate(g, x).values()))
    ref = ort_run(path, {g.inputs[0]: x})[0]
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------- bad input
def test_missing_file(tmp_path) -> None:
    with pytest.raises(ModelError, match="no such file"):
        axc.load(tmp_path / "nope.onnx")


def test_truncated_model(tmp_path, digits_model) -> None:
    data = digits_model.read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"cut\.onnx"):
        axc.load(path)


def test_not_an_onnx_file(tmp_path) -> None:
    path = tmp_path / "notes.onnx"
    path.write_text("these are my notes, not a model\n")
    with pytest.raises(ModelError, match=r"not (a readable ONNX|an ONNX) model"):
        axc.load(path)


def test_unsupported_op_names_op_node_and_supported_list(tmp_path) -> None:
    model = make_model(
        [
            helper.make_node("Relu", ["x"], ["r"], name="act"),
            helper.make_node("Erf", ["r"], ["y"], name="my_erf"),
        ],
        [tensor("x", [1, 4])],
        [tensor("y", [1, 4])],
    )
    with pytest.raises(axc.UnsupportedOpError) as info:
        axc.load(save(model, tmp_path / "erf.onnx"))
    message = str(info.value)
    assert "Erf" in message and "'my_erf'" in message and "Supported ops:" in message
    assert "Conv" in message


def test_symbolic_non_batch_dimension_is_refused(tmp_path) -> None:
    model = make_model(
        [helper.make_node("Relu", ["x"], ["y"])],
        [tensor("x", ["N", 3, "height", 8])],
        [tensor("y", ["N", 3, "height", 8])],
    )
    with pytest.raises(ModelError, match="symbolic dimension 'height' at axis 2"):
        axc.load(save(model, tmp_path / "sym.onnx"))


def test_opset_outside_supported_range(tmp_path) -> None:
    model = make_model(
        [helper.make_node("Relu", ["x"], ["y"])], [tensor("x", [1])], [tensor("y", [1])], opset=6
    )
    model.ir_version = 3
    with pytest.raises(ModelError, match=r"opset 6 is outside the supported range 7"):
        axc.load(save(model, tmp_path / "old.onnx"))


def _external_model(tmp_path, location: str):
    import onnx

    w = rand(4, 4)
    model = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        [tensor("x", [1, 4])],
        [tensor("y", [1, 4])],
        {"w": w},
    )
    folder = tmp_path / "model"
    folder.mkdir()
    onnx.save(
        model,
        str(folder / "m.onnx"),
        save_as_external_data=True,
        location="w.bin",
        size_threshold=0,
    )
    loaded = onnx.load(str(folder / "m.onnx"), load_external_data=False)
    for entry in loaded.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
    onnx.save(loaded, str(folder / "m.onnx"))
    return folder / "m.onnx", w


def test_external_data_inside_folder_is_read(tmp_path) -> None:
    path, w = _external_model(tmp_path, "w.bin")
    x = rand(1, 4)
    np.testing.assert_allclose(axc.simulate(axc.load(path), x)["y"], x @ w, rtol=1e-6)


@pytest.mark.parametrize("location", ["../secret.bin", "sub/../../secret.bin", "/etc/passwd"])
def test_external_data_outside_folder_is_refused(tmp_path, location) -> None:
    (tmp_path / "secret.bin").write_bytes(b"\0" * 64)
    path, _ = _external_model(tmp_path, location)
    with pytest.raises(ModelError, match=r"(outside the model's folder|absolute path)"):
        axc.load(path)
