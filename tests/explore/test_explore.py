"""Exploration end to end: real passes, simulator, fault campaigns, yosys
characterization, pymoo's NSGA-II, a Dask LocalCluster."""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from onnx import helper

import axc
from axc.cli import main
from axc.explore import explore
from axc.ir.serialize import read_ir
from axc.sim.dataset import load_dataset
from axc.sim.evaluate import evaluate
from tests.conftest import DIGITS, make_model, save, tensor

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


APPROX = 'approximate "/0/Conv" multiplier'


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
    # 16x16 with an exact array needs 320 of 220 DSPs (beside drum(4)'s: and 86k LUTs)
    text = (out / "evaluations.csv").read_text()
    assert text.count("over xc7z020's budget (dsp)") == 1
    assert text.count("over xc7z020's budget (luts, dsp)") == 1
    assert s["feasible"] == 6 and len(s["front"]) >= 2
    # an approximate first layer runs on an array of its own: two arrays, more LUTs
    points = {
        (p["values"]["target rows"], p["values"]["target cols"], p["values"][APPROX]): p
        for p in s["points"]
        if p["objectives"]
    }
    for (rows, cols, mult), p in points.items():
        hw = p["metrics"]["hardware"]
        assert hw["arrays"] == (2 if mult == "drum(4)" else 1)
        if mult == "drum(4)":
            alone = points[(rows, cols, "exact")]["metrics"]["hardware"]
            assert hw["luts"] > alone["luts"] and hw["latency"] == alone["latency"]
    for p in s["front"]:
        assert p["values"][APPROX] == "exact"
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


SEARCH = """quantize * weights=int8 activations=int8 activation_scheme=symmetric
target systolic rows=8 cols=8 device=xc7z020
explore objectives=[accuracy, vulnerability, luts, latency] algorithm=nsga2 population=6 \\
        generations=3 seed=3 images=100 faults=60 fault_images=20 {
    quantize op(Gemm) weights in int4..int8
    protect op(Conv, Gemm) mechanism in [none, range(bounds=profile(99.9), action=zero)]
    target rows in [4, 8, 16]
    target cols in [4, 8, 16]
}
"""


def _front(summary: dict) -> list:  # type: ignore[type-arg]
    return [(p["point"], p["objectives"]) for p in summary["front"]]


def test_nsga2_gives_one_front_locally_in_workers_and_on_dask(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    ax = write(tmp_path, SEARCH.replace("\\\n", ""))
    local = explore(MODEL, ax, use_cache=False)
    assert local["algorithm"] == "nsga2" and local["evaluations"] >= 12
    assert all(p["metrics"]["sdc1"] for p in local["front"])
    pooled = explore(MODEL, ax, use_cache=False, workers=2)
    assert _front(pooled) == _front(local)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        remote = explore(MODEL, ax, use_cache=False, scheduler=cluster.scheduler_address)
    assert remote["run"]["scheduler"] == cluster.scheduler_address
    assert _front(remote) == _front(local)
    assert remote["evaluations"] == local["evaluations"]
    # the evaluation cache: the same run again evaluates nothing
    first = explore(MODEL, ax)
    again = explore(MODEL, ax)
    assert again["cache_hits"] == again["evaluations"] == first["evaluations"]
    assert _front(again) == _front(local)
    other = explore(MODEL, ax, overrides={"seed": 4})
    assert other["seed"] == 4 and [p["point"] for p in other["front"]] != []


def tiny_model(folder: Path) -> Path:
    """A second, smaller CNN (conv 3x3 -> ReLU -> dense), labelled by its own
    float predictions, with its calibration and test sets beside it."""
    rng = np.random.default_rng(5)
    folder.mkdir()
    w = rng.normal(0, 0.5, (4, 1, 3, 3)).astype(np.float32)
    d = rng.normal(0, 0.3, (10, 4 * 6 * 6)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "d"], ["y"], name="dense", transB=1),
    ]
    model = make_model(
        nodes, [tensor("x", ["N", 1, 8, 8])], [tensor("y", ["N", 10])], {"w": w, "d": d}
    )
    path = save(model, folder / "tiny.onnx")
    x = rng.normal(0, 1, (64, 1, 8, 8)).astype(np.float32)
    y = np.argmax(axc.simulate(axc.load(path), x)["y"], axis=1)
    np.savez(folder / "calib.npz", x=x)
    np.savez(folder / "test.npz", x=x, y=y)
    return path


def test_several_models_share_one_array(tmp_path: Path) -> None:
    tiny = tiny_model(tmp_path / "tiny")
    shared = """quantize * weights=int8 activations=int8
target systolic rows=8 cols=8 device=xc7z020
explore objectives=[accuracy, luts, latency] {
    target rows in [4, 8]
    target cols in [4, 8]
}
"""
    ax = write(tmp_path, shared)
    both = explore([MODEL, tiny], [ax, ax], out=tmp_path / "dse")
    alone = [explore(m, ax) for m in (MODEL, tiny)]
    assert both["evaluations"] == 4 and both["reference_top1"][1] == 1.0
    by_point = [{tuple(p["point"]): p for p in s["points"]} for s in alone]
    for p in both["front"]:
        hw = p["metrics"]["hardware"]
        singles = [a[tuple(p["point"])]["objectives"]["latency"] for a in by_point]
        assert hw["latency_us"] == pytest.approx(singles)
        assert p["objectives"]["latency"] == pytest.approx(math.sqrt(singles[0] * singles[1]))
        losses = p["metrics"]["accuracy_loss"]
        assert p["objectives"]["accuracy"] == pytest.approx(sum(losses) / 2)
        assert len(p["files"]) == 2 and all((tmp_path / "dse" / f).is_file() for f in p["files"])


BAD_DEVICE = SMALL.replace("images=120", "device=xc7z0x0")


def test_bad_input_gets_one_message(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    plain = write(tmp_path, "quantize *\n", "plain.ax")
    cases = [
        ([str(MODEL), "-d", str(plain)], "no explore block"),
        ([str(MODEL), "-d", str(write(tmp_path, SMALL)), "--data", str(tmp_path / "no.npz")],
         "no test set at"),
        ([str(MODEL), "-d", str(write(tmp_path, SMALL)), "--workers", "0"], "--workers"),
        ([str(tmp_path / "none.onnx"), "-d", str(plain)], "no such model"),
        ([str(MODEL), "-d", str(write(tmp_path, BAD_DEVICE, "bad.ax"))], "bad.ax:4:"),
        ([str(MODEL), str(MODEL), "-d", str(plain), "-d", str(plain), "-d", str(plain)],
         "2 models and 3 directive files"),
    ]  # fmt: skip
    for args, message in cases:
        assert main(["explore", *args]) == 1
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep me")
    assert main(["explore", str(MODEL), "-d", str(write(tmp_path, SMALL)), "-o", str(busy)]) == 1
    assert "already holds files" in capsys.readouterr().err
    assert (busy / "mine.txt").read_text() == "keep me"


@pytest.mark.slow
@pytest.mark.alone  # timed: its two workers need both cores
def test_the_digits_example_finds_a_front(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """The acceptance run: examples/digits/explore.ax on 2 workers, from an
    empty synthesis cache, in under 10 minutes; a chosen point's .ax rebuilds
    its accuracy exactly."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AXC_CACHE_DIR", str(tmp_path / "fresh"))
        start = time.perf_counter()
        code = main(["explore", str(MODEL), "-d", str(DIGITS / "explore.ax"),
                     "-o", str(tmp_path / "dse"), "--workers", "2", "--json"])  # fmt: skip
        seconds = time.perf_counter() - start
    assert code == 0
    s = json.loads(capsys.readouterr().out)
    assert seconds < 600 and s["evaluations"] >= 50
    front = s["front"]
    luts = [p["metrics"]["hardware"]["luts"] for p in front]
    assert len(front) >= 5 and max(luts) >= 2 * min(luts)
    chosen = max(front, key=lambda p: p["objectives"]["accuracy"])  # the least accurate
    (ax,) = chosen["files"]
    build = tmp_path / "build"
    assert (
        main(["compile", str(MODEL), "-d", str(tmp_path / "dse" / ax), "-o", str(build), "-q"]) == 0
    )
    graph = read_ir(build / "digits_cnn.axc.json")
    assert evaluate(graph, load_dataset(DATA, graph))["top1"] == chosen["metrics"]["top1"][0]
    print(f"explore: {s['evaluations']} points, front {len(front)}, {seconds:.0f} s")
    shutil.rmtree(tmp_path / "fresh", ignore_errors=True)
