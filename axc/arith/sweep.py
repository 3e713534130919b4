"""Exhaustive sweeps of a multiplier's C/C++ or Verilog view into a table.

Used both to import external multipliers (a C function, a Verilog module) and
to prove that axc's generated views equal its tables: the view is compiled
(g++/cc) or simulated (Icarus Verilog) on every operand pair and its outputs
are read back.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from axc.errors import ToolError, UserError

__all__ = ["require_tool", "sweep_c", "sweep_verilog"]


def require_tool(name: str, purpose: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolError(
            f"{name} is needed to {purpose} but is not installed "
            f"(on Debian/Ubuntu: apt-get install {_PACKAGES.get(name, name)})"
        )
    return path


_PACKAGES = {"g++": "g++", "cc": "gcc", "gcc": "gcc", "iverilog": "iverilog", "vvp": "iverilog"}


def _run(
    cmd: list[str], cwd: Path, what: str, timeout: int = 600
) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, timeout=timeout)
    if proc.returncode != 0:
        err = (proc.stderr or proc.stdout).decode(errors="replace").strip()
        raise UserError(f"{what} failed:\n{err[:2000]}")
    return proc


def sweep_c(
    source: str,
    function: str,
    a_range: tuple[int, int],
    b_range: tuple[int, int],
    *,
    cpp: bool = True,
    arg_type: str = "int32_t",
    what: str = "compiling the multiplier",
) -> np.ndarray:
    """Compile ``source`` with a harness that calls ``function(a, b)`` for every
    pair in the (inclusive) ranges; returns the table of int64 results."""
    compiler = require_tool("g++" if cpp else "cc", "compile C multipliers")
    (a0, a1), (b0, b1) = a_range, b_range
    harness = f"""
#include <stdint.h>
#include <stdio.h>
{source}
int main(void) {{
    static int32_t row[{b1 - b0 + 1}];
    for (int32_t a = {a0}; a <= {a1}; ++a) {{
        for (int32_t b = {b0}; b <= {b1}; ++b)
            row[b - ({b0})] = (int32_t){function}(({arg_type})a, ({arg_type})b);
        fwrite(row, sizeof(int32_t), {b1 - b0 + 1}, stdout);
    }}
    return 0;
}}
"""
    with tempfile.TemporaryDirectory(prefix="axc-sweep-") as tmp:
        folder = Path(tmp)
        src = folder / ("sweep.cpp" if cpp else "sweep.c")
        src.write_text(harness)
        _run([compiler, "-O1", "-w", "-o", "sweep", src.name], folder, what)
        out = _run([str(folder / "sweep")], folder, "running the compiled sweep").stdout
    table = np.frombuffer(out, np.int32).astype(np.int64)
    return table.reshape(a1 - a0 + 1, b1 - b0 + 1)


def sweep_verilog(
    source: str,
    module: str,
    ports: tuple[str, str, str],
    in_bits: tuple[int, int],
    out_bits: int,
    a_range: tuple[int, int],
    b_range: tuple[int, int],
    *,
    signed_out: bool,
    what: str = "simulating the multiplier",
) -> np.ndarray:
    """Simulate ``module`` with Icarus Verilog on every operand pair (operands
    given as integers, driven as their two's complement bit patterns); returns
    the int64 table of its outputs."""
    iverilog = require_tool("iverilog", "simulate Verilog multipliers")
    vvp = require_tool("vvp", "simulate Verilog multipliers")
    a_port, b_port, p_port = ports
    (a0, a1), (b0, b1) = a_range, b_range
    wa, wb = in_bits
    fmt = "%0d"
    bench = f"""`timescale 1ns / 1ps
module axc_sweep;
    reg [{wa - 1}:0] a;
    reg [{wb - 1}:0] b;
    wire [{out_bits - 1}:0] p;
    integer i, j, fd;
    {module} dut (.{a_port}(a), .{b_port}(b), .{p_port}(p));
    initial begin
        fd = $fopen("table.txt", "w");
        for (i = {a0}; i <= {a1}; i = i + 1) begin
            for (j = {b0}; j <= {b1}; j = j + 1) begin
                a = i;
                b = j;
                #1;
                $fwrite(fd, "{fmt}\\n", {"$signed(p)" if signed_out else "p"});
            end
        end
        $fclose(fd);
        $finish;
    end
endmodule
"""
    with tempfile.TemporaryDirectory(prefix="axc-sweep-") as tmp:
        folder = Path(tmp)
        (folder / "dut.v").write_text(source)
        (folder / "bench.v").write_text(bench)
        _run([iverilog, "-g2012", "-o", "sim", "dut.v", "bench.v"], folder, what)
        _run([vvp, "-n", "sim"], folder, "running the Verilog sweep", timeout=1800)
        values = np.loadtxt(folder / "table.txt", dtype=np.int64, ndmin=1)
    return values.reshape(a1 - a0 + 1, b1 - b0 + 1)
