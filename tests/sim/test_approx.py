"""Approximate layers in the simulator: bit-exact against direct loops over the
multiplier's table, on both computation paths (decomposed and table)."""

from __future__ import annotations

import numpy as np
import pytest

import axc
from axc.arith import Requantizer, wrap
from axc.arith.external import from_table
from axc.arith.multipliers import builtin
from axc.errors import UserError
from axc.sim import Executor
from axc.sim.approx_kernels import ApproxConv, ApproxGemm, decompose
from axc.sim.kernels import KERNELS
from tests.conftest import DIGITS
from tests.sim.test_int_kernels import reference_conv

RNG = np.random.default_rng(7)


def _random_table_multiplier():
    """An arbitrary 8-bit table: no structure to exploit."""
    table = RNG.integers(-40000, 40000, (256, 256))
    return from_table(np.abs(table), "random8")


MULTIPLIERS = {
    "trunc(4)": builtin("trunc", 4),  # decomposes: a*b plus 4 factor pairs
    "perforated(1, 3)": builtin("perforated", 1, 3),
    "trunc_corrected(5)": builtin("trunc_corrected", 5),
    "drum(3)": builtin("drum", 3),  # no such form: the table path
    "kulkarni": builtin("kulkarni"),
    "random table": _random_table_multiplier(),
}


def test_decompositions_are_exact_and_found_where_they_exist() -> None:
    for name in ("trunc(4)", "perforated(1, 3)", "trunc_corrected(5)"):
        m = MULTIPLIERS[name]
        f, g = decompose(m)
        np.testing.assert_array_equal(m.exact_table() + f @ g.T, m.table)
        assert f.shape[1] <= m.bits + 3
    assert decompose(MULTIPLIERS["drum(3)"]) is None
    assert decompose(MULTIPLIERS["random table"]) is None


def _conv_case(group: int, pads, strides, dilations, c: int = 4):
    m = 8
    x = RNG.integers(-128, 128, (3, c, 7, 6)).astype(np.int8)
    w = RNG.integers(-127, 128, (m, c // group, 3, 3)).astype(np.int8)
    b = RNG.integers(-5000, 5000, m).astype(np.int32)
    requant = Requantizer.from_scale(RNG.uniform(1e-4, 1e-3, m), -3, -128, 127)
    attrs = {
        "kernel_shape": (3, 3),
        "group": group,
        "pads": pads,
        "strides": strides,
        "dilations": dilations,
        "acc_bits": 32,
        "x_zero_point": -128,  # centered activations in [0, 255]
        "w_zero_point": (0,),
        "requant": requant.to_attr(),
    }
    return x, w, b, attrs


def _force(method: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """ "packed": three weights' table rows per word for any number of
    columns; "transposed": the same with the roles of weights and patches
    swapped. Both are the table method."""
    import axc.sim.approx_kernels as approx

    if method in ("packed", "transposed"):
        monkeypatch.setattr(approx, "_PACKED_MIN_COLUMNS", 0)
    if method == "transposed":
        monkeypatch.setattr(approx, "_TRANSPOSED_BELOW", 1 << 30)
        monkeypatch.setattr(approx, "_TRANSPOSED_RATIO", 0)
    return "terms" if method == "terms" else "table"


METHODS = ["terms", "table", "packed", "transposed"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", list(MULTIPLIERS))
@pytest.mark.parametrize(
    "geometry",
    [
        (1, (1, 1, 1, 1), (1, 1), (1, 1)),
        (2, (0, 1, 2, 1), (2, 1), (1, 2)),
        # one or two input channels: the terms' transforms as channels of the
        # direct 3x3 kernel
        (1, (1, 0, 2, 1), (2, 1), (1, 1), 1),
        (1, (0, 0, 0, 0), (1, 1), (1, 1), 2),
    ],
)
def test_approximate_conv_matches_direct_loops(name, geometry, method, monkeypatch) -> None:
    """Every computation (the factored terms where the table has them, the
    table gather, and the gather with table rows packed per word, either way
    round) against direct loops."""
    forced = _force(method, monkeypatch)
    mult = MULTIPLIERS[name]
    x, w, b, attrs = _conv_case(*geometry)
    layer = ApproxConv(attrs, w, b, mult, method=forced)
    assert (layer.terms is not None) == (forced == "terms" and decompose(mult) is not None)
    got = layer([x, w, b])[0]
    assert bool(layer._t_cache) == (method == "transposed")
    expected = reference_conv(
        x, w, b, attrs, product=lambda p, q: mult(p, np.broadcast_to(q, p.shape))
    )
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", list(MULTIPLIERS))
def test_approximate_gemm_matches_direct_sums_and_wraps(name, method, monkeypatch) -> None:
    forced = _force(method, monkeypatch)
    mult = MULTIPLIERS[name]
    a = RNG.integers(-128, 128, (6, 200)).astype(np.int8)
    w = RNG.integers(-127, 128, (5, 200)).astype(np.int8)
    b = RNG.integers(-100, 100, 5).astype(np.int32)
    requant = Requantizer.from_scale(np.full(5, 1e-4), 0, -128, 127)
    attrs = {
        "x_zero_point": -128,
        "w_zero_point": (0,),
        "acc_bits": 20,
        "requant": requant.to_attr(),
    }
    ac = a.astype(np.int64) + 128
    acc = mult(ac[:, None, :], w.astype(np.int64)[None, :, :]).sum(axis=2) + b
    expected = requant.apply(wrap(acc, 20), axis=1)
    layer = ApproxGemm(attrs, w, b, mult, method=forced)
    np.testing.assert_array_equal(layer([a, w, b])[0], expected)
    assert bool(layer._t_cache) == (method == "transposed" and layer.terms is None)


@pytest.mark.parametrize("method", ["table", "packed", "transposed"])
@pytest.mark.parametrize("band", [(-20, 10), (-128, -128), (90, 127)])
def test_activations_in_a_narrow_band_pack_only_their_entries(band, method, monkeypatch) -> None:
    """The packed kernel packs the table entries of the indices present
    only; inputs that use a band of the codes (post-ReLU, saturated, one
    constant code) give the same sums as direct loops."""
    forced = _force(method, monkeypatch)
    mult = MULTIPLIERS["random table"]
    a = RNG.integers(band[0], band[1] + 1, (60, 300)).astype(np.int8)
    w = RNG.integers(-127, 128, (26, 300)).astype(np.int8)
    b = RNG.integers(-100, 100, 26).astype(np.int32)
    requant = Requantizer.from_scale(np.full(26, 1e-6), 0, -128, 127)
    attrs = {"x_zero_point": 0, "w_zero_point": (0,), "acc_bits": 32, "requant": requant.to_attr()}
    acc = mult(a.astype(np.int64)[:, None, :], w.astype(np.int64)[None, :, :]).sum(axis=2) + b
    layer = ApproxGemm(attrs, w, b, mult, method=forced)
    np.testing.assert_array_equal(layer([a, w, b])[0], requant.apply(wrap(acc, 32), axis=1))


def test_the_exact_multiplier_gives_the_exact_kernel() -> None:
    x, w, b, attrs = _conv_case(1, (1, 1, 1, 1), (1, 1), (1, 1))
    exact = KERNELS["QConv"](attrs, [x, w, b])[0]
    np.testing.assert_array_equal(ApproxConv(attrs, w, b, builtin("exact"))([x, w, b])[0], exact)
    np.testing.assert_array_equal(
        KERNELS["QConv"]({**attrs, "multiplier": "exact"}, [x, w, b])[0], exact
    )


def _digits(directives: str):
    graph = axc.load(DIGITS / "digits_cnn.onnx")
    axc.apply(graph, directives, model_path=str(DIGITS / "digits_cnn.onnx"))
    return graph


def test_approximate_pass_annotates_and_the_simulator_uses_it() -> None:
    q = "quantize * weights=int8 activations=int8\n"
    exact = _digits(q)
    approx = _digits(q + "approximate op(Conv) multiplier=trunc(7)\n")
    convs = [n for n in approx.topological() if n.op == "QConv"]
    assert convs and all(n.annotations["multiplier"] == "trunc(7)" for n in convs)
    gemms = [n for n in approx.topological() if n.op == "QGemm"]
    assert all("multiplier" not in n.annotations for n in gemms)
    x = np.load(DIGITS / "test.npz")["x"][:100]
    y_exact = Executor(exact).run({"image": x})["logits"]
    y_approx = Executor(approx).run({"image": x})["logits"]
    assert (y_exact != y_approx).any()
    # the same numbers one node at a time through the plain kernels
    seen: dict[str, np.ndarray] = {}
    Executor(approx, threads=1).run({"image": x}, observe=lambda n, v: seen.__setitem__(n, v))
    np.testing.assert_array_equal(seen["logits"], y_approx)


def test_out_of_range_operands_are_a_user_error() -> None:
    signed = from_table(np.zeros((256, 256), np.int64), "s8", signed=True)  # [-128, 127]
    x, w, b, attrs = _conv_case(1, (1, 1, 1, 1), (1, 1), (1, 1))
    with pytest.raises(UserError, match=r"activations .* span \[0, 255\]"):
        ApproxConv(attrs, w, b, signed)([x, w, b])
    narrow = builtin("trunc", 2, bits=4)  # magnitudes up to 15
    with pytest.raises(UserError, match="weights span"):
        ApproxConv(attrs, w, b, narrow)


def test_factorized_terms_rebuild_the_table_and_perforation_is_one_product() -> None:
    from axc.sim.approx_kernels import factorize

    for name in ("trunc(4)", "perforated(1, 3)", "trunc_corrected(5)"):
        m = MULTIPLIERS[name]
        terms = factorize(m)
        np.testing.assert_array_equal(sum(np.outer(p, q) for p, q in terms), m.table)
    # perforation drops rows of the partial-product array: (a - its low bits) * b
    (p, q), *rest = factorize(builtin("perforated", 0, 2))
    assert not rest
    a = np.arange(-255, 256)
    np.testing.assert_array_equal(p, np.sign(a) * (np.abs(a) & ~3))
    np.testing.assert_array_equal(q, a)
    assert factorize(MULTIPLIERS["random table"]) is None


@pytest.mark.parametrize("name", ["trunc(4)", "trunc_corrected(5)", "perforated(1, 3)"])
def test_direct_kernel_takes_the_terms_as_channels(name, monkeypatch) -> None:
    """The direct 3x3 kernel runs a factored layer with each term's transformed
    input as a group of channels, padding included (a correction term's
    transform is 1 at 0). It is allowed here beyond its usual channel count."""
    import axc.sim.approx_kernels as approx
    from axc.sim.int_kernels import direct3x3

    calls: list[tuple[int, ...]] = []

    def spy(xp, *args):
        calls.append(xp.shape)
        return direct3x3(xp, *args)

    monkeypatch.setattr(approx, "direct3x3", spy)
    monkeypatch.setattr(approx, "direct3x3_ok", lambda attrs, channels: attrs["group"] == 1)
    mult = MULTIPLIERS[name]
    x, w, b, attrs = _conv_case(1, (1, 0, 2, 1), (2, 1), (1, 1), 2)
    layer = ApproxConv(attrs, w, b, mult, method="terms")
    got = layer([x, w, b])[0]
    assert calls and calls[0][0] == 2 * len(layer.term_luts)
    expected = reference_conv(
        x, w, b, attrs, product=lambda p, q: mult(p, np.broadcast_to(q, p.shape))
    )
    np.testing.assert_array_equal(got, expected)
