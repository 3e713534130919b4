"""The axc command: exit codes, messages, files written (or not)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from onnx import helper

from axc import api
from axc.cli import main
from tests.conftest import DIGITS, make_model, save, tensor

D_AX = DIGITS / "d.ax"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_compile_writes_ir_onnx_and_summary(capsys, tmp_path, digits_model) -> None:
    out_dir = tmp_path / "build"
    code, out, err = run(capsys, "compile", digits_model, "--directives", D_AX, "-o", out_dir)
    assert code == 0, err
    names = sorted(os.listdir(out_dir))
    assert names == [
        ".axc-manifest.json",
        "digits_cnn.axc.json",
        "digits_cnn.axc.npz",
        "digits_cnn.onnx",
        "summary.json",
        "summary.txt",
    ]
    assert "MACs/input  25,408" in out and "target      backend=systolic" in out
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["compiled"]["ops"]["Conv"] == 2 and summary["target"]["rows"] == 8
    # the IR file reads back; `show` accepts it
    code, out, _ = run(capsys, "show", out_dir / "digits_cnn.axc.json")
    assert code == 0 and "/7/Gemm = Gemm(" in out
    # recompiling into axc's own output folder is fine
    assert run(capsys, "compile", digits_model, "-d", D_AX, "-o", out_dir, "-q")[0] == 0


def test_compile_json(capsys, tmp_path, digits_model) -> None:
    code, out, _ = run(capsys, "compile", digits_model, "-d", D_AX, "-o", tmp_path / "o", "--json")
    data = json.loads(out)
    assert code == 0 and data["passes"][0]["pass"] == "target"
    assert any(f.endswith("digits_cnn.onnx") for f in data["files"])


def test_compile_refuses_folder_with_other_files(capsys, tmp_path, digits_model) -> None:
    out_dir = tmp_path / "mine"
    out_dir.mkdir()
    (out_dir / "thesis.tex").write_text("precious")
    code, _, err = run(capsys, "compile", digits_model, "-d", D_AX, "-o", out_dir)
    assert code == 1 and "already holds files axc did not write (thesis.tex)" in err
    assert os.listdir(out_dir) == ["thesis.tex"]
    code, _, err = run(capsys, "compile", digits_model, "-d", D_AX, "-o", out_dir, "--force")
    assert code == 0 and (out_dir / "thesis.tex").read_text() == "precious"
    assert (out_dir / "digits_cnn.onnx").exists()


def test_failed_compile_writes_nothing(capsys, tmp_path, digits_model) -> None:
    bad = tmp_path / "bad.ax"
    bad.write_text("target systolic\ncut op(LRN)\n")
    out_dir = tmp_path / "never"
    code, _, err = run(capsys, "compile", digits_model, "-d", bad, "-o", out_dir)
    assert code == 1 and "bad.ax:2:5: the model has no LRN layer" in err
    assert not out_dir.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".axc-staging")] == []


def test_check_with_typo_prints_location_caret_and_suggestion(
    capsys, tmp_path, digits_model
) -> None:
    typo = tmp_path / "typo.ax"
    typo.write_text("# one typo\ntarget systolic rows=8 dataflow=wss\n")
    code, out, err = run(capsys, "check", digits_model, "--directives", typo)
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert lines[0] == (
        f"axc: error: {typo}:2:33: unknown value 'wss' for parameter "
        "'dataflow'; did you mean 'ws'? (expected one of ws, os, is)"
    )
    assert lines[1].strip() == "target systolic rows=8 dataflow=wss"
    assert lines[2].index("^") == lines[1].index("wss")
    assert "Traceback" not in err


def test_check_lists_selections(capsys, digits_model) -> None:
    code, out, _ = run(capsys, "check", digits_model, "-d", D_AX, "--json")
    data = json.loads(out)
    assert code == 0 and data[0]["pass"] == "target" and len(data) == 4


def test_show_text_dot_json(capsys, tmp_path, digits_model) -> None:
    code, out, _ = run(capsys, "show", digits_model)
    assert code == 0 and "input  %image: float32[Nx1x8x8]" in out
    code, _, _ = run(capsys, "show", digits_model, "--dot", tmp_path / "m.dot")
    dot = (tmp_path / "m.dot").read_text()
    assert code == 0 and dot.startswith('digraph "main_graph"') and '"/0/Conv" ->' in dot
    code, out, _ = run(capsys, "show", digits_model, "--json")
    data = json.loads(out)
    assert data["summary"]["parameters"] == 3658 and len(data["nodes"]) == 7


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"", "not an ONNX model"),
        (b"\x08\x07garbage\xff\xff\xff", "not a readable ONNX model"),
    ],
)
def test_bad_model_files_exit_1(capsys, tmp_path, content, fragment) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    code, _, err = run(capsys, "show", path)
    assert code == 1 and fragment in err and "Traceback" not in err


def test_missing_model_and_unsupported_op_exit_1(capsys, tmp_path) -> None:
    code, _, err = run(capsys, "show", tmp_path / "none.onnx")
    assert code == 1 and "no such file" in err
    model = make_model(
        [helper.make_node("Erf", ["x"], ["y"], name="e")], [tensor("x", [2])], [tensor("y", [2])]
    )
    code, _, err = run(capsys, "show", save(model, tmp_path / "erf.onnx"))
    assert code == 1 and "op Erf is not supported" in err


def test_usage_errors_exit_1(capsys) -> None:
    assert run(capsys, "compile", "m.onnx")[0] == 1
    assert run(capsys, "frobnicate")[0] == 1


def test_internal_error_exits_2(capsys, monkeypatch, digits_model) -> None:
    def broken(path):
        raise RuntimeError("boom")

    monkeypatch.setattr(api, "load", broken)
    code, _, err = run(capsys, "show", digits_model)
    assert code == 2 and "internal error" in err and "RuntimeError: boom" in err


def test_help_has_examples() -> None:
    for command in ("compile", "check", "show"):
        result = subprocess.run(
            [sys.executable, "-m", "axc.cli", command, "--help"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "examples:" in result.stdout and f"axc {command}" in result.stdout


def test_real_entry_point_user_error_has_no_traceback(tmp_path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "axc.cli",
            "check",
            str(DIGITS / "digits_cnn.onnx"),
            "-d",
            str(tmp_path / "no.ax"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"axc: error: {tmp_path / 'no.ax'}: no such directive file"


def test_ops_lists_supported_ops(capsys) -> None:
    code, out, _ = run(capsys, "ops", "--json")
    ops = json.loads(out)
    assert code == 0 and {"Conv", "Gemm", "LRN", "HardSwish", "ConstantOfShape"} <= set(ops)


def test_simulate_reports_accuracy_and_agreement(capsys, tmp_path, digits_model) -> None:
    q = DIGITS / "quantize.ax"
    saved = tmp_path / "out.npz"
    code, out, err = run(
        capsys,
        "simulate",
        digits_model,
        "-d",
        q,
        "--data",
        DIGITS / "test.npz",
        "--json",
        "--save-outputs",
        saved,
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["images"] == 450 and data["top1"] >= data["reference_top1"] - 0.01
    assert data["agreement_top1"] >= 0.98 and data["top5"] >= data["top1"]
    import numpy as np

    with np.load(saved) as arrays:
        assert sorted(arrays.files) == ["logits", "logits.q"]
        assert arrays["logits.q"].dtype == np.int8 and arrays["logits"].shape == (450, 10)
    g = api.load(digits_model)
    api.apply(g, q, model_path=str(digits_model))
    deq = g.find(["Dequantize"])[-1].attrs
    expected = (logits_q_of(saved) - deq["zero_point"][0]) * np.float32(deq["scale"][0])
    with np.load(saved) as arrays:
        np.testing.assert_array_equal(arrays["logits"], expected.astype(np.float32))


def logits_q_of(path):
    import numpy as np

    with np.load(path) as arrays:
        return arrays["logits.q"].astype(np.int64)


def test_simulate_text_and_bad_data(capsys, tmp_path, digits_model) -> None:
    code, out, _ = run(capsys, "simulate", digits_model, "--data", DIGITS / "test.npz")
    assert code == 0 and "top-1 accuracy               0.9822" in out
    bad = tmp_path / "bad.npz"
    import numpy as np

    np.savez(bad, x=np.zeros((3, 2, 8, 8), np.float32))
    code, _, err = run(capsys, "simulate", digits_model, "--data", bad)
    assert code == 1 and "needs [batch, 1, 8, 8]" in err and "Traceback" not in err


def test_multipliers_list_json_has_every_family_and_metric(capsys) -> None:
    code, out, _ = run(capsys, "multipliers", "list", "--json")
    assert code == 0
    rows = json.loads(out)
    from axc.arith.multipliers import FAMILIES

    assert [r["family"] for r in rows] == list(FAMILIES)
    for r in rows:
        for key in ("mae", "wce", "mre", "ep", "mse", "bias"):
            assert key in r["metrics"] and f"{key}_percent" in r["metrics"]
    exact = next(r for r in rows if r["family"] == "exact")
    assert exact["metrics"]["wce"] == 0


def test_multipliers_show_file_plot_and_text(capsys, tmp_path) -> None:
    from pathlib import Path

    c_file = Path(__file__).parent / "data" / "multipliers" / "mul8s_lsbzero.c"
    code, out, _ = run(capsys, "multipliers", "show", str(c_file), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["metrics"]["wce"] == 3 and report["operand_range"] == [-128, 127]
    png = tmp_path / "err.png"
    code, out, _ = run(capsys, "multipliers", "show", "drum(3)", "--plot", str(png))
    assert code == 0 and "MAE" in out and "Hashemi" in out
    assert png.read_bytes()[:4] == b"\x89PNG"
    code, out, _ = run(capsys, "multipliers", "show", "bam(1, 6)", "--emit", str(tmp_path / "v"))
    assert code == 0
    assert "module axc_mul_bam_1_6_8" in (tmp_path / "v" / "axc_mul_bam_1_6_8.v").read_text()
    assert "axc_mul_bam_1_6_8(int32_t a" in (tmp_path / "v" / "axc_mul_bam_1_6_8.h").read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["multipliers", "show", "trunk(3)"], "did you mean 'trunc'"),
        (["multipliers", "show", "nothere.c"], "no such multiplier file"),
        (["multipliers", "show", "drum", "--bits", "12"], "2..8 bits"),
        (["multipliers", "show", "exact", "--emit", "/dev/null/views"], "cannot write"),
        (["multipliers", "show", "exact", "--plot", "/dev/null/e.png"], "cannot write"),
    ],
)
def test_multipliers_bad_input_is_a_user_error(capsys, argv, message) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 1 and message in err and "Traceback" not in err
