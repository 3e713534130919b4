"""The figures the examples publish are the ones their commands produce."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.conftest import DIGITS


def test_digits_readme_table_is_what_sweep_bits_prints() -> None:
    result = subprocess.run(
        [sys.executable, str(DIGITS / "sweep_bits.py"), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = json.loads(result.stdout)["rows"]
    readme = (DIGITS / "README.md").read_text()
    for row in rows:
        cells = (
            f"| {row['bits']} | {100 * row['both']:.2f}% | {100 * row['weights_only']:.2f}% "
            f"| {100 * row['activations_only']:.2f}% |"
        )
        assert cells in readme, cells
    assert re.search(r"\| 8 \| 98\.\d\d% ", readme)


@pytest.mark.slow
@pytest.mark.tools
def test_digits_readme_multiplier_table_is_what_sweep_multipliers_prints() -> None:
    """Accuracy and error always; LUT counts when the README's yosys is the one here."""
    from axc.hw.synth import yosys_version

    readme = (DIGITS / "README.md").read_text()
    recorded = re.search(r"yosys (\S+), `synth_xilinx -nodsp -flatten`", readme)
    assert recorded is not None
    same_yosys = recorded.group(1) == yosys_version()
    argv = [sys.executable, str(DIGITS / "sweep_multipliers.py"), "--json", "--quiet"]
    if not same_yosys:
        argv.append("--no-cost")
    result = subprocess.run(argv, capture_output=True, text=True, check=True)
    rows = json.loads(result.stdout)["rows"]
    assert len(rows) >= 9
    for row in rows:
        cells = f"| {row['multiplier']} | {100 * row['top1']:.2f}% | {row['mae_percent']:.3f}% |"
        if same_yosys:
            cells += f" {row['luts']} | {row['carry']} |"
        assert cells in readme, cells


@pytest.mark.slow
def test_digits_readme_protection_table_is_what_protection_table_prints() -> None:
    result = subprocess.run(
        [sys.executable, str(DIGITS / "protection_table.py")],
        capture_output=True,
        text=True,
        check=True,
    )
    readme = (DIGITS / "README.md").read_text()
    lines = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert len(lines) == 2 + 16
    for line in lines:
        assert line in readme, line
