"""The approximate directive: selection, files next to the directives, errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import axc
from axc.arith.sweep import sweep_c
from axc.errors import DirectiveError, ToolError, UserError
from axc.ir import read_ir, write_ir
from axc.sim import Executor
from tests.conftest import DIGITS

MODEL = DIGITS / "digits_cnn.onnx"
Q = "quantize * weights=int8 activations=int8\n"


def _apply(text: str):
    g = axc.load(MODEL)
    axc.apply(g, text, model_path=str(MODEL))
    return g


def test_file_multipliers_are_found_next_to_the_directive_file(tmp_path) -> None:
    a = np.arange(256)[:, None]
    b = np.arange(256)[None, :]
    np.save(tmp_path / "low.npy", (a * b) & ~255)
    ax = tmp_path / "d.ax"
    ax.write_text(Q + 'approximate op(Gemm) multiplier="low.npy"\n')
    g = axc.load(MODEL)
    axc.apply(g, ax, model_path=str(MODEL))
    gemms = [n for n in g.topological() if n.op == "QGemm"]
    assert all(n.annotations["multiplier"] == str((tmp_path / "low.npy").resolve()) for n in gemms)
    x = np.load(DIGITS / "test.npz")["x"][:50]
    before = Executor(_apply(Q)).run({"image": x})["logits"]
    assert (Executor(g).run({"image": x})["logits"] != before).any()


def test_annotations_survive_the_ir_file(tmp_path) -> None:
    g = _apply(Q + "approximate * multiplier=drum(3)\n")
    write_ir(g, tmp_path / "m.axc.json")
    back = read_ir(tmp_path / "m.axc.json")
    x = np.load(DIGITS / "test.npz")["x"][:40]
    np.testing.assert_array_equal(
        Executor(back).run({"image": x})["logits"], Executor(g).run({"image": x})["logits"]
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("approximate * multiplier=trunk(4)\n", "did you mean 'trunc'"),
        ("approximate * multiplier=drum(1)\n", "k must be in 2..8"),
        ("approximate * multiplier=trunc(2) bits=9\n", "bits must be 2..8"),
    ],
)
def test_bad_multipliers_point_at_the_directive(text, message) -> None:
    with pytest.raises(DirectiveError, match=message) as info:
        _apply(Q + text)
    assert ":2:" in str(info.value)  # file:line:col of the second statement


def test_a_selection_without_linear_layers_is_an_error() -> None:
    with pytest.raises(UserError, match="only MaxPool"):
        _apply(Q + "approximate op(MaxPool) multiplier=trunc(2)\n")


def test_missing_file_is_a_user_error() -> None:
    with pytest.raises(UserError, match="no such multiplier file"):
        _apply(Q + 'approximate * multiplier="absent.c"\n')


def test_missing_compiler_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ToolError, match=r"g\+\+ is needed .* apt-get install g\+\+"):
        sweep_c("int f(int a, int b) { return a * b; }", "f", (0, 3), (0, 3))


def test_compile_records_the_multipliers_and_says_onnx_computes_exactly(tmp_path) -> None:
    import json

    import onnx

    ax = tmp_path / "d.ax"
    ax.write_text(Q + "approximate op(Conv) multiplier=bam(1, 6)\n")
    result = axc.compile(MODEL, ax, tmp_path / "out")
    assert set(result.summary["approximate"].values()) == {"bam(1, 6)"}
    assert "ONNX has no approximate multiplier" in (tmp_path / "out" / "summary.txt").read_text()
    props = {
        p.key: p.value for p in onnx.load(str(tmp_path / "out" / "digits_cnn.onnx")).metadata_props
    }
    assert set(json.loads(props["axc.approximate_multipliers"]).values()) == {"bam(1, 6)"}
