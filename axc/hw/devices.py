"""FPGA device budgets: what a few common parts offer, and how much of it a
design uses. Counts are the vendors' datasheet figures (AMD/Xilinx DS190 for
Zynq-7000, DS180 for 7 series, DS891 for Zynq UltraScale+): 6-input LUTs,
flip-flops, DSP slices and 36 Kb block RAMs."""

from __future__ import annotations

from dataclasses import dataclass

from axc.directives.diagnostics import did_you_mean
from axc.errors import UserError

__all__ = ["DEVICES", "Device", "device", "utilization"]


@dataclass(frozen=True)
class Device:
    name: str
    family: str
    luts: int
    ff: int
    dsp: int
    bram36: int


DEVICES = {
    d.name: d
    for d in (
        Device("xc7z010", "Zynq-7000", 17_600, 35_200, 80, 60),
        Device("xc7z020", "Zynq-7000", 53_200, 106_400, 220, 140),
        Device("xc7z045", "Zynq-7000", 218_600, 437_200, 900, 545),
        Device("xc7a100t", "Artix-7", 63_400, 126_800, 240, 135),
        Device("xczu3eg", "Zynq UltraScale+", 70_560, 141_120, 360, 216),
        Device("xczu9eg", "Zynq UltraScale+", 274_080, 548_160, 2_520, 912),
    )
}


def device(name: str) -> Device:
    key = name.lower()
    for known in DEVICES:  # accept full part numbers such as xc7z020clg400-1
        if key.startswith(known):
            return DEVICES[known]
    raise UserError(
        f"unknown device {name!r}{did_you_mean(name, DEVICES)} (known: {', '.join(DEVICES)})"
    )


def utilization(resources: dict[str, int], part: Device) -> dict[str, object]:
    """Each resource's share of the device, and whether the design fits."""
    shares = {
        "luts": resources.get("luts", 0) / part.luts,
        "ff": resources.get("ff", 0) / part.ff,
        "dsp": resources.get("dsp", 0) / part.dsp,
        "bram36": resources.get("bram36", 0) / part.bram36,
    }
    return {
        "device": part.name,
        "percent": {k: round(100 * v, 2) for k, v in shares.items()},
        "fits": all(v <= 1.0 for v in shares.values()),
    }
