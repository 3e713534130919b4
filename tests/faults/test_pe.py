"""PE-level fault sites in campaigns: a fault in one register of one processing
element, mapped through the array's tiling to the layer's accumulators."""

from __future__ import annotations

import json

import numpy as np
import pytest

import axc
from axc.cli import main
from axc.errors import UserError
from axc.faults import pe
from axc.hw.gemm import layer_products, linear_layers
from axc.hw.systolic import ArrayShape
from axc.sim import Executor
from axc.sim.int_kernels import accumulate
from tests.conftest import DIGITS

MODEL = DIGITS / "digits_cnn.onnx"


def compiled(directives: str) -> axc.Graph:
    graph = axc.load(MODEL)
    axc.apply(graph, directives, model_path=str(MODEL))
    return graph


@pytest.mark.parametrize("dataflow", ["ws", "os"])
@pytest.mark.parametrize("layer", [0, 2])  # a convolution and a dense layer
def test_layer_accumulators_run_each_input_through_the_array(dataflow, layer) -> None:
    graph = compiled(f"quantize *\ntarget systolic rows=4 cols=3 dataflow={dataflow}\n")
    x = np.load(DIGITS / "test.npz")["x"][:3]
    values: dict[str, np.ndarray] = {}
    executor = Executor(graph)
    executor.run({graph.inputs[0]: x}, observe=values.__setitem__)
    node = linear_layers(graph)[layer]
    step = executor.order.index(node)
    args = [values[node.inputs[0]]] + [
        graph.constants.get(t) if t else None for t in node.inputs[1:]
    ]
    acc = accumulate(executor.plan(step), node.op, args, 32)
    array = pe.array_of(graph)
    assert array == ArrayShape(4, 3, dataflow)
    mult = pe.layer_multiplier(graph, node)
    cycles = sum(t.cycles for plan in pe.layer_schedule(graph, node, array) for t in plan)
    cases = [
        ("psum", 1, 2, (-1, 1 << 12, 0), -1),  # stuck-at 1
        ("weight", 3, 0, (~(1 << 3), 0, 0), -1),  # stuck-at 0
        ("input", 0, 1, (-1, 0, 1 << 7), cycles // 3),  # an upset
        ("psum", 2, 2, (-1, 0, 1 << 20), cycles - 5),
    ]
    for register, row, col, masks, cycle in cases:
        got = pe.layer_accumulators(
            graph, node, values[node.inputs[0]], acc, array, register, row, col, masks, cycle
        )
        for i in range(len(x)):
            (product,) = layer_products(graph, node, values[node.inputs[0]][i : i + 1])
            if cycle < 0:
                fault = pe.PeFault(register, row, col, *masks, permanent=True)
            else:
                _, tile, local = pe.locate(pe.layer_schedule(graph, node, array), cycle)
                fault = pe.PeFault(register, row, col, *masks, tile=tile, cycle=local)
            want = pe.faulty_accumulators(
                product.x, product.w, product.bias, array, mult, 32, fault
            )
            if node.op == "QConv":
                want = want.T.reshape(acc.shape[1:])
            np.testing.assert_array_equal(got[i], want.reshape(got[i].shape))


def test_a_campaign_over_pe_registers(tmp_path, capsys) -> None:
    directives = tmp_path / "pe.ax"
    directives.write_text(
        "quantize *\n"
        "target systolic rows=4 cols=4 dataflow=os\n"
        'inject "/3/Conv" site=pe_psum model=bitflip count=60\n'
        'inject "/3/Conv" site=pe_weight model=stuck_at(1) bits=msb count=16\n'
    )
    out = tmp_path / "campaign"
    code = main(["inject", str(MODEL), "-d", str(directives), "--data", str(DIGITS / "test.npz"),
                 "--images", "20", "--out", str(out), "--json", "--quiet"])  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["array"] == {"rows": 4, "cols": 4, "dataflow": "os"}
    assert report["per_site"].keys() == {"pe_psum", "pe_weight"}
    kinds = report["per_pe_kind"]
    assert kinds["stuck-at"]["faults"] == 16 and kinds["transient"]["faults"] == 60
    # all 16 PEs' weight sign bits stuck: each a different PE
    assert len(report["per_pe"]) == 16
    assert kinds["stuck-at"]["sdc1"]["rate"] > kinds["transient"]["sdc1"]["rate"]
    for name in ("sdc1_per_pe.png", "pe_fault_spread.png", "faults.csv"):
        assert (out / name).stat().st_size > 0
    rows = (out / "faults.csv").read_text().splitlines()
    assert len(rows) == 1 + 76 and "pe_weight" in rows[-1]


def test_pe_sites_need_an_integer_ws_or_os_array() -> None:
    with pytest.raises(UserError, match="PE faults hit the integer array"):
        compiled('inject "/3/Conv" site=pe_psum count=5\n')
    with pytest.raises(UserError, match="PE faults model ws and os arrays"):
        compiled("quantize *\ntarget systolic dataflow=is\ninject * site=pe_input count=5\n")
