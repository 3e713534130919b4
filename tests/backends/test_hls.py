"""The HLS backend: csim (g++ against the real ap_int headers) against the simulator."""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import axc
from axc.cli import main
from axc.errors import UserError
from axc.faults.model import BitFlip, FaultGroup, generate
from tests.conftest import DIGITS
from tests.faults.test_engine import _naive

hls = importlib.import_module("axc.backends.hls")
pytestmark = pytest.mark.tools
MODEL = DIGITS / "digits_cnn.onnx"


@pytest.fixture(scope="module")
def data():  # type: ignore[no-untyped-def]
    d = np.load(DIGITS / "test.npz")
    return d["x"], d["y"]


def lowered(graph: axc.Graph, folder: Path, **options):  # type: ignore[no-untyped-def]
    folder.mkdir()
    return hls.HlsBackend().lower(graph, hls.HlsOptions(**options), folder)


def compiled(directives: str) -> axc.Graph:
    graph = axc.load(MODEL)
    axc.apply(graph, directives, model_path=str(MODEL))
    return graph


@pytest.mark.parametrize(
    "directives",
    [
        "quantize *\n",
        "quantize *\napproximate op(Conv) multiplier=drum(4)\n",
        "quantize * weights=int6\n",
        "quantize * activation_scheme=symmetric\nprotect * range(bounds=profile(100))\n",
    ],
    ids=["int8", "approximate", "6-bit weights", "range protection"],
)
def test_csim_equals_the_simulator_on_the_whole_test_split(tmp_path, data, directives) -> None:
    x, _ = data
    graph = compiled(directives)
    artifacts = lowered(graph, tmp_path / "prj", reuse=2)
    source = (tmp_path / "prj" / "firmware" / "axc_model.cpp").read_text()
    assert "UNROLL factor=4" in source  # 8 channels, reuse 2: 4 multipliers
    names = {p.name for p in artifacts.files}
    assert {"axc_model.cpp", "axc_model.h", "axc_tb.cpp", "run_hls.tcl"} <= names
    got = hls.csim(tmp_path / "prj", x, tmp_path)
    want = axc.simulate(graph, x)[graph.outputs[0]]
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    if "drum" in directives:
        assert any(p.name.startswith("axc_mul_drum") for p in artifacts.files)


def test_replayed_faults_give_the_simulators_faulty_outputs(tmp_path, data) -> None:
    x = data[0][:60]
    graph = compiled("quantize *\n")
    artifacts = lowered(graph, tmp_path / "prj")
    sites_of = artifacts.summary["fault_sites"]
    layers = tuple(n.name for n in graph.topological())
    faults, sites, _ = generate(
        [FaultGroup("activations", layers, BitFlip(), "any", 50)], graph, seed=5
    )
    assert len(faults) == 50
    golden = axc.simulate(graph, x)[graph.outputs[0]]
    changed = 0
    for fault in faults:
        site = sites[int(fault["site"])]
        want = _naive(graph, x, site, fault)
        got = hls.csim(
            tmp_path / "prj",
            x,
            tmp_path,
            (
                sites_of[site.tensor],
                int(fault["index"]),
                int(fault["and_mask"]),
                int(fault["or_mask"]),
                int(fault["xor_mask"]),
            ),
        )
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
        changed += int((want != golden).any())
    assert changed > 5  # the faults did something


HOSTILE = [
    "conv/1.a:b-c d",
    "*/ int main() { return 1; } /*",
    'quote"d',
    "line\nbreak",
    "class",
    "conv_1_a_b_c_d",
    "x" * 300,
]


def hostile_model(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A float CNN whose layer and tensor names try to break generated code,
    with 40 inputs (saved beside it as calib.npz)."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((4, 1, 3, 3)).astype(np.float32), HOSTILE[0])
    w2 = numpy_helper.from_array(rng.standard_normal((5, 4 * 4 * 4)).astype(np.float32), HOSTILE[2])
    nodes = [
        helper.make_node(
            "Conv", ["in put", HOSTILE[0]], [HOSTILE[1]], name=HOSTILE[3], pads=[1] * 4
        ),
        helper.make_node("Relu", [HOSTILE[1]], [HOSTILE[4]], name=HOSTILE[5]),
        helper.make_node(
            "MaxPool", [HOSTILE[4]], [HOSTILE[6]], name="*/", kernel_shape=[2, 2], strides=[2, 2]
        ),
        helper.make_node("Flatten", [HOSTILE[6]], ["flat :: -"], name="flat\tten"),
        helper.make_node("Gemm", ["flat :: -", HOSTILE[2]], ['out"put'], name="class", transB=1),
    ]
    model = helper.make_model(
        helper.make_graph(
            nodes,
            "g",
            [helper.make_tensor_value_info("in put", TensorProto.FLOAT, ["N", 1, 8, 8])],
            [helper.make_tensor_value_info('out"put', TensorProto.FLOAT, ["N", 5])],
            [w1, w2],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    path = tmp_path / "hostile.onnx"
    onnx.save(model, str(path))
    x = rng.standard_normal((40, 1, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "calib.npz", x=x)
    return path, x


def test_hostile_names_give_code_that_compiles_and_runs(tmp_path) -> None:
    path, x = hostile_model(tmp_path)
    graph = axc.load(path)
    axc.apply(graph, "quantize *\n", model_path=str(path))
    lowered(graph, tmp_path / "prj")
    source = (tmp_path / "prj" / "firmware" / "axc_model.cpp").read_text()
    assert "return 1;" not in source.replace("// ", "")  # no name reached the code
    got = hls.csim(tmp_path / "prj", x, tmp_path)
    np.testing.assert_array_equal(got, axc.simulate(graph, x)[graph.outputs[0]])


def test_axc_verify_and_compile(tmp_path, capsys) -> None:
    q = str(DIGITS / "quantize.ax")
    code = main(
        [
            "verify",
            str(MODEL),
            "-d",
            q,
            "--data",
            str(DIGITS / "test.npz"),
            "--json",
            "--images",
            "100",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["bit_exact"] and result["images"] == 100
    # hls is the default backend of an integer design without a target
    assert main(["compile", str(MODEL), "-d", q, "-o", str(tmp_path / "b"), "--quiet"]) == 0
    assert (tmp_path / "b" / "hls" / "firmware" / "axc_model.cpp").exists()


def test_missing_gxx_or_headers_name_what_to_install(tmp_path, data, monkeypatch) -> None:
    graph = compiled("quantize *\n")
    lowered(graph, tmp_path / "prj")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="apt install g\\+\\+"):
        hls.csim(tmp_path / "prj", data[0][:2], tmp_path)
    monkeypatch.undo()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match="pip install --no-deps hls4ml"):
        hls.csim(tmp_path / "prj", data[0][:2], tmp_path)


def test_the_reuse_directive_sets_a_layers_parallelism(tmp_path) -> None:
    graph = compiled('quantize *\nreuse * factor=4\nreuse "/3/Conv" factor=1\n')
    lowered(graph, tmp_path / "prj")
    source = (tmp_path / "prj" / "firmware" / "axc_model.cpp").read_text()
    conv1 = source.split("layer1_qconv(")[1].split("layer2_")[0]
    conv2 = source.split("layer3_qconv(")[1].split("layer4_")[0]
    assert "UNROLL factor=2" in conv1  # 8 outputs, each multiplier used 4 times
    assert "UNROLL factor=16" in conv2 and "ARRAY_PARTITION" in conv2


def test_checksum_and_redundancy_lower_and_flag_in_csim(tmp_path, data) -> None:
    x = data[0][:100]
    graph = compiled(
        "quantize *\nprotect op(Conv, Gemm) checksum()\n"
        'protect "/7/Gemm" duplicate()\nprotect "/9/Gemm" triplicate()\n'
    )
    artifacts = lowered(graph, tmp_path / "prj")
    got = hls.csim(tmp_path / "prj", x, tmp_path)
    assert not hls.csim_status(tmp_path).any()  # no false alarm
    np.testing.assert_array_equal(got, axc.simulate(graph, x)[graph.outputs[0]])
    sites = artifacts.summary["fault_sites"]
    gemm7 = graph.nodes["/7/Gemm"].outputs[0]
    gemm9 = graph.nodes["/9/Gemm"].outputs[0]
    # a sign flip in the duplicated layer's output: detected on every image
    hls.csim(tmp_path / "prj", x, tmp_path, (sites[gemm7], 3, 0xFF, 0, 0x80))
    assert hls.csim_status(tmp_path).all()
    # the same in one copy of the triplicated layer: outvoted, nothing to see
    voted = hls.csim(tmp_path / "prj", x, tmp_path, (sites[gemm9], 3, 0xFF, 0, 0x80))
    assert not hls.csim_status(tmp_path).any()
    np.testing.assert_array_equal(voted, got)


def test_a_residual_cnn_with_average_pooling(tmp_path) -> None:
    """QAdd (a residual), QAveragePool with padding, QGlobalAveragePool."""
    rng = np.random.default_rng(3)

    def weight(name, shape):  # type: ignore[no-untyped-def]
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c2", "r1"], ["s"]),
        helper.make_node("Relu", ["s"], ["r2"]),
        helper.make_node(
            "AveragePool", ["r2"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]
        ),
        helper.make_node("GlobalAveragePool", ["p"], ["gp"]),
        helper.make_node("Flatten", ["gp"], ["f"]),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1),
    ]
    inits = [
        weight("w1", (8, 3, 3, 3)),
        weight("b1", (8,)),
        weight("w2", (8, 8, 3, 3)),
        weight("b2", (8,)),
        weight("w3", (5, 8)),
        weight("b3", (5,)),
    ]
    model = helper.make_model(
        helper.make_graph(
            nodes,
            "residual",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 9, 9])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])],
            inits,
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    path = tmp_path / "residual.onnx"
    onnx.save(model, str(path))
    x = rng.standard_normal((64, 3, 9, 9)).astype(np.float32)
    np.savez(tmp_path / "calib.npz", x=x)
    graph = axc.load(path)
    axc.apply(graph, "quantize *\n", model_path=str(path))
    assert {"QAdd", "QAveragePool", "QGlobalAveragePool"} <= {n.op for n in graph.nodes.values()}
    lowered(graph, tmp_path / "prj")
    got = hls.csim(tmp_path / "prj", x, tmp_path)
    want = axc.simulate(graph, x)[graph.outputs[0]]
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_a_layer_the_backend_cannot_lower_is_named(tmp_path) -> None:
    graph = axc.load(MODEL)  # float: Conv, Gemm
    with pytest.raises(UserError, match="cannot lower Conv, Gemm"):
        lowered(graph, tmp_path / "prj")


def test_verify_mistakes_are_user_errors(tmp_path, capsys) -> None:
    data = str(DIGITS / "test.npz")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep me")
    q = str(DIGITS / "quantize.ax")
    float_only = tmp_path / "f.ax"
    float_only.write_text("cut *\n")
    for args, message in (
        (["-d", q, "--keep", str(busy)], "is not empty"),
        (["-d", str(float_only)], "cannot lower Conv, Gemm"),
        (["-d", q, "--backend", "hsl"], "unknown backend 'hsl'; did you mean 'hls'"),
        (["-d", q, "--option", "reuse=-1"], "reuse must be 0"),
    ):
        code = main(["verify", str(MODEL), "--data", data, "--images", "5", *args])
        err = capsys.readouterr().err
        assert code == 1, err
        assert message in err and "Traceback" not in err
    assert (busy / "mine.txt").read_text() == "keep me"
