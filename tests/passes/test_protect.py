"""The protect pass: each mechanism's effect, its errors, and its export."""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnxruntime as ort
import pytest

import axc
from axc.cli import main
from axc.errors import UserError
from axc.faults.engine import Engine
from axc.faults.model import BitFlip, FaultGroup, generate
from axc.passes.protect import protection_cost
from axc.sim import Executor
from tests.conftest import DIGITS

MODEL = DIGITS / "digits_cnn.onnx"
SYMMETRIC = "quantize * activation_scheme=symmetric\n"


@pytest.fixture(scope="module")
def data():  # type: ignore[no-untyped-def]
    d = np.load(DIGITS / "test.npz")
    return d["x"], d["y"]


def build(directives: str) -> axc.Graph:
    graph = axc.load(MODEL)
    axc.apply(graph, directives, model_path=str(MODEL))
    return graph


def run(graph: axc.Graph, x: np.ndarray) -> dict[str, np.ndarray]:
    return Executor(graph).run({graph.inputs[0]: x})


def campaign(graph, x, y, group: FaultGroup, seed: int = 3):  # type: ignore[no-untyped-def]
    faults, sites, _ = generate([group], graph, seed)
    engine = Engine(graph, sites)
    return engine.run(faults, engine.golden(x, y))


@pytest.mark.parametrize("granularity", ["per_layer", "per_channel"])
def test_range_restriction_at_profile_100_leaves_clean_accuracy_alone(data, granularity) -> None:
    x, y = data
    plain = run(build(SYMMETRIC), x)["logits"]
    graph = build(SYMMETRIC + f"protect * range(bounds=profile(100), granularity={granularity})\n")
    guarded = run(graph, x)["logits"]
    assert (guarded.argmax(1) == y).mean() == (plain.argmax(1) == y).mean()
    restricts = [n for n in graph.nodes.values() if n.op == "RangeRestrict"]
    assert len(restricts) == 6
    # the bounds live in the IR: profiled once, stored, reused by every run
    assert all(len(n.attrs["high"]) > 1 for n in restricts[:-1]) == (granularity == "per_channel")
    assert all(min(n.attrs["low"]) >= -128 and max(n.attrs["high"]) <= 127 for n in restricts)


def test_range_restriction_cuts_activation_sdc(data) -> None:
    x, y = data
    x, y = x[:150], y[:150]
    layers = ("/2/MaxPool", "/5/MaxPool", "/7/Gemm")
    group = FaultGroup("activations", layers, BitFlip(), "any", 400)
    bare = campaign(build(SYMMETRIC), x, y, group)
    guarded = campaign(build(SYMMETRIC + "protect * range(bounds=profile(100))\n"), x, y, group)
    assert bare.sdc1.sum() > 2 * guarded.sdc1.sum() > 0
    assert guarded.due.sum() == 0  # range restriction corrects; it detects nothing


def test_checksum_detects_accumulator_faults_and_never_cries_wolf(data) -> None:
    x, y = data
    graph = build(SYMMETRIC + "protect op(Conv, Gemm) checksum()\n")
    flags = graph.metadata["due_outputs"]
    assert len(flags) == 4
    clean = run(graph, x)
    assert all(int(clean[f].sum()) == 0 for f in flags)  # no false alarm on the test split
    layers = ("/0/Conv", "/3/Conv", "/7/Gemm", "/9/Gemm")
    for kind in ("accumulators", "psums"):
        counts = campaign(graph, x[:80], y[:80], FaultGroup(kind, layers, BitFlip(), "any", 200))
        changed = counts.images - counts.masked  # faulty inferences whose output moved
        assert counts.due.sum() >= 0.99 * counts.images.sum()
        assert counts.due.sum() >= changed.sum()
        assert counts.sdc1.sum() == 0
    bare = campaign(
        build(SYMMETRIC), x[:80], y[:80], FaultGroup("accumulators", layers, BitFlip(), "any", 200)
    )
    assert bare.sdc1.sum() > 0 and bare.due.sum() == 0


def test_triplication_outvotes_single_faults_and_duplication_detects_them(data) -> None:
    x, y = data
    x, y = x[:120], y[:120]
    group = FaultGroup("activations", ("/9/Gemm",), BitFlip(), "any", 80)
    bare = campaign(build(SYMMETRIC), x, y, group)
    assert bare.sdc1.sum() > 0
    tmr = campaign(build(SYMMETRIC + 'protect "/9/Gemm" triplicate()\n'), x, y, group)
    assert tmr.sdc1.sum() == 0 and tmr.due.sum() == 0
    dmr = campaign(build(SYMMETRIC + 'protect "/9/Gemm" duplicate()\n'), x, y, group)
    assert dmr.sdc1.sum() == 0 and dmr.due.sum() == dmr.images.sum()


def test_bounded_relu_clips_at_the_profiled_bound(data) -> None:
    x, _ = data
    graph = build(SYMMETRIC + "protect layers[0:4] bounded_relu()\n")
    bounded = [n for n in graph.nodes.values() if n.attrs.get("mechanism") == "bounded_relu"]
    assert {n.annotations["protect"]["layer"] for n in bounded} == {"/0/Conv", "/3/Conv"}
    assert all(n.attrs["low"] == (0,) for n in bounded)
    np.testing.assert_array_equal(run(graph, x)["logits"], run(build(SYMMETRIC), x)["logits"])


def test_a_mechanism_on_a_layer_it_cannot_cover_is_named(tmp_path) -> None:
    for statement, words in (
        ('protect "/2/MaxPool" checksum()', ("checksum", "/2/MaxPool", "MaxPool")),
        ('protect "/9/Gemm" bounded_relu()', ("bounded_relu", "/9/Gemm")),
        ("protect * checksum()", ("checksum",)),  # a float model: nothing to cover
    ):
        quantize = "" if statement == "protect * checksum()" else SYMMETRIC
        path = tmp_path / "p.ax"
        path.write_text(quantize + statement + "\n")
        with pytest.raises(UserError) as info:
            build(str(path))
        message = str(info.value)
        assert all(w in message for w in words), message
        assert f"{path}:{2 if quantize else 1}:1" in message


def test_a_small_profile_warns_with_its_count(tmp_path) -> None:
    few = tmp_path / "few.npz"
    np.savez(few, x=np.load(DIGITS / "calib.npz")["x"][:20])
    with pytest.warns(UserWarning, match="only 20 images"):
        build(SYMMETRIC + f'protect * range(bounds=profile(100)) data="{few}"\n')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build(SYMMETRIC + "protect * range(bounds=profile(100))\n")  # 200 images: no warning


def test_protected_designs_export_to_onnx_bit_exactly(tmp_path, data) -> None:
    x, _ = data
    for statement in (
        "protect * range(bounds=profile(100), granularity=per_channel)",
        "protect * range(bounds=profile(99), action=zero)",
        "protect op(Conv, Gemm) checksum()",
        'protect "/7/Gemm" triplicate()',
    ):
        graph = build(SYMMETRIC + statement + "\n")
        axc.export(graph, tmp_path / "p.onnx")
        session = ort.InferenceSession(str(tmp_path / "p.onnx"))
        assert len(session.get_outputs()) == 1  # detection flags have no ONNX form
        got = session.run(None, {"image": x})[0]
        np.testing.assert_array_equal(got, run(graph, x)["logits"])


def test_cost_model(data) -> None:
    graph = build(
        SYMMETRIC
        + "protect * range(bounds=profile(100))\n"
        + 'protect "/3/Conv" checksum()\n'
        + 'protect "/9/Gemm" triplicate()\n'
    )
    rows = {(r["mechanism"], r["layer"]): r for r in protection_cost(graph)}
    assert rows["range", "/0/Conv"]["compares"] == 2 * 8 * 8 * 8  # two per output value
    assert rows["range", "/0/Conv"]["storage_bits"] == 2 * 8  # two int8 bounds
    # one column-sum product per output position and tap
    assert rows["checksum", "/3/Conv"]["macs"] == 16 * 72
    assert rows["triplicate", "/9/Gemm"]["macs"] == 2 * 32 * 10  # two more copies
    assert rows["triplicate", "/9/Gemm"]["compares"] == 3 * 10


def test_compare_protection_reports_the_reduction_with_an_interval(tmp_path, capsys) -> None:
    directives = tmp_path / "p.ax"
    directives.write_text(
        SYMMETRIC
        + "protect * range(bounds=profile(100))\n"
        + "inject * site=activations model=bitflip count=300\n"
    )
    args = [
        "inject",
        str(MODEL),
        "-d",
        str(directives),
        "--data",
        str(DIGITS / "test.npz"),
        "--images",
        "100",
        "--compare-protection",
        "--out",
        str(tmp_path / "out"),
    ]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    total = report["total"]
    low, high = total["reduction"]["ci"]
    assert low <= total["reduction"]["factor"] <= high
    assert total["sdc1_before"]["count"] > total["sdc1_after"]["count"]
    assert report["clean"]["unprotected"]["top1"] == report["clean"]["protected"]["top1"]
    assert set(report["per_layer"]) >= {"/0/Conv", "/7/Gemm"}
    # the layers protection left alone bound what it can gain: the logits have
    # no later layer to guard them
    cap = report["ceiling"]
    assert "/9/Gemm" in cap["layers"] and "/7/Gemm" not in cap["layers"]
    for layer in cap["layers"]:
        entry = report["per_layer"][layer]
        assert entry["sdc1_after"]["count"] == entry["sdc1_before"]["count"] > 0
    kept = sum(report["per_layer"][layer]["sdc1_before"]["count"] for layer in cap["layers"])
    assert cap["factor"] == pytest.approx(total["sdc1_before"]["count"] / kept)
    assert total["reduction"]["factor"] <= cap["factor"]
    assert (tmp_path / "out" / "protected" / "results.sqlite").exists()
    assert main([*args, "--force"]) == 0
    printed = capsys.readouterr().out
    assert "reduction (95% CI)" in printed and "protection cost" in printed
    assert f"at most {cap['factor']:.2f}x" in printed
    # the totals' intervals with faults as the draws, as the JSON has them
    spans = [
        "[{:.3f}, {:.3f}]%".format(*(100 * v for v in total[key]["ci_faults"]))
        for key in ("sdc1_before", "sdc1_after")
    ]
    assert f"independent draws: {spans[0]} before, {spans[1]} after" in printed
