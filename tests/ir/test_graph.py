from __future__ import annotations

import numpy as np
import pytest

import axc
from axc.ir import (
    BATCH,
    FLOAT32,
    ElemType,
    Graph,
    Node,
    VerificationError,
    read_ir,
    to_dot,
    to_text,
    verify,
    write_ir,
)
from axc.ir.types import TensorInfo


def small_graph() -> Graph:
    g = Graph("small")
    g.add_input("x", (BATCH, 4), FLOAT32)
    g.add_constant("w", np.arange(12, dtype=np.float32).reshape(3, 4))
    g.tensors["h"] = TensorInfo("h", (BATCH, 3), FLOAT32)
    g.add_node(
        Node(
            "fc",
            "Gemm",
            ["x", "w"],
            ["h"],
            {"trans_a": False, "trans_b": True, "alpha": 1.0, "beta": 1.0, "activation": None},
        )
    )
    g.tensors["y"] = TensorInfo("y", (BATCH, 3), FLOAT32)
    g.add_node(Node("act", "Relu", ["h"], ["y"]))
    g.tensors["z"] = TensorInfo("z", (BATCH, 3), FLOAT32)
    g.add_node(Node("sq", "Mul", ["y", "y"], ["z"]))
    g.outputs = ["z"]
    return g


def test_edges_carry_tensor_and_operand_index() -> None:
    g = small_graph()
    verify(g)
    edges = sorted((u, v, d["tensor"], d["index"]) for u, v, d in g.nx.edges(data=True))
    assert edges == [("act", "sq", "y", 0), ("act", "sq", "y", 1), ("fc", "act", "h", 0)]


def test_topological_order_is_deterministic() -> None:
    g = Graph("fan")
    g.add_input("x", (2,), FLOAT32)
    for name in ("b", "a", "c"):
        g.tensors[name] = TensorInfo(name, (2,), FLOAT32)
        g.add_node(Node(f"n_{name}", "Relu", ["x"], [name]))
    g.outputs = ["a", "b", "c"]
    orders = {tuple(n.name for n in g.topological()) for _ in range(5)}
    assert orders == {("n_b", "n_a", "n_c")}  # insertion order breaks ties


def test_verify_rejects_dangling_operand() -> None:
    g = small_graph()
    g.nodes["act"].inputs[0] = "missing"
    with pytest.raises(VerificationError, match="dangling"):
        verify(g)


def test_verify_rejects_wrong_recorded_shape() -> None:
    g = small_graph()
    g.tensors["h"].shape = (BATCH, 5)
    with pytest.raises(VerificationError, match="recorded as"):
        verify(g)


def test_verify_rejects_unknown_op_and_duplicate_producer() -> None:
    g = small_graph()
    g.tensors["q"] = TensorInfo("q", (BATCH, 3), FLOAT32)
    g.add_node(Node("bad", "Frobnicate", ["y"], ["q"]))
    g.add_node(Node("twice", "Relu", ["h"], ["y"]))
    with pytest.raises(VerificationError) as info:
        verify(g)
    assert "not canonical" in str(info.value) and "produced by" in str(info.value)


def test_absorb_hands_output_to_producer() -> None:
    g = small_graph()
    g.nodes["fc"].attrs["activation"] = "relu"
    g.absorb("act")
    verify(g)
    assert g.producer("y").name == "fc" and "h" not in g.tensors
    x = np.array([[1, -2, 3, -4]], np.float32)
    out = axc.simulate(g, x)["z"]
    expected = np.maximum(x @ np.arange(12, dtype=np.float32).reshape(3, 4).T, 0) ** 2
    np.testing.assert_array_equal(out, expected)


def test_remove_unused_drops_dead_nodes_and_constants() -> None:
    g = small_graph()
    g.outputs = ["h"]
    assert g.remove_unused() == 2
    assert set(g.nodes) == {"fc"} and "w" in g.constants
    verify(g)


def test_text_and_dot() -> None:
    g = small_graph()
    text = to_text(g)
    assert "fc = Gemm(%x: float32[Nx4], %w: const float32[3x4])" in text
    assert "output %z: float32[Nx3]" in text
    # names with quotes and backslashes must not break dot syntax
    hostile = Graph('evil"name')
    hostile.add_input('in"}; x', (2,), FLOAT32)
    hostile.tensors["o"] = TensorInfo("o", (2,), FLOAT32)
    hostile.add_node(Node('n"\\', "Relu", ['in"}; x'], ["o"]))
    hostile.outputs = ["o"]
    dot = to_dot(hostile)
    assert '"n\\"\\\\\\nRelu"' in dot
    assert dot.count('"') % 2 == 0


def test_serialization_round_trip(tmp_path) -> None:
    g = small_graph()
    g.nodes["act"].annotations["protect"] = {"kind": "range", "bounds": [0, 5]}
    g.metadata["target"] = {"backend": "systolic", "rows": 8}
    write_ir(g, tmp_path / "m.axc.json")
    back = read_ir(tmp_path / "m.axc.json")
    verify(back)
    assert [n.name for n in back.topological()] == ["fc", "act", "sq"]
    assert back.nodes["act"].annotations == g.nodes["act"].annotations
    assert back.metadata == g.metadata and back.tensors["x"].shape == (BATCH, 4)
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_array_equal(axc.simulate(back, x)["z"], axc.simulate(g, x)["z"])


def test_elem_types() -> None:
    assert str(ElemType.parse("uint4")) == "uint4"
    assert ElemType.parse("int6").numpy_dtype() == np.dtype(np.int8)
    assert ElemType.parse("int12").numpy_dtype() == np.dtype(np.int16)
    with pytest.raises(ValueError):
        ElemType("int", 65)
