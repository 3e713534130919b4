from __future__ import annotations

import pytest

from axc.directives import ast, parse_file, parse_text
from axc.errors import DirectiveError
from axc.passes import bind

FULL = """\
# every form the language has
quantize *            weights=int8 calibration=percentile(99.99)
quantize op(Gemm, MatMul) weights=int6
approximate conv2     multiplier=trunc(4)
approximate "/features/0/Conv" multiplier=evo("mul8s_1L12.c", signed=true)
protect layers[1:3]   range(bounds=profile(100), action=clip)
protect layers[-1]    scale=-1.5e3 names=[a, "b c", 3]
target systolic rows=8 \\
       cols=8   # continued line
explore objectives=[accuracy, luts] {
    approximate op(Conv) multiplier in [exact, trunc(2)]
    quantize * activations in int4..int8
}
"""


def test_every_form_parses_with_positions() -> None:
    f = parse_text(FULL, "d.ax")
    kinds = [type(s).__name__ for s in f.statements]
    assert kinds == ["Directive"] * 7 + ["Explore"]
    q, q2, a, a2, p, p2, t, e = f.statements
    assert isinstance(q.selector, ast.GlobSelector) and q.span.line == 2
    calibration = q.params[1].value
    assert isinstance(calibration, ast.Call) and calibration.args[0].value == 99.99
    assert q2.selector.ops == ("Gemm", "MatMul")
    assert a.selector == ast.NameSelector("conv2", False, a.selector.span)
    assert a2.selector.name == "/features/0/Conv" and a2.selector.quoted
    evo = a2.params[0].value
    assert evo.args[0].text == "mul8s_1L12.c" and evo.kwargs[0][0] == "signed"
    assert (p.selector.start, p.selector.stop) == (1, 3)
    assert p.positionals[0].name == "range" and p.positionals[0].kwargs[0][0] == "bounds"
    assert p2.selector.index == -1 and p2.params[0].value.value == -1500.0
    assert [str(v) for v in p2.params[1].value.items] == ["a", '"b c"', "3"]
    assert [x.name for x in t.params] == ["rows", "cols"] and t.params[1].span.line == 9
    assert len(e.items) == 2 and isinstance(e.items[1].domain, ast.RangeValue)
    assert e.items[1].param == "activations" and e.items[1].span.line == 12


@pytest.mark.parametrize(
    "text, where, fragment",
    [
        ("target systolic rows 8\n", "d.ax:1:22:", "a parameter needs the form name=value"),
        ("target systolic rows=\n", "d.ax:1:22:", "missing value after '='"),
        ("cut op(Conv\n", "d.ax:1:12:", "expected"),
        ("target systolic rows=8 @\n", "d.ax:1:24:", "unexpected '@'"),
        ("explore {\n  target rows int8\n}\n", "d.ax:2:", "explore item"),
        ("quantize * data=calib.npz\n", "d.ax:1:22:", "quote file names and paths"),
    ],
)
def test_syntax_errors_point_at_the_cause(text, where, fragment) -> None:
    with pytest.raises(DirectiveError) as info:
        parse_text(text, "d.ax")
    message = str(info.value)
    assert message.startswith(where), message
    assert fragment in message
    lines = message.splitlines()
    assert len(lines) == 3 and lines[2].strip().startswith("^")
    assert "Traceback" not in message


@pytest.mark.parametrize(
    "text, fragment, line, column",
    [
        ("targt systolic\n", "unknown pass 'targt'; did you mean 'target'?", 1, 1),
        ("target systolic colls=8\n", "no parameter 'colls'; did you mean 'cols'?", 1, 17),
        (
            "target systolik\n",
            "unknown value 'systolik' for parameter 'backend'; did you mean 'systolic'?",
            1,
            8,
        ),
        ("target systolic rows=eight\n", "parameter 'rows' expects an integer, got eight", 1, 22),
        ("target systolic rows=8 rows=4\n", "parameter 'rows' given twice", 1, 24),
        ("target systolic rows=0\n", "rows must lie in 1..512", 1, 1),
        ("target\n", "needs parameter 'backend'", 1, 1),
        ("target op(Conv) backend=hls\n", "takes no layer selector", 1, 8),
        ("cut\n", "needs a layer selector", 1, 1),
        ("cut * rows=1\n", "pass 'cut' has no parameter 'rows'", 1, 7),
        ("target systolic rows=4..8\n", "syntax error: unexpected '..'", 1, 23),
        ("explore objectives=[acuracy] {\n}\n", "did you mean 'accuracy'?", 1, 21),
        (
            "explore {\n  target rowz in 4..8\n}\n",
            "no parameter 'rowz'; did you mean 'rows'?",
            2,
            10,
        ),
        ("explore {\n  target rows in 8..4\n}\n", "empty range", 2, 18),
        ("explore {\n  target dataflow in [ws, xs]\n}\n", "unknown value 'xs'", 2, 27),
    ],
)
def test_semantic_errors_carry_location_and_suggestion(text, fragment, line, column) -> None:
    with pytest.raises(DirectiveError) as info:
        bind(parse_text(text, "d.ax"))
    message = str(info.value)
    assert fragment in message, message
    assert message.startswith(f"d.ax:{line}:{column}:"), message
    caret_line = message.splitlines()[2]
    assert caret_line.index("^") - 4 == column - 1


def test_explore_space_values_and_size() -> None:
    program = bind(
        parse_text(
            "explore objectives=[accuracy, latency] seed=3 {\n"
            "  target rows in 4..6\n  target dataflow in [ws, os]\n}\n"
        )
    )
    space = program.explore
    assert space is not None and space.size() == 6
    assert space.items[0].values == (4, 5, 6) and space.items[1].values == ("ws", "os")
    assert space.params.objectives == ("accuracy", "latency") and space.params.seed == 3


def test_missing_and_unreadable_directive_files(tmp_path) -> None:
    with pytest.raises(DirectiveError, match="no such directive file"):
        parse_file(tmp_path / "none.ax")
    bad = tmp_path / "bin.ax"
    bad.write_bytes(b"\xff\xfe\x00target")
    with pytest.raises(DirectiveError, match="cannot read"):
        parse_file(bad)


def test_empty_and_comment_only_files() -> None:
    assert parse_text("").statements == []
    assert parse_text("# nothing\n\n   # still nothing\n").statements == []
