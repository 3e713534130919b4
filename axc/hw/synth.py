"""Hardware cost from real synthesis: yosys ``synth_xilinx`` (``-nodsp`` for multipliers).

Results are cached on disk, keyed by the Verilog's hash, the script and the
yosys version, and recorded with that version (LUT counts differ between
yosys releases). The cache lives in ``$AXC_CACHE_DIR`` or
``$XDG_CACHE_HOME/axc`` (default ``~/.cache/axc``), under ``synth/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tempfile
import threading
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from axc.arith.sweep import require_tool
from axc.errors import UserError

__all__ = ["SynthesisResult", "cache_dir", "synthesize", "yosys_version"]

SCRIPT = "synth_xilinx -nodsp -flatten -top {top}; stat"


@dataclass(frozen=True)
class SynthesisResult:
    top: str
    luts: int
    carry: int
    cells: dict[str, int]
    yosys: str
    cached: bool = False
    ff: int = 0
    dsp: int = 0
    script: str = SCRIPT

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def cache_dir() -> Path:
    if os.environ.get("AXC_CACHE_DIR"):
        return Path(os.environ["AXC_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "axc"


@lru_cache(maxsize=1)
def yosys_version() -> str:
    yosys = require_tool("yosys", "synthesize hardware")
    out = subprocess.run([yosys, "-V"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"Yosys\s+(\S+)", out)
    return match.group(1) if match else out.strip()


def _parse_stat(log: str) -> dict[str, int]:
    """Cell counts from the last ``stat`` report in a yosys log."""
    section = log[log.rfind("Number of cells:") :]
    cells: dict[str, int] = {}
    for line in section.splitlines()[1:]:
        match = re.match(r"\s+(\$?\w+)\s+(\d+)\s*$", line)
        if match:
            cells[match.group(1)] = int(match.group(2))
        elif cells and not line.strip():
            break
    return cells


def synthesize(
    verilog: str, top: str, *, use_cache: bool = True, dsp: bool = False
) -> SynthesisResult:
    """LUT, CARRY, flip-flop and DSP counts of module ``top`` in ``verilog`` after
    ``synth_xilinx -nodsp`` (multipliers as LUTs, to compare them), or with
    ``dsp`` plain ``synth_xilinx`` (what a whole design uses on a device)."""
    version = yosys_version()
    script = (SCRIPT if not dsp else SCRIPT.replace(" -nodsp", "")).format(top=top)
    key = hashlib.sha256(f"{version}\n{script}\n{verilog}".encode()).hexdigest()[:32]
    path = cache_dir() / "synth" / f"{key}.json"
    if use_cache and path.exists():
        try:
            data = json.loads(path.read_text())
            return SynthesisResult(**{**data, "cached": True})
        except (ValueError, TypeError):
            pass  # a damaged cache entry is recomputed
    yosys = require_tool("yosys", "synthesize hardware")
    with tempfile.TemporaryDirectory(prefix="axc-synth-") as tmp:
        src = Path(tmp) / "design.v"
        src.write_text(verilog)
        proc = subprocess.run(
            [yosys, "-q", "-p", f"read_verilog {src.name}; {script}; tee -o stat.txt stat"],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=3600,
        )
        if proc.returncode != 0:
            raise UserError(f"yosys failed on {top}:\n{(proc.stderr or proc.stdout)[-2000:]}")
        log = (Path(tmp) / "stat.txt").read_text()
    cells = _parse_stat(log)
    luts = sum(v for k, v in cells.items() if re.fullmatch(r"LUT\d", k))
    carry = sum(v for k, v in cells.items() if k.startswith("CARRY"))
    ff = sum(v for k, v in cells.items() if re.fullmatch(r"FD[A-Z]*", k))
    dsps = sum(v for k, v in cells.items() if k.startswith("DSP"))
    result = SynthesisResult(
        top=top, luts=luts, carry=carry, cells=cells, yosys=version, ff=ff, dsp=dsps, script=script
    )
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        # a name of its own: another thread or process may write the same entry
        tmp_path = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp_path.write_text(json.dumps(asdict(result)))
        tmp_path.replace(path)
    return result
