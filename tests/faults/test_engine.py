"""The injection engine against a naive reference: the whole graph re-run for
every fault, with the corruption written by direct loops (docs/faults.md)."""

from __future__ import annotations

import numpy as np
import pytest

import axc
from axc.arith import Requantizer, wrap
from axc.faults.engine import Engine
from axc.faults.model import BitFlip, FaultGroup, RandomValue, StuckAt, apply_masks, generate
from axc.sim.executor import Executor


@pytest.fixture(scope="module")
def quantized(request):  # type: ignore[no-untyped-def]
    from tests.conftest import DIGITS

    graph = axc.load(DIGITS / "digits_cnn.onnx")
    axc.apply(graph, f'quantize * data="{DIGITS / "calib.npz"}"\n')
    data = np.load(DIGITS / "test.npz")
    return graph, data["x"][:60], data["y"][:60]


def _flip(value, site, fault):  # type: ignore[no-untyped-def]
    word = np.array([value], np.float32 if site.is_float else np.int64)
    return (float if site.is_float else int)(
        apply_masks(
            word,
            site,
            np.array([fault["and_mask"]]),
            np.array([fault["or_mask"]]),
            np.array([fault["xor_mask"]]),
        )[0]
    )


def _reference_accumulator(graph, node, x):  # type: ignore[no-untyped-def]
    """sum((x - zx)(w - zw)) + bias, wrapped, in int64 loops; and the (N, M, K)
    products in (c, u, v) order."""
    a = node.attrs
    w = graph.constants[node.inputs[1]].astype(np.int64)
    w = w - np.asarray(a["w_zero_point"], np.int64).reshape((-1,) + (1,) * (w.ndim - 1))
    bias = graph.constants[node.inputs[2]].astype(np.int64)
    xz = x.astype(np.int64) - a["x_zero_point"]
    if node.op == "QGemm":
        terms = xz[:, None, :] * w[None, :, :]  # (N, M, K)
        acc = terms.sum(axis=2) + bias
        return wrap(acc, a["acc_bits"]), terms
    p = a["pads"]
    xp = np.pad(xz, [(0, 0), (0, 0), (p[0], p[2]), (p[1], p[3])])
    n, m = x.shape[0], w.shape[0]
    oh, ow = xp.shape[2] - 2, xp.shape[3] - 2
    terms = np.zeros((n, m, oh * ow, w[0].size), np.int64)
    for o in range(m):
        for i in range(oh):
            for j in range(ow):
                terms[:, o, i * ow + j] = (xp[:, :, i : i + 3, j : j + 3] * w[o]).reshape(n, -1)
    acc = terms.sum(axis=3) + bias[None, :, None]
    return wrap(acc, a["acc_bits"]).reshape(n, m, oh, ow), terms


def _naive(graph, x, site, fault):  # type: ignore[no-untyped-def]
    """The graph's output with ``fault`` on every image, everything recomputed."""
    ex = Executor(graph, threads=1)
    values = {graph.inputs[0]: x}
    for step, node in enumerate(ex.order):
        args = [values.get(t, graph.constants.get(t)) if t else None for t in node.inputs]
        plan = ex.plan(step)
        if node.name == site.layer and site.kind == "inputs":
            args[0] = np.array(args[0])
            flat = args[0].reshape(len(x), -1)
            flat[:, fault["index"]] = [_flip(v, site, fault) for v in flat[:, fault["index"]]]
        if node.name == site.layer and site.kind in ("weights", "biases"):
            slot = 1 if site.kind == "weights" else 2
            value = np.array(graph.constants[site.tensor])
            flat = value.reshape(-1)
            flat[fault["index"]] = _flip(int(flat[fault["index"]]), site, fault)
            args[slot] = value
            plan = ex.plan_with(step, {site.tensor: value})
        if node.name == site.layer and site.kind in ("accumulators", "psums"):
            acc, terms = _reference_accumulator(graph, node, args[0])
            flat = acc.reshape(len(x), -1)
            e = int(fault["index"])
            for i in range(len(x)):
                if site.kind == "accumulators":
                    flat[i, e] = _flip(int(flat[i, e]), site, fault)
                else:
                    m, pos = divmod(e, flat.shape[1] // terms.shape[1])
                    t = terms[i, m, pos] if terms.ndim == 4 else terms[i, e % terms.shape[1]]
                    bias = int(graph.constants[node.inputs[2]][m if terms.ndim == 4 else e])
                    ps = int(wrap(np.int64(bias + t[: fault["step"]].sum()), site.width))
                    flat[i, e] = int(
                        wrap(np.int64(flat[i, e] + _flip(ps, site, fault) - ps), site.width)
                    )
            axis = 1 if node.op == "QConv" else -1
            out = Requantizer.from_attr(node.attrs["requant"]).apply(acc, axis=axis)
            values[node.outputs[0]] = ex.cast(node.outputs[0], out)
            continue
        outs = plan(args)
        for t, v in zip(node.outputs, outs, strict=True):
            values[t] = ex.cast(t, v)
            if site.kind == "activations" and t == site.tensor:
                corrupted = np.array(values[t])
                flat = corrupted.reshape(len(x), -1)
                e = int(fault["index"])
                flat[:, e] = [_flip(v, site, fault) for v in flat[:, e]]
                values[t] = corrupted
    return values[graph.outputs[0]]


@pytest.mark.parametrize(
    ("kind", "model", "layers"),
    [
        ("activations", BitFlip(), None),
        ("activations", RandomValue(), None),
        ("activations", BitFlip(2), None),
        ("inputs", StuckAt(1), None),
        ("weights", BitFlip(), None),
        ("biases", StuckAt(0), None),
        ("accumulators", BitFlip(), ("/3/Conv", "/7/Gemm")),
        ("psums", BitFlip(), ("/3/Conv", "/7/Gemm")),
    ],
)
def test_engine_equals_a_full_rerun_per_fault(quantized, kind, model, layers) -> None:
    graph, x, y = quantized
    names = layers or tuple(n.name for n in graph.topological())
    # bits near the top, where faults are not all masked
    group = FaultGroup(kind, names, model, "any", 12)
    faults, sites, _ = generate([group], graph, seed=11)
    engine = Engine(graph, sites)
    golden = engine.golden(x, y)
    counts = engine.run(faults, golden)
    reference = Executor(graph, threads=1).run({graph.inputs[0]: x})[graph.outputs[0]]
    top = reference.argmax(1)
    for j, fault in enumerate(faults):
        out = _naive(graph, x, sites[int(fault["site"])], fault)
        assert counts.images[j] == len(x)
        assert counts.sdc1[j] == int((out.argmax(1) != top).sum()), (kind, j)
        identical = (out.view(np.uint32) == reference.view(np.uint32)).all(axis=1)
        assert counts.masked[j] == int(identical.sum()), (kind, j)
        assert counts.correct[j] == int((out.argmax(1) == y).sum()), (kind, j)
    # something must happen, or the comparison proves little
    assert counts.masked.sum() < counts.images.sum()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_float_model_faults_hit_the_ieee_pattern() -> None:
    from tests.conftest import DIGITS

    graph = axc.load(DIGITS / "digits_cnn.onnx")
    x = np.load(DIGITS / "test.npz")["x"][:40]
    group = FaultGroup("activations", ("/0/Conv",), BitFlip(), (30,), 5)
    faults, sites, _ = generate([group], graph, seed=2)
    assert sites[0].is_float and sites[0].width == 32
    engine = Engine(graph, sites)
    counts = engine.run(faults, engine.golden(x, None))
    for j, fault in enumerate(faults):
        out = _naive(graph, x, sites[0], fault)
        top = Executor(graph, threads=1).run({graph.inputs[0]: x})[graph.outputs[0]].argmax(1)
        broken = np.isnan(out).any(axis=1)
        assert counts.sdc1[j] == int(((out.argmax(1) != top) | broken).sum())
    assert counts.sdc1.sum() > 0  # exponent flips must break something


def test_apply_masks_on_words() -> None:
    from axc.faults.model import Site

    s8 = Site("activations", "l", "t", 1, 8, True, False)
    one = np.array([5], np.int8)
    msb = np.array([0x80], np.uint64)
    zero, full = np.array([0], np.uint64), np.array([0xFF], np.uint64)
    assert apply_masks(one, s8, full, zero, msb)[0] == 5 - 128
    assert (
        apply_masks(np.array([-1], np.int8), s8, np.array([0x7F], np.uint64), zero, zero)[0] == 127
    )
    assert apply_masks(one, s8, zero, np.array([0xFE], np.uint64), zero)[0] == -2
    u4 = Site("activations", "l", "t", 1, 4, False, False)
    assert (
        apply_masks(
            np.array([3], np.uint8),
            u4,
            np.array([0xF], np.uint64),
            zero,
            np.array([0x8], np.uint64),
        )[0]
        == 11
    )
    f32 = Site("activations", "l", "t", 1, 32, True, True)
    sign = np.array([1 << 31], np.uint64)
    assert (
        apply_masks(
            np.array([1.5], np.float32), f32, np.array([0xFFFFFFFF], np.uint64), zero, sign
        )[0]
        == -1.5
    )
