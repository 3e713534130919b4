"""The systolic array's resource model: yosys characterization, calibrated.

Synthesizing a whole array takes minutes at 16 x 16, far too long for an
exploration that prices thousands of designs. The model instead synthesizes,
once per variant (dataflow, multiplier, widths, output stage, fault ports;
cached on disk by axc.hw.synth):

* the processing element with its multiplier (what each of the R x C cells
  costs), and
* four small arrays, (2, 2), (3, 3), (3, 1) and (1, 3),

and fits each resource (LUT, FF, DSP, CARRY4) as

    cost(R, C) = a + b R + c C + d R C

to the small arrays: d is the per-PE cost as it comes out of a whole array
(sharing and merged registers included, so it differs from the PE alone), a,
b and c the controller, the skew and de-skew registers along each edge and
the per-column output stage. docs/hardware.md compares the model with full
synthesis at 4 x 4, 8 x 8 and 16 x 16; the tests hold it within 10 %.
"""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from .rtl import ArrayConfig

__all__ = ["CALIBRATION", "ResourceModel", "characterize", "pe_unit_verilog"]

CALIBRATION = ((2, 2), (3, 3), (3, 1), (1, 3))
RESOURCES = ("luts", "ff", "dsp", "carry")


def pe_unit_verilog(cfg: ArrayConfig, mult: Any) -> str:
    """One PE and its multiplier as a module of their own (fault ports tied off)."""
    from importlib.resources import files as resources

    cell = f"axc_pe_{cfg.dataflow}"
    control = "    input wire load,\n" if cfg.dataflow == "ws" else "    input wire clear, drain,\n"
    hook = ".load(load)," if cfg.dataflow == "ws" else ".clear(clear), .drain(drain),"
    s_in, s_out = ("ps_in", "ps_out") if cfg.dataflow == "ws" else ("acc_in", "acc_out")
    unit = f"""
module axc_pe_unit (
    input wire clk, rst,
{control}    input wire [{cfg.b_w - 1}:0] w_in, input wire wv_in,
    output wire [{cfg.b_w - 1}:0] w_out, output wire wv_out,
    input wire [{cfg.a_w - 1}:0] x_in, input wire xv_in,
    output wire [{cfg.a_w - 1}:0] x_out, output wire xv_out,
    input wire [{cfg.acc_w - 1}:0] s_in, output wire [{cfg.acc_w - 1}:0] s_out
);
    wire [{cfg.a_w - 1}:0] a;
    wire [{cfg.b_w - 1}:0] b;
    wire [{cfg.p_w - 1}:0] p;
    {cell} #(.A_W({cfg.a_w}), .B_W({cfg.b_w}), .P_W({cfg.p_w}), .ACC_W({cfg.acc_w})) pe (
        .clk(clk), .rst(rst), {hook}
        .w_in(w_in), .wv_in(wv_in), .w_out(w_out), .wv_out(wv_out),
        .x_in(x_in), .xv_in(xv_in), .x_out(x_out), .xv_out(xv_out),
        .{s_in}(s_in), .{s_out}(s_out), .mul_a(a), .mul_b(b), .mul_p(p),
        .f_hit(3'b000), .f_and({{{cfg.acc_w}{{1'b1}}}}),
        .f_or({cfg.acc_w}'d0), .f_xor({cfg.acc_w}'d0)
    );
    {mult.identifier()} mul (.a(a), .b(b), .p(p));
endmodule
"""
    cells = resources("axc.runtime") / "rtl"
    return "\n".join([(cells / f"{cell}.v").read_text(), mult.verilog(), unit])


@dataclass(frozen=True)
class ResourceModel:
    """Fitted costs of one array variant; ``predict`` prices any R x C."""

    variant: dict[str, Any]
    pe: dict[str, int]  # the PE and its multiplier synthesized alone
    coefficients: dict[str, tuple[float, float, float, float]]  # a, b, c, d per resource
    calibration: dict[str, dict[str, int]]  # "RxC" -> synthesized counts
    yosys: str

    def predict(self, rows: int, cols: int) -> dict[str, int]:
        terms = np.array([1.0, rows, cols, rows * cols])
        return {
            key: max(0, round(float(terms @ np.array(self.coefficients[key])))) for key in RESOURCES
        }

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _counts(result: Any) -> dict[str, int]:
    return {key: int(getattr(result, key)) for key in RESOURCES}


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def characterize(
    cfg: ArrayConfig, mult: Any, *, use_cache: bool = True, dsp: bool = True
) -> ResourceModel:
    """The resource model of arrays like ``cfg`` (its rows and cols aside);
    without ``dsp``, of a build that makes every multiplier from LUTs."""
    from axc.hw.synth import synthesize

    from . import synthesize_array

    def pe_unit() -> Any:
        return synthesize(pe_unit_verilog(cfg, mult), "axc_pe_unit", use_cache=use_cache, dsp=dsp)

    def array(shape: tuple[int, int]) -> Any:
        small = dataclasses.replace(cfg, rows=shape[0], cols=shape[1])
        return synthesize_array(small, mult, use_cache=use_cache, dsp=dsp)

    # yosys runs on one core: the five syntheses run side by side
    with ThreadPoolExecutor(max(1, min(1 + len(CALIBRATION), _cores()))) as pool:
        pe_future = pool.submit(pe_unit)
        arrays = list(pool.map(array, CALIBRATION))
        pe = pe_future.result()
    calibration = {
        f"{r}x{c}": _counts(result) for (r, c), result in zip(CALIBRATION, arrays, strict=True)
    }
    a = np.array([[1.0, r, c, r * c] for r, c in CALIBRATION])
    coefficients = {}
    for key in RESOURCES:
        y = np.array([calibration[f"{r}x{c}"][key] for r, c in CALIBRATION], float)
        fit, *_ = np.linalg.lstsq(a, y, rcond=None)
        coefficients[key] = tuple(float(v) for v in fit)
    variant = {
        "dataflow": cfg.dataflow,
        "multiplier": mult.identifier(),
        "a_w": cfg.a_w,
        "acc_w": cfg.acc_w,
        "out_w": cfg.out_w,
        "output_stage": cfg.output_stage,
        "fault_ports": cfg.faults,
        "dsp": dsp,
    }
    return ResourceModel(variant, _counts(pe), coefficients, calibration, pe.yosys)  # type: ignore[arg-type]
