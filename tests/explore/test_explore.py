"""Exploration end to end: real passes, simulator, fault campaigns, yosys
characterization, pymoo's NSGA-II, a Dask LocalCluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from axc.cli import main
from axc.explore import explore
from axc.ir.serialize import read_ir
from axc.sim.dataset import load_dataset
from axc.sim.evaluate import evaluate
from tests.conftest import DIGITS

pytestmark = pytest.mark.tools
MODEL = DIGITS / "digits_cnn.onnx"
DATA = DIGITS / "test.npz"

SMALL = """quantize * weights=int8 activations=int8
approximate op(Conv, Gemm) multiplier=exact
target systolic rows=8 cols=8 dataflow=ws clock_mhz=250 device=xc7z020
explore objectives=[accuracy, luts, latency] images=120 {
    target rows in [4, 16]
    target cols in [4, 16]
    approximate "/0/Conv" multiplier in [exact, drum(4)]
}
"""


@pytest.fixture(scope="module", autouse=True)
def shared_cache(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One synthesis cache for the module: each array variant is characterized once."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AXC_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


def write(tmp_path: Path, text: str, name: str = "e.ax") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_point_of_a_small_space(tmp_path: Path) -> None:
    out = tmp_path / "dse"
    s = explore(MODEL, write(tmp_path, SMALL), out=out)
    assert s["algorithm"] == "exhaustive" and s["evaluations"] == s["space_size"] == 8
    everything = list((out / "evaluations.csv").read_text().splitlines())
    assert len(everything) == 9  # header and 8 points
    # mixed multipliers cannot share one array; 16x16 exact needs 320 of 220 DSPs
    text = (out / "evaluations.csv").read_text()
    assert "one systolic array has one multiplier" in text
    assert "over xc7z020's budget (dsp)" in text
    assert s["feasible"] == 3 and len(s["front"]) >= 2
    for p in s["front"]:
        assert p["values"]['approximate "/0/Conv" multiplier'] == "exact"
        assert p["values"]["target rows"] != "16" or p["values"]["target cols"] != "16"
    # each front point: its .ax rebuilds it; accuracy, cycles and LUTs agree
    for p in s["front"]:
        (ax,) = p["files"]
        build = tmp_path / f"build{p['id']}"
        assert main(["compile", str(MODEL), "-d", str(out / ax), "-o", str(build), "-q"]) == 0
        graph = read_ir(build / "digits_cnn.axc.json")
        again = evaluate(graph, load_dataset(DATA, graph, limit=120))
        assert again["top1"] == p["metrics"]["top1"][0]  # exactly
        layers = json.loads((build / "systolic" / "layers.json").read_text())
        cycles = sum(layer["cycles_per_image"] for layer in layers["layers"])
        assert p["objectives"]["latency"] == pytest.approx(cycles / 250)
        shape = layers["array"]
        assert p["metrics"]["hardware"]["array"] == f"{shape['rows']}x{shape['cols']} ws"
    assert (out / "report.html").read_text().count("data:image/png;base64,") == 1
    assert (out / "front.svg").stat().st_size > 1000
    assert json.loads((out / "front.json").read_text()) == s["front"]
