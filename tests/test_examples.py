"""The figures the examples publish are the ones their commands produce."""

from __future__ import annotations

import json
import re
import subprocess
import sys

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
