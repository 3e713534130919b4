"""The explore block as decision variables, and the directives of a point."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

import axc
from axc.directives import parse_text
from axc.errors import DirectiveError, UserError
from axc.explore import build_space, non_dominated
from axc.explore.engine import Evaluation
from axc.passes.program import bind
from tests.conftest import DIGITS

MODEL = DIGITS / "digits_cnn.onnx"

TEXT = """quantize * weights=int8 activations=int8
approximate op(Conv, Gemm) multiplier=exact
target systolic rows=8 cols=8 dataflow=ws device=xc7z020
explore objectives=[accuracy, luts] {
    approximate op(Conv, Gemm) multiplier in [exact, drum(4)]
    quantize "/0/Conv" weights in int6..int8
    protect op(Gemm) mechanism in [none, checksum]
    target rows in [4, 16]
}
"""


def space(text: str = TEXT):  # type: ignore[no-untyped-def]
    return build_space(bind(parse_text(text, "e.ax")), axc.load(MODEL))


def test_variables_and_their_values() -> None:
    s = space()
    assert [v.label for v in s.variables] == [
        "approximate op(Conv, Gemm) multiplier",
        'quantize "/0/Conv" weights',
        "protect op(Gemm) mechanism",
        "target rows",
    ]
    assert s.sizes == (2, 3, 2, 2) and s.size() == 24
    assert s.variables[1].texts == ("int6", "int7", "int8")
    assert s.variables[2].layers == ("/7/Gemm", "/9/Gemm")
    assert s.variables[3].layers == ()


def test_a_point_rewrites_only_what_it_varies() -> None:
    s = space()
    text = s.directives((1, 2, 0, 1))
    # an item over the whole selection keeps the directive's selector
    assert "approximate op(Conv, Gemm) multiplier=drum(4)" in text
    # int8 is the base value: the quantize directive is unchanged
    assert "quantize * weights=int8 activations=int8" in text
    assert "target backend=systolic rows=16 cols=8 dataflow=ws device=xc7z020" in text
    assert "protect" not in text  # protection off, and no base directive: nothing
    text = s.directives((0, 0, 1, 0))
    lines = text.splitlines()
    # one layer differs: the directive is written layer by layer
    assert 'quantize "/0/Conv" weights=int6 activations=int8' in lines
    assert 'quantize "/3/Conv" weights=int8 activations=int8' in lines
    # no protect directive in the file: the item's own, where the block stood
    assert lines[-2:] == [
        'protect "/7/Gemm" mechanism=checksum',
        'protect "/9/Gemm" mechanism=checksum',
    ]


def test_every_point_is_a_valid_program_that_builds() -> None:
    s = space()
    for point in itertools.product(*(range(n) for n in s.sizes)):
        program = bind(parse_text(s.directives(point), "p.ax"))
        assert program.explore is None
    graph = axc.load(MODEL)
    axc.apply(graph, s.directives((0, 0, 1, 1)), model_path=str(MODEL))
    weights = graph.constants[graph.nodes["/0/Conv"].inputs[1]]
    assert weights.min() >= -32 and weights.max() <= 31 and weights.max() > 15  # int6
    assert graph.metadata["target"]["rows"] == 16
    checks = [n.annotations["protect"] for n in graph.nodes.values() if n.op == "AbftCheck"]
    assert sorted(c["layer"] for c in checks) == ["/7/Gemm", "/9/Gemm"]
    broken = axc.load(MODEL)  # checksums cannot cover approximate products: an error
    with pytest.raises(UserError, match="checksum cannot cover"):
        axc.apply(broken, s.directives((1, 0, 1, 1)), model_path=str(MODEL))


def test_protection_off_removes_a_base_directive() -> None:
    s = space(
        TEXT.replace(
            "target systolic", "protect op(Gemm) range(bounds=profile(100))\ntarget systolic"
        ).replace("[none, checksum]", "[none, range(bounds=profile(99))]")
    )
    assert "protect" not in s.directives((0, 2, 0, 0))
    assert "protect op(Gemm) mechanism=range(bounds=profile(99))" in s.directives((0, 2, 1, 0))


def test_explore_options_are_checked_where_written() -> None:
    with pytest.raises(DirectiveError, match=r"e.ax:1:\d+: .*device='xc9z999' is not a known part"):
        bind(parse_text("explore device=xc9z999 {\ntarget rows in [4]\n}\n", "e.ax"))
    with pytest.raises(DirectiveError, match="faults, fault_images and images must be positive"):
        bind(parse_text("explore faults=0 {\ntarget rows in [4]\n}\n", "e.ax"))


def _e(i: int, *objectives: float, violation: float = 0.0) -> Evaluation:
    values = dict(zip(("a", "b"), objectives, strict=True))
    return Evaluation(i, (i,), {}, values, violation=violation)


def test_non_dominated_keeps_the_trade_offs() -> None:
    rows = [
        _e(0, 1.0, 5.0),
        _e(1, 2.0, 2.0),
        _e(2, 2.0, 3.0),  # dominated by 1
        _e(3, 0.5, 9.0),
        _e(4, 0.1, 0.1, violation=0.5),  # best, but over budget
        _e(5, 2.0, 2.0),  # equal to 1: listed once
        Evaluation(6, (6,), {}, None, reason="cannot build"),
    ]
    assert [e.id for e in non_dominated(rows, ("a", "b"))] == [0, 1, 3]


@pytest.mark.parametrize(
    ("mechanism", "expect"),
    [
        ("range(bounds=profile(100))", [(1, 64, 32), (1, 32, 10)]),
        ("checksum()", [(1, 64, 33), (1, 32, 11)]),
        ("duplicate()", [(1, 64, 32), (1, 64, 32), (1, 32, 10), (1, 32, 10)]),
    ],
)
def test_protection_changes_the_products_the_array_runs(mechanism: str, expect: list) -> None:  # type: ignore[type-arg]
    from axc.explore.evaluate import array_request

    graph = axc.load(MODEL)
    text = f"quantize * weights=int8\nprotect op(Gemm) {mechanism}\ntarget systolic\n"
    axc.apply(graph, text, model_path=str(MODEL))
    (array,) = array_request(graph)["arrays"]  # one multiplier, one array
    assert array["dims"][:2] == [(64, 9, 8), (16, 72, 16)]  # the convolutions
    assert array["dims"][2:] == expect


def test_relocate_makes_published_paths_relative(tmp_path: Path) -> None:
    from axc.explore.report import relocate

    root = tmp_path.resolve() / "repo"
    (tmp_path / "out" / "points").mkdir(parents=True)
    model = root / "examples" / "m.onnx"
    (tmp_path / "out" / "explore.json").write_text(json.dumps({"models": [str(model)]}))
    (tmp_path / "out" / "points" / "p.ax").write_text("# no path here\n")
    (tmp_path / "out" / "front.png").write_bytes(str(model).encode())  # not text: untouched
    changed = relocate(tmp_path / "out", root)
    assert changed == [tmp_path / "out" / "explore.json"]
    assert json.loads((tmp_path / "out" / "explore.json").read_text()) == {
        "models": ["examples/m.onnx"]
    }
    assert (tmp_path / "out" / "front.png").read_bytes() == str(model).encode()


def test_models_asking_for_arrays_of_different_shapes_are_refused() -> None:
    from axc.explore.evaluate import Pricer, array_request

    requests = []
    for rows in (4, 8):
        graph = axc.load(MODEL)
        text = f"quantize * weights=int8\ntarget systolic rows={rows} cols=4\n"
        axc.apply(graph, text, model_path=str(MODEL))
        requests.append(array_request(graph))
    with pytest.raises(UserError, match="arrays of different shapes"):
        Pricer(area=False).price(requests)


def test_front_plot_draws_sdc_intervals_of_single_model_points(tmp_path) -> None:
    """SDC-1 whiskers on the vulnerability axis of every pair that has it, in
    percent, for points scored on one model; none for several models."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from axc.explore.engine import Evaluation
    from axc.explore.report import _sdc_whiskers, plot_front

    def point(i, sdc, ci):
        objectives = {"accuracy": 0.1 * i, "vulnerability": sdc, "luts": 1000.0 + i}
        return Evaluation(i, (i,), {}, objectives, {"sdc1_ci": ci})

    front = [point(0, 0.7, [[0.005, 0.009]]), point(1, 0.5, [[0.004, 0.006], [0.1, 0.2]])]
    fig, ax = plt.subplots()
    _sdc_whiskers(ax, front, "accuracy", "vulnerability")
    (line,) = ax.get_lines()  # the two-model point has none
    np.testing.assert_allclose(line.get_xdata(), [0.0, 0.0])
    np.testing.assert_allclose(line.get_ydata(), [0.5, 0.9])
    _sdc_whiskers(ax, front, "vulnerability", "luts")
    np.testing.assert_allclose(ax.get_lines()[1].get_xdata(), [0.5, 0.9])
    _sdc_whiskers(ax, front, "accuracy", "luts")
    assert len(ax.get_lines()) == 2
    plt.close(fig)
    written = plot_front(front, front, ("accuracy", "vulnerability", "luts"), tmp_path / "front")
    assert [p.suffix for p in written] == [".png", ".svg"] and all(
        p.stat().st_size for p in written
    )
