"""The executor: batches split across threads give the same bits as one thread."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import axc
from axc.frontend import import_model
from axc.sim import Executor
from tests.conftest import DIGITS, make_model, tensor


@pytest.fixture(scope="module")
def quantized_digits():
    graph = axc.load(DIGITS / "digits_cnn.onnx")
    model = str(DIGITS / "digits_cnn.onnx")
    axc.apply(graph, "quantize * weights=int8 activations=int8\n", model_path=model)
    return graph


@pytest.mark.parametrize("batch", [1, 2, 7, 450])
def test_sharded_runs_equal_one_thread(quantized_digits, batch) -> None:
    x = np.load(DIGITS / "test.npz")["x"][:batch]
    one = Executor(quantized_digits, threads=1, fuse=False)
    many = Executor(quantized_digits, threads=3, fuse=False)
    assert many.batch_separable
    seen: dict[str, np.ndarray] = {}
    observed = many.run({"image": x}, observe=lambda n, v: seen.__setitem__(n, v))
    expected = one.run({"image": x})["logits"]
    np.testing.assert_array_equal(many.run({"image": x})["logits"], expected)
    np.testing.assert_array_equal(observed["logits"], expected)
    assert seen["logits"].shape[0] == batch  # observe sees whole-batch values


def test_planned_kernels_equal_the_plain_ones(quantized_digits) -> None:
    """Executor prepares weights and requantizers once per node; the plain
    kernel functions, called node by node, give the same values."""
    from axc.sim.kernels import KERNELS

    x = np.load(DIGITS / "test.npz")["x"][:50]
    seen: dict[str, np.ndarray] = {}
    Executor(quantized_digits, threads=1).run(
        {"image": x}, observe=lambda n, v: seen.__setitem__(n, v)
    )
    values = {"image": x}
    for node in quantized_digits.topological():
        args = [values.get(t, quantized_digits.constants.get(t)) for t in node.inputs]
        (values[node.outputs[0]],) = KERNELS[node.op](node.attrs, args)
        np.testing.assert_array_equal(values[node.outputs[0]], seen[node.outputs[0]])


def _graph(nodes, shape_in, shape_out, init=None):
    return import_model(make_model(nodes, [tensor("x", shape_in)], [tensor("y", shape_out)], init))


def test_ops_across_the_batch_are_not_split() -> None:
    softmax_over_batch = _graph(
        [helper.make_node("Softmax", ["x"], ["y"], axis=0)], ["N", 4], ["N", 4]
    )
    assert not Executor(softmax_over_batch, threads=2).batch_separable
    x = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    y = Executor(softmax_over_batch, threads=2).run({"x": x})["y"]
    np.testing.assert_allclose(y.sum(axis=0), 1.0, rtol=1e-6)  # normalized over the whole batch
    per_sample = _graph([helper.make_node("Softmax", ["x"], ["y"], axis=1)], ["N", 4], ["N", 4])
    assert Executor(per_sample, threads=2).batch_separable


@pytest.mark.parametrize("threads", [1, 2])
def test_batch_minor_steps_change_no_value(tmp_path, threads) -> None:
    """Small convolutions run batch-minor (see axc/sim/minor.py), and pooling,
    flattening and dense layers follow them; a residual Add, a Concat and an
    average pool take their inputs back in (N, ...) order. Every observed
    value and every output equals a run with batch-minor steps turned off,
    with exact and approximate multipliers (factored and table-driven)."""
    from tests.passes.test_quantize import residual_cnn

    digits = np.load(DIGITS / "test.npz")["x"][:37]
    cases = [(residual_cnn(), "")] + [
        ((None, digits), f"approximate * multiplier={m}\n")
        for m in ("exact", "perforated(0, 2)", "trunc(4)", "drum(3)")
    ]
    for (model, x), approximate in cases:
        if model is None:
            graph = axc.load(DIGITS / "digits_cnn.onnx")
            axc.apply(graph, f'quantize * data="{DIGITS / "calib.npz"}"\n' + approximate)
        else:
            np.savez(tmp_path / "calib.npz", x=x)
            graph = import_model(model)
            axc.apply(graph, f'quantize * data="{tmp_path / "calib.npz"}"\n')
        fast = Executor(graph, threads=threads, fuse=False)
        plain = Executor(graph, threads=threads, fuse=False)
        plain._minor = [None] * len(plain._minor)
        steps = [n.op for n, s in zip(fast.order, fast._minor, strict=True) if s is not None]
        assert "QConv" in steps
        feeds = {graph.inputs[0]: x}
        got, want = fast.run(feeds), plain.run(feeds)
        for name in graph.outputs:
            np.testing.assert_array_equal(got[name], want[name])
        seen: dict[str, np.ndarray] = {}
        expected: dict[str, np.ndarray] = {}
        fast.run(feeds, observe=seen.__setitem__)
        plain.run(feeds, observe=expected.__setitem__)
        assert seen.keys() == expected.keys()
        for name, value in expected.items():
            assert seen[name].shape == value.shape, name
            np.testing.assert_array_equal(seen[name], value)
