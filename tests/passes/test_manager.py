from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

import axc
from axc.directives import parse_text
from axc.errors import DirectiveError, UserError
from axc.ir import Graph, VerificationError
from axc.passes import Pass, PassContext, PassManager, bind, get_pass, register_pass


def test_target_records_choice(digits_model) -> None:
    g = axc.load(digits_model)
    records = axc.apply(g, "target hls clock_mhz=150 device=xc7z020\n")
    assert g.metadata["target"] == {
        "backend": "hls",
        "rows": 8,
        "cols": 8,
        "dataflow": "ws",
        "clock_mhz": 150.0,
        "device": "xc7z020",
    }
    assert records[0].changed and records[0].targets == ()


def test_cut_exposes_selected_layers_and_drops_the_rest(digits_model, digits_data) -> None:
    g = axc.load(digits_model)
    full = axc.simulate(g, digits_data[0][:4])
    del full
    records = axc.apply(g, 'cut "/3/Conv"\n')
    assert records[0].targets == ("/3/Conv",)
    assert [n.op for n in g.topological()] == ["Conv", "MaxPool", "Conv"]
    out = axc.simulate(g, digits_data[0][:4])
    (value,) = out.values()
    assert value.shape == (4, 16, 4, 4) and (value >= 0).all()  # fused ReLU output


@pytest.mark.parametrize(
    "selector, count",
    [("op(Conv)", 2), ("/*/Gemm", 2), ("layers[1:3]", 2), ("layers[-1]", 1), ("*", 7)],
)
def test_selectors(digits_model, selector, count) -> None:
    g = axc.load(digits_model)
    (entry,) = axc.check(g, f"cut {selector}\n")
    assert len(entry.targets) == count


def test_selector_matching_nothing_lists_nearest_names(digits_model) -> None:
    g = axc.load(digits_model)
    with pytest.raises(DirectiveError) as info:
        axc.check(g, 'cut "/3/Conw"\n')
    assert "no layer named '/3/Conw'; nearest names: /3/Conv" in str(info.value)
    with pytest.raises(DirectiveError, match="has no LRN layer; its ops are Conv, Gemm"):
        axc.check(g, "cut op(LRN)\n")


@dataclass(frozen=True)
class _NoParams:
    pass


class _Vandal(Pass):
    """A deliberately broken pass: it records a wrong shape."""

    name = "test_vandal"
    Params = _NoParams

    def run(self, graph: Graph, targets: list[str], params: _NoParams, ctx: PassContext) -> bool:
        node = graph.nodes[targets[0]]
        graph.tensors[node.outputs[0]].shape = (1, 2, 3)
        return True


def test_verify_after_every_pass_catches_a_broken_pass(digits_model) -> None:
    if get_pass("test_vandal") is None:
        register_pass(_Vandal)
    program = bind(parse_text("target hls\ntest_vandal layers[0]\n", "v.ax"))
    g = axc.load(digits_model)
    with pytest.raises(VerificationError, match=r"after pass 'test_vandal' \(v.ax:2:1\)"):
        PassManager().run(g, program)  # AXC_VERIFY=1 is set for the suite
    g = axc.load(digits_model)
    PassManager(verify=False).run(g, program)  # without verification it goes unnoticed


def test_dump_ir_after(digits_model) -> None:
    dumps: list[str] = []
    g = axc.load(digits_model)
    axc.apply(
        g,
        "target hls\ncut layers[0:2]\n",
        dump_ir_after=["cut"],
        dump=lambda title, graph: dumps.append(title + "\n" + axc.to_text(graph)),
    )
    assert len(dumps) == 1 and dumps[0].startswith("IR after cut (<directives>:2:1)")
    assert "MaxPool" in dumps[0] and "Gemm" not in dumps[0]
    with pytest.raises(UserError, match="unknown pass 'cutt'; did you mean 'cut'"):
        axc.apply(g, "target hls\n", dump_ir_after=["cutt"])


def test_api_flow_matches_notebook_usage(digits_model, digits_data) -> None:
    g = axc.load(digits_model)
    axc.apply(g, "target systolic rows=4 cols=4\n")
    logits = axc.simulate(g, digits_data[0])["logits"]
    assert np.mean(logits.argmax(1) == digits_data[1]) >= 0.95
