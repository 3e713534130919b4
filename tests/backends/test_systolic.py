"""The systolic-array backend: Verilator lint, Icarus RTL simulation against the
simulator (bit for bit, cycle for cycle), and PE faults through the RTL's
fault ports against the simulator's PE-level fault model."""

from __future__ import annotations

import dataclasses
import importlib
import json
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import axc
from axc.arith.multipliers import exact_multiplier, resolve
from axc.arith.requant import Requantizer
from axc.cli import main
from axc.errors import UserError
from axc.faults.pe import REGISTERS, PeFault, faulty_accumulators, wide_product
from axc.hw.systolic import (
    ArrayShape,
    gemm_cycles,
    scalesim_cycles,
    scalesim_paper_cycles,
    tiles,
)
from axc.sim import Executor
from tests.backends.test_hls import hostile_model
from tests.conftest import DIGITS

systolic = importlib.import_module("axc.backends.systolic")
layers_mod = importlib.import_module("axc.hw.gemm")
pytestmark = pytest.mark.tools
MODEL = DIGITS / "digits_cnn.onnx"


def compiled(directives: str) -> axc.Graph:
    graph = axc.load(MODEL)
    axc.apply(graph, directives, model_path=str(MODEL))
    return graph


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.load(DIGITS / "test.npz")["x"][:8]


def project(graph: axc.Graph, folder: Path, **options) -> tuple:  # type: ignore[no-untyped-def]
    opts = systolic.SystolicOptions(**options)
    cfg, mult = systolic.array_config(graph, opts)
    systolic.write_rtl(cfg, mult, folder)
    return opts, cfg, mult


@pytest.mark.parametrize("dataflow", ["ws", "os"])
@pytest.mark.parametrize(
    "directives",
    ["quantize *\n", "quantize *\napproximate * multiplier=drum(4)\n"],
    ids=["exact", "drum4"],
)
def test_every_layer_equals_the_simulator_bit_for_bit_and_cycle_for_cycle(
    tmp_path, images, dataflow, directives
) -> None:
    graph = compiled(directives)
    opts, cfg, _ = project(graph, tmp_path / "prj", rows=8, cols=8, dataflow=dataflow)
    assert systolic.lint(tmp_path / "prj", cfg.top) == ""
    report = systolic.verify_layers(graph, opts, images, tmp_path, tmp_path / "prj")
    assert [r["layer"] for r in report["layers"]] == ["/0/Conv", "/3/Conv", "/7/Gemm", "/9/Gemm"]
    assert report["bit_exact"], report
    assert report["cycles_match_model"] and report["traffic_matches_model"], report
    # the cycles the RTL counted are the closed form's
    shape = ArrayShape(8, 8, dataflow)
    conv2 = report["layers"][1]
    assert conv2["cycles"] == gemm_cycles(shape, 8 * 16, 72, 16)


@pytest.mark.parametrize(
    ("rows", "cols", "dataflow", "faults", "stage", "spec", "ranged"),
    [
        (3, 5, "ws", True, True, "exact", True),
        (5, 3, "os", True, False, "trunc(4)", True),
        (1, 1, "ws", False, True, "mitchell", True),
        (2, 7, "os", False, True, "exact", True),
        (4, 4, "ws", False, True, "exact", False),
    ],
)
def test_generated_configurations_are_lint_clean(
    tmp_path, rows, cols, dataflow, faults, stage, spec, ranged
) -> None:
    cfg, mult = systolic.standalone_config(rows, cols, dataflow, spec)
    cfg = dataclasses.replace(cfg, faults=faults, output_stage=stage, range_unit=ranged)
    systolic.write_rtl(cfg, mult, tmp_path)
    assert systolic.lint(tmp_path, cfg.top) == ""
    top = (tmp_path / "rtl" / f"{cfg.top}.v").read_text()
    assert ("f_xor" in top) == faults and ("axc_requant" in top) == stage
    assert ("axc_range" in top) == (stage and ranged)
    bench = next((tmp_path).glob("**/*tb*.v")).read_text()
    assert (".rr_en(" in bench) == (stage and ranged)


def test_one_array_per_multiplier(tmp_path, capsys) -> None:
    """Layers with different multipliers run on arrays of their own; an exact
    annotation is the exact product, so it shares the unannotated layers' array."""
    directives = tmp_path / "mixed.ax"
    directives.write_text(
        "quantize *\ntarget systolic rows=4 cols=4 dataflow=os\n"
        'approximate "/0/Conv" multiplier=drum(4)\n'
        'approximate "/3/Conv" multiplier=exact\n'
        "approximate op(Gemm) multiplier=trunc(4)\n"
    )
    out = tmp_path / "build"
    assert main(["compile", str(MODEL), "-d", str(directives), "-o", str(out), "--quiet"]) == 0
    plan = json.loads((out / "systolic" / "layers.json").read_text())
    tops = [a["top"] for a in plan["arrays"]]
    assert tops == ["axc_systolic_a0", "axc_systolic_a1", "axc_systolic_a2"]
    assert [a["multiplier"] for a in plan["arrays"]] == [
        resolve("drum(4)", 8).identifier(),
        exact_multiplier(8).identifier(),
        resolve("trunc(4)", 8).identifier(),
    ]
    assert [layer["array"] for layer in plan["layers"]] == [tops[0], tops[1], tops[2], tops[2]]
    graph = compiled(directives.read_text())
    shape = ArrayShape(4, 4, "os")  # the layers run one after another
    assert sum(layer["cycles_per_image"] for layer in plan["layers"]) == sum(
        gemm_cycles(shape, n, k, m)
        for node in graph.nodes.values()
        if node.op in ("QConv", "QGemm")
        for n, k, m, _ in systolic.layer_dims(graph, node)
    )
    script = (out / "systolic" / "synth.ys").read_text()
    assert [line.split()[-1] for line in script.splitlines() if "synth_xilinx" in line] == tops
    for top in tops:
        assert systolic.lint(out / "systolic", top) == ""
    data = str(DIGITS / "test.npz")
    code = main(["verify", str(MODEL), "-d", str(directives), "--data", data,
                 "--images", "2", "--backend", "systolic", "--json"])  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    assert report["arrays"] == 3 and report["bit_exact"] and report["cycles_match_model"]
    assert [r["array"] for r in report["layers"]] == [tops[0], tops[1], tops[2], tops[2]]
    with pytest.raises(UserError, match="3 multipliers"):
        systolic.array_config(graph, systolic.SystolicOptions())


def test_partial_tiles_and_odd_arrays(tmp_path) -> None:
    """K, M and N that no array dimension divides: every tile edge is partial."""
    graph = compiled("quantize *\n")
    x = np.load(DIGITS / "test.npz")["x"][:3]
    for dataflow in ("ws", "os"):
        folder = tmp_path / dataflow
        opts, cfg, _ = project(graph, folder, rows=5, cols=3, dataflow=dataflow)
        assert systolic.lint(folder, cfg.top) == ""
        report = systolic.verify_layers(graph, opts, x, folder, folder)
        assert report["bit_exact"] and report["cycles_match_model"], report
        assert report["traffic_matches_model"], report


def _random_faults(rng, cfg, plan, count):  # type: ignore[no-untyped-def]
    widths = {"weight": cfg.b_w, "input": cfg.a_w, "psum": cfg.acc_w}
    out = []
    for i in range(count):
        register = REGISTERS[i % 3]
        bit = int(rng.integers(widths[register]))
        row, col = int(rng.integers(cfg.rows)), int(rng.integers(cfg.cols))
        if i % 2 == 0:  # stuck-at 0 or 1
            one = bool(rng.integers(2))
            out.append(
                PeFault(register, row, col, ~(1 << bit), (1 << bit) if one else 0, permanent=True)
            )
        else:  # an upset at one cycle of one tile
            tile = int(rng.integers(len(plan)))
            cycle = int(rng.integers(plan[tile].cycles))
            out.append(PeFault(register, row, col, xor_mask=1 << bit, tile=tile, cycle=cycle))
    return out


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dataflow", "directives"),
    [("ws", "quantize *\n"), ("os", "quantize *\napproximate * multiplier=trunc_corrected(4)\n")],
)
def test_pe_faults_through_the_rtl_ports_equal_the_simulators(tmp_path, dataflow, directives):  # type: ignore[no-untyped-def]
    """100 faults per dataflow, every register kind, stuck-at and transient."""
    graph = compiled(directives)
    _opts, cfg, mult = project(graph, tmp_path / "prj", rows=4, cols=8, dataflow=dataflow,
                              fault_ports=True)  # fmt: skip
    assert systolic.lint(tmp_path / "prj", cfg.top) == ""
    x = np.load(DIGITS / "test.npz")["x"][:1]
    values: dict[str, np.ndarray] = {}
    Executor(graph).run({graph.inputs[0]: x}, observe=values.__setitem__)
    node = layers_mod.linear_layers(graph)[1]  # the second convolution: 16 x 72 x 16
    product = layers_mod.layer_products(graph, node, values[node.inputs[0]])[0]
    shape = ArrayShape(cfg.rows, cfg.cols, cfg.dataflow)
    plan = tiles(shape, *product.shape)
    faults = _random_faults(np.random.default_rng(1), cfg, plan, 100)
    ports = [
        systolic.RtlFault(
            f.kind, f.row, f.col, f.and_mask, f.or_mask, f.xor_mask,
            0 if f.permanent else f.cycle, 0xFFFFFFFF if f.permanent else f.cycle,
            -1 if f.permanent else f.tile,
        )
        for f in faults
    ]  # fmt: skip
    result = systolic.run_product(tmp_path / "prj", cfg, product, tmp_path / "run", ports)
    clean = faulty_accumulators(product.x, product.w, product.bias, shape, mult, cfg.acc_w, None)
    np.testing.assert_array_equal(result.acc, clean)
    requant = Requantizer(
        tuple(product.mult), tuple(product.shift), product.zero_point, product.qmin, product.qmax
    )
    changed = 0
    for fault, (acc, codes) in zip(faults, result.faulty, strict=True):
        want = faulty_accumulators(
            product.x, product.w, product.bias, shape, mult, cfg.acc_w, fault
        )
        np.testing.assert_array_equal(acc, want, err_msg=str(fault))
        # and the layer's faulty outputs, requantized as docs/arithmetic.md says
        np.testing.assert_array_equal(codes, requant.apply(want, axis=1), err_msg=str(fault))
        changed += not np.array_equal(acc, clean)
    assert changed > 50  # most faults are visible: the comparison is not vacuous


@pytest.mark.parametrize("spec", ["exact", "trunc(4)", "trunc_corrected(4)", "drum(4)"])
def test_wide_products_equal_the_verilog_view_on_every_operand_code(tmp_path, spec) -> None:
    """A fault can push a PE's operand to any 9-bit code; the fault model's product
    must be the multiplier view's for all 512 x 512 of them."""
    mult = exact_multiplier(8) if spec == "exact" else resolve(spec, 8)
    a_w, p_w = mult.ports
    (tmp_path / "mul.v").write_text(mult.verilog())
    (tmp_path / "tb.v").write_text(
        f"""module tb;
    reg [{a_w - 1}:0] a, b;
    wire signed [{p_w - 1}:0] p;
    integer i, j, fd;
    {mult.identifier()} dut (.a(a), .b(b), .p(p));
    initial begin
        fd = $fopen("out.txt", "w");
        for (i = 0; i < {1 << a_w}; i = i + 1)
            for (j = 0; j < {1 << a_w}; j = j + 1) begin
                a = i; b = j; #1 $fdisplay(fd, "%0d", p);
            end
        $fclose(fd);
        $finish;
    end
endmodule
"""
    )
    subprocess.run(["iverilog", "-o", "s", "tb.v", "mul.v"], cwd=tmp_path, check=True)
    subprocess.run(["vvp", "-n", "s"], cwd=tmp_path, check=True, capture_output=True)
    got = np.loadtxt(tmp_path / "out.txt", dtype=np.int64).reshape(1 << a_w, 1 << a_w)
    codes = np.arange(1 << a_w)
    v = np.where(codes >= 1 << (a_w - 1), codes - (1 << a_w), codes)
    np.testing.assert_array_equal(wide_product(mult, v[:, None], v[None, :]), got)


def test_hostile_names_never_reach_the_verilog(tmp_path) -> None:
    path, x = hostile_model(tmp_path)
    graph = axc.load(path)
    axc.apply(graph, "quantize *\n", model_path=str(path))
    folder = tmp_path / "prj"
    folder.mkdir()
    options = systolic.SystolicOptions(top="top\n$finish; module x(", rows=4, cols=4)
    artifacts = systolic.SystolicBackend().lower(graph, options, folder)
    top = artifacts.summary["top"]
    assert top == "axc_top__finish__module_x_"
    for path_ in artifacts.files:
        if path_.suffix == ".v":
            text = path_.read_text()
            assert "module x(" not in text and "return 1" not in text and "\n$finish" not in text
    assert systolic.lint(folder, top) == ""
    report = systolic.verify_layers(graph, options, x[:2], tmp_path, folder)
    assert report["bit_exact"] and report["cycles_match_model"]


def test_axc_compile_verify_and_their_mistakes(tmp_path, capsys) -> None:
    directives = tmp_path / "d.ax"
    directives.write_text("quantize *\ntarget systolic rows=4 cols=4 dataflow=os\n")
    out = tmp_path / "build"
    assert main(["compile", str(MODEL), "-d", str(directives), "-o", str(out), "--quiet"]) == 0
    plan = json.loads((out / "systolic" / "layers.json").read_text())
    assert plan["array"]["rows"] == 4 and plan["array"]["dataflow"] == "os"
    assert (out / "systolic" / "synth.ys").read_text().count("read_verilog") == 6
    data = str(DIGITS / "test.npz")
    code = main(["verify", str(MODEL), "-d", str(directives), "--data", data, "--images", "2",
                 "--backend", "systolic"])  # fmt: skip
    text = capsys.readouterr().out
    assert code == 0, text
    assert "/3/Conv" in text and "DIFFER" not in text
    for args, message in (
        (["-d", str(directives), "--option", "dataflow=xs"], "dataflow must be ws or os"),
        (["-d", str(directives), "--option", "rows=0"], "rows must lie in 1..256"),
    ):
        code = main(["verify", str(MODEL), "--data", data, "--images", "2",
                     "--backend", "systolic", *args])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 1, err
        assert message in err and "Traceback" not in err
    float_graph = axc.load(MODEL)
    with pytest.raises(UserError, match="QConv and QGemm"):
        systolic.array_config(float_graph, systolic.SystolicOptions())


def test_missing_iverilog_names_the_package(tmp_path, monkeypatch) -> None:
    graph = compiled("quantize *\n")
    opts, _cfg, _ = project(graph, tmp_path / "prj", rows=2, cols=2)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="apt-get install iverilog"):
        systolic.verify_layers(graph, opts, np.zeros((1, 1, 8, 8), np.float32), tmp_path)


def test_axc_synth_reports_yosys_counts(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("AXC_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["synth", "--arrays", "2x2", "--multipliers", "exact;trunc(4)", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["multiplier"] for r in rows] == ["axc_mul_exact_8", "axc_mul_trunc_4_8"]
    exact, approx = rows
    assert exact["dsp"] > approx["dsp"]  # exact products map to DSPs, truncated ones to LUTs
    assert all(r["luts"] > 0 and r["ff"] > 0 and r["yosys"] for r in rows)
    assert main(["synth", "--arrays", "2x2", "--json"]) == 0  # cached the second time
    assert json.loads(capsys.readouterr().out)[0]["cached"]
    assert main(["synth", "--arrays", "2x2", "--device", "xc7z020", "--json"]) == 0
    (share,) = json.loads(capsys.readouterr().out)
    assert share["utilization"]["fits"] and share["utilization"]["device"] == "xc7z020"
    assert share["utilization"]["percent"]["dsp"] == round(100 * exact["dsp"] / 220, 2)
    assert main(["synth", "--arrays", "2by2"]) == 1
    assert "ROWSxCOLS" in capsys.readouterr().err


def test_the_cycle_model_against_scalesims_formula() -> None:
    """One cycle per fold more than SCALE-Sim's paper (2R + C + T - 2); against
    SCALE-Sim v3's code, which does not count the os drain and starts at 0,
    one (ws) or R + 1 (os) per fold, plus one (docs/hardware.md)."""
    for dataflow in ("ws", "os"):
        shape = ArrayShape(8, 4, dataflow)
        n, k, m = 100, 30, 10
        folds = len(tiles(shape, n, k, m))
        assert gemm_cycles(shape, n, k, m) == scalesim_paper_cycles(shape, n, k, m) + folds
        extra = 1 if dataflow == "ws" else shape.rows + 1
        assert gemm_cycles(shape, n, k, m) == scalesim_cycles(shape, n, k, m) + folds * extra + 1
        assert sum(t.cycles for t in tiles(shape, n, k, m)) == gemm_cycles(shape, n, k, m)
    ws = tiles(ArrayShape(4, 4, "ws"), 10, 9, 5)
    assert [(t.k0, t.m0, t.first, t.last) for t in ws][:4] == [
        (0, 0, True, False), (4, 0, False, False), (8, 0, False, True), (0, 4, True, False),
    ]  # fmt: skip


def test_pe_fault_model_without_rtl() -> None:
    """What each register's fault can reach, on a random product."""
    rng = np.random.default_rng(3)
    x = rng.integers(-255, 256, (20, 11))
    w = rng.integers(-128, 128, (11, 7))
    bias = rng.integers(-1000, 1000, 7)
    mult = exact_multiplier(8)
    for dataflow in ("ws", "os"):
        shape = ArrayShape(4, 3, dataflow)
        clean = faulty_accumulators(x, w, bias, shape, mult, 32, None)
        np.testing.assert_array_equal(clean, bias + x @ w)
        # a stuck-at in the partial sum of PE (1, 2) reaches only column 2 of each m block
        stuck = PeFault("psum", 1, 2, or_mask=1 << 20, permanent=True)
        bad = faulty_accumulators(x, w, bias, shape, mult, 32, stuck) != clean
        assert bad.any() and not bad[:, [0, 1, 3, 4, 6]].any()
        # an upset after the tile's last busy cycle changes nothing
        late = PeFault("input", 0, 0, xor_mask=4, tile=0, cycle=10_000)
        np.testing.assert_array_equal(faulty_accumulators(x, w, bias, shape, mult, 32, late), clean)
    with pytest.raises(ValueError, match="outside the 4x3 array"):
        faulty_accumulators(x, w, bias, ArrayShape(4, 3), mult, 32, PeFault("psum", 4, 0))


def test_the_example_readme_shows_what_verify_prints(capsys) -> None:
    import os

    here = os.getcwd()
    try:
        os.chdir(DIGITS)
        code = main(["verify", "digits_cnn.onnx", "-d", "systolic.ax", "--data", "test.npz",
                     "--backend", "systolic", "--images", "8"])  # fmt: skip
    finally:
        os.chdir(here)
    printed = capsys.readouterr().out
    assert code == 0
    readme = (DIGITS / "README.md").read_text()
    block = "\n".join("    " + line for line in printed.strip().splitlines())
    assert block in readme


def test_the_output_stage_restricts_the_range_as_the_graph_does(tmp_path) -> None:
    directives = (
        "quantize * activation_scheme=symmetric\n"
        "protect op(Conv) range(bounds=profile(90), action=zero, granularity=per_channel)\n"
        "protect op(Gemm) range(bounds=profile(95))\n"
    )
    graph = compiled(directives)
    x = np.load(DIGITS / "test.npz")["x"][:4]
    observed: dict[str, np.ndarray] = {}
    Executor(graph).run({graph.inputs[0]: x}, observe=observed.__setitem__)
    guards = [n for n in graph.topological() if n.op == "RangeRestrict"]
    changed = [
        n for n in guards if not np.array_equal(observed[n.inputs[0]], observed[n.outputs[0]])
    ]
    assert len(changed) >= 2  # the bounds bite: the comparison below can fail
    for dataflow in ("ws", "os"):
        folder = tmp_path / dataflow
        opts, _, _ = project(graph, folder, rows=4, cols=4, dataflow=dataflow)
        report = systolic.verify_layers(graph, opts, x, folder, folder)
        assert all(r["range_restriction"] for r in report["layers"])
        assert report["bit_exact"] and report["cycles_match_model"], report


@pytest.mark.slow
def test_the_resource_model_is_within_ten_percent_of_synthesis(tmp_path, monkeypatch, capsys):  # type: ignore[no-untyped-def]
    """Calibrated on 2x2, 3x3, 3x1 and 1x3 arrays; checked on three larger ones."""
    from axc.backends.systolic.cost import characterize

    monkeypatch.setenv("AXC_CACHE_DIR", str(tmp_path / "cache"))
    cfg, mult = systolic.standalone_config(4, 4, "ws", "trunc(4)")
    model = characterize(cfg, mult)
    assert model.pe["luts"] > 0 and model.pe["ff"] >= cfg.a_w * 2 + cfg.acc_w
    sizes = (6, 5, 4)  # the largest first: the other two run beside it
    with ThreadPoolExecutor(2) as pool:
        fulls = pool.map(
            lambda n: systolic.synthesize_array(dataclasses.replace(cfg, rows=n, cols=n), mult),
            sizes,
        )
    for size, full in zip(sizes, fulls, strict=True):
        guess = model.predict(size, size)
        for key in ("luts", "ff", "dsp", "carry"):
            real = getattr(full, key)
            assert abs(guess[key] - real) <= 0.10 * max(real, 10), (size, key, guess, real)
    # the same figures through the command line (all cached by now)
    assert (
        main(["synth", "--arrays", "4x4", "--multipliers", "trunc(4)", "--predict", "--json"]) == 0
    )
    (row,) = json.loads(capsys.readouterr().out)
    assert row["predicted"] == model.predict(4, 4) and row["cached"]
    assert all(abs(e) <= 10 for e in row["error_percent"].values())
