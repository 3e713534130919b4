"""FPGA device budgets."""

from __future__ import annotations

import pytest

from axc.errors import UserError
from axc.hw.devices import DEVICES, device, utilization


def test_parts_by_name_and_full_part_number() -> None:
    assert device("xc7z020clg400-1") is DEVICES["xc7z020"]
    assert device("XCZU9EG") is DEVICES["xczu9eg"]
    with pytest.raises(UserError, match="did you mean 'xc7z020'"):
        device("xc7z02")


def test_utilization_says_what_does_not_fit() -> None:
    part = DEVICES["xc7z020"]
    half = utilization({"luts": part.luts // 2, "ff": 10, "dsp": part.dsp}, part)
    assert half["fits"] and half["percent"]["luts"] == 50.0 and half["percent"]["dsp"] == 100.0
    over = utilization({"luts": 10, "dsp": part.dsp + 1}, part)
    assert not over["fits"] and over["percent"]["dsp"] > 100
