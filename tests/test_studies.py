"""The case studies' --quick runs: their outputs exist, and their key figures
are recomputed from the raw results and hold."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path
from types import ModuleType

import pytest

from axc.hw.devices import device, utilization
from tests.conftest import ROOT

pytestmark = [pytest.mark.tools, pytest.mark.slow]


def study(name: str) -> ModuleType:
    path = ROOT / "examples" / name / "run.py"
    spec = importlib.util.spec_from_file_location(f"study_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quant_reliability_quick(tmp_path: Path) -> None:
    out = tmp_path / "qr"
    assert study("quant_reliability").main(["--quick", "--out", str(out), "--quiet"]) == 0
    for stem in ("sdc1_vs_bits", "sdc1_per_layer", "sdc1_per_bit", "range_overhead"):
        assert (out / f"{stem}.png").stat().st_size > 10_000
        assert (out / f"{stem}.svg").is_file()
    results = json.loads((out / "results.json").read_text())
    summary = list(csv.DictReader((out / "summary.csv").open()))
    assert [(int(r["bits"]), r["activations"]) for r in summary] == [
        (4, "symmetric"),
        (4, "asymmetric"),
        (8, "symmetric"),
        (8, "asymmetric"),
    ]
    for design, row in zip(results["designs"], summary, strict=True):
        before = design["unprotected"]["total"]["sdc1"]
        after = design["protected"]["total"]["sdc1"]
        # the table is the raw counts' rate; SDC-1 is counted over faults x images
        runs = results["faults"] * results["images"]
        assert before["rate"] == pytest.approx(before["count"] / runs)
        assert float(row["sdc1_pct"]) == pytest.approx(100 * before["rate"], abs=1e-3)
        # per-layer counts add up to the total
        layers = design["unprotected"]["per_layer"].values()
        assert sum(e["sdc1"]["count"] for e in layers) == before["count"]
        assert after["count"] <= before["count"]
        hw = design["hw"]
        assert hw["luts"] > hw["luts_without_range"] and hw["ff"] >= hw["ff_without_range"]
        if design["scheme"] == "symmetric":  # clipping removes sign-bit flips: fewer SDCs
            assert after["count"] < before["count"]
            assert design["total"]["reduction"]["ci"][0] > 1.0
    narrow = {d["scheme"]: d for d in results["designs"] if d["bits"] == 4}
    wide = {d["scheme"]: d for d in results["designs"] if d["bits"] == 8}
    for scheme in ("symmetric", "asymmetric"):  # what the README reads off the figure
        lo = narrow[scheme]["unprotected"]["total"]["sdc1"]["ci"][0]
        assert lo > wide[scheme]["unprotected"]["total"]["sdc1"]["ci"][1]


def test_multi_model_accelerator_quick(tmp_path: Path) -> None:
    out = tmp_path / "mm"
    assert study("multi_model_accelerator").main(["--quick", "--out", str(out), "--quiet"]) == 0
    assert (out / "shared_vs_best.png").stat().st_size > 10_000
    assert (out / "shared_vs_best.svg").is_file() and (out / "comparison.md").is_file()
    results = json.loads((out / "results.json").read_text())
    summary = json.loads((out / "explore" / "explore.json").read_text())
    assert len(summary["models"]) == 3 and summary["evaluations"] == summary["space_size"] == 4
    assert [r["device"] for r in results] == ["xc7z010", "xc7z020"]
    for result in results:
        part = device(result["device"])
        fitting = [
            p for p in summary["points"] if utilization(p["metrics"]["hardware"], part)["fits"]
        ]
        assert len(fitting) == result["fitting"] >= 1
        # the chosen array minimizes the geometric mean of the three latencies
        geo = {
            p["metrics"]["hardware"]["array"]: math.prod(p["metrics"]["hardware"]["latency_us"])
            ** (1 / 3)
            for p in fitting
        }
        assert result["shared"]["array"] == min(geo, key=geo.__getitem__)
        assert result["shared"]["geomean_latency_us"] == pytest.approx(min(geo.values()), rel=1e-3)
        for row in result["models"]:  # a model's own best is at least as fast as the shared
            assert row["best_latency_us"] <= row["shared_latency_us"] and row["slowdown"] >= 1.0
    assert results[0]["fitting"] < results[1]["fitting"]  # the xc7z010 has 80 DSPs, not 220
    # the front of latency against LUTs is non-empty and non-dominated
    front = [(p["objectives"]["latency"], p["objectives"]["luts"]) for p in summary["front"]]
    assert front
    for a in front:
        assert not any(b != a and b[0] <= a[0] and b[1] <= a[1] for b in front)


def test_approx_reliability_quick(tmp_path: Path) -> None:
    out = tmp_path / "ar"
    assert study("approx_reliability").main(["--quick", "--out", str(out), "--quiet"]) == 0
    for stem in ("front3d", "chosen"):
        assert (out / f"{stem}.png").stat().st_size > 10_000
        assert (out / f"{stem}.svg").is_file()
    results = json.loads((out / "results.json").read_text())
    table = list(csv.DictReader((out / "designs.csv").open()))
    assert [m["name"] for m in results["models"]] == ["digits CNN", "deeper digits CNN"]
    objectives = results["objectives"]
    hw = objectives[-1]
    for m in results["models"]:
        assert m["evaluations"] == m["space_size"] == 4  # 2 layers x 2 multipliers, every point
        # the front is non-empty, non-dominated, and every non-dominated vector is on it
        vectors = {p["id"]: tuple(p["objectives"][k] for k in objectives) for p in m["points"]}

        def dominated(v: tuple[float, ...], vectors: dict = vectors) -> bool:  # type: ignore[type-arg]
            return any(u != v and all(a <= b for a, b in zip(u, v, strict=True))
                       for u in vectors.values())  # fmt: skip

        front = m["front_ids"]
        assert front and not any(dominated(vectors[i]) for i in front)
        for p in m["points"]:  # the whiskers hold the exploration's estimate
            lo, hi = p["sdc1_ci"]
            assert 100 * lo <= p["objectives"]["vulnerability"] <= 100 * hi
        assert {vectors[i] for i in front} == {v for v in vectors.values() if not dominated(v)}
        rows = [r for r in table if r["model"] == m["name"]]
        assert [r["design"] for r in rows] == [d["design"] for d in m["designs"]]
        exact = m["designs"][0]
        assert exact["design"] == "all exact" and exact["hardware"]["arrays"] == 1
        for d, row in zip(m["designs"], rows, strict=True):
            sdc = d["sdc1"]
            assert sdc["rate"] == pytest.approx(sdc["count"] / d["runs"])
            assert sdc["ci"][0] <= sdc["rate"] <= sdc["ci"][1]
            # faults as the draws: never narrower than counting every inference
            assert sdc["ci_faults"][0] <= sdc["ci"][0] + 1e-12
            assert sdc["ci_faults"][1] >= sdc["ci"][1] - 1e-12
            assert float(row["sdc1_ci_hi"]) == pytest.approx(100 * sdc["ci_faults"][1], abs=1e-3)
            assert float(row["sdc1_pct"]) == pytest.approx(100 * sdc["rate"], abs=1e-3)
            # one array per multiplier, and their LUTs add up
            used = set(d["values"].values())
            assert d["hardware"]["arrays"] == len(used)
            if len(used) > 1:
                assert d["hardware"][hw] > exact["hardware"][hw]
            # a front point's .ax file rebuilds the design: the same top-1, exactly
            loss = 100 * (m["reference_top1"] - d["top1"])
            assert loss == pytest.approx(d["objectives"]["accuracy"], abs=1e-9)
