"""Plots for what people would rather look at than read. matplotlib is optional
(``pip install axc[plot]``); a missing one is a clear user error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from axc.errors import ToolError

__all__ = [
    "plot_bit_vulnerability",
    "plot_layer_vulnerability",
    "plot_multiplier_error",
    "plot_pe_spread",
    "plot_pe_vulnerability",
]


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ToolError("plots need matplotlib: pip install 'axc[plot]'") from None
    return plt


def plot_multiplier_error(multiplier: Any, path: str | Path) -> Path:
    """A heat map of approximate - exact over the operand grid, and the
    distribution of the error, in one figure."""
    from axc.arith.metrics import error_metrics, natural_domain

    plt = _pyplot()
    a, b, table = natural_domain(multiplier)
    error = table - a * b
    metrics = error_metrics(multiplier)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    bound = max(1, int(np.abs(error).max()))
    image = left.imshow(
        error,
        origin="lower",
        cmap="RdBu_r",
        vmin=-bound,
        vmax=bound,
        extent=(int(b.min()), int(b.max()), int(a.min()), int(a.max())),
        aspect="auto",
    )
    left.set_xlabel("b")
    left.set_ylabel("a")
    label = multiplier.name + (f"{tuple(multiplier.params)}" if multiplier.params else "")
    left.set_title(f"{label.replace(',)', ')')}: error m(a, b) - a*b")
    fig.colorbar(image, ax=left)
    right.hist(error.ravel(), bins=101, color="tab:blue")
    right.set_yscale("log")
    right.set_xlabel("error")
    right.set_ylabel("operand pairs")
    right.set_title(
        f"MAE {metrics['mae']:.1f}  WCE {metrics['wce']:.0f}  "
        f"MRE {metrics['mre_percent']:.2f}%  EP {metrics['ep_percent']:.1f}%"
    )
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _save(fig: Any, path: Path) -> list[Path]:
    """``path`` as PNG and SVG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix in (".png", ".svg"):
        target = path.with_suffix(suffix)
        fig.savefig(target, dpi=130)
        written.append(target)
    return written


def plot_layer_vulnerability(report: dict[str, Any], path: str | Path) -> list[Path]:
    """SDC-1 per layer as bars with their confidence intervals as whiskers."""
    plt = _pyplot()
    layers = list(report["per_layer"])
    rates = np.array([report["per_layer"][k]["sdc1"]["rate"] for k in layers]) * 100
    ci = np.array([report["per_layer"][k]["sdc1"]["ci"] for k in layers]).reshape(-1, 2) * 100
    fig, ax = plt.subplots(figsize=(max(5.0, 0.7 * len(layers) + 2), 4))
    x = np.arange(len(layers))
    ax.bar(x, rates, color="#4c72b0")
    ax.errorbar(
        x, rates, yerr=[rates - ci[:, 0], ci[:, 1] - rates], fmt="none", ecolor="black", capsize=4
    )
    ax.set_xticks(x, layers, rotation=30, ha="right")
    ax.set_ylabel("SDC-1 (%)")
    conf = round(report.get("confidence", 0.95) * 100)
    ax.set_title(
        f"SDC-1 per layer ({conf}% Wilson intervals, {report['total']['inferences']:,} "
        "faulty inferences)"
    )
    fig.tight_layout()
    written = _save(fig, Path(path))
    plt.close(fig)
    return written


def plot_bit_vulnerability(report: dict[str, Any], path: str | Path) -> list[Path]:
    """SDC-1 per layer and bit position as a heat map."""
    plt = _pyplot()
    table = report["per_layer_bit_sdc1"]
    layers = list(table)
    bits = sorted({int(b) for row in table.values() for b in row})
    grid = np.full((len(layers), len(bits)), np.nan)
    for i, name in enumerate(layers):
        for j, b in enumerate(bits):
            value = table[name].get(b, table[name].get(str(b)))
            if value is not None:
                grid[i, j] = 100 * value
    fig, ax = plt.subplots(
        figsize=(max(5.0, 0.35 * len(bits) + 3), max(3.0, 0.45 * len(layers) + 1.5))
    )
    image = ax.imshow(grid, aspect="auto", cmap="magma_r")
    ax.set_xticks(range(len(bits)), [str(b) for b in bits])
    ax.set_yticks(range(len(layers)), layers)
    ax.set_xlabel("bit position (lowest bit hit)")
    ax.set_title("SDC-1 (%) per layer and bit position")
    fig.colorbar(image, ax=ax, label="SDC-1 (%)")
    fig.tight_layout()
    written = _save(fig, Path(path))
    plt.close(fig)
    return written


def plot_pe_vulnerability(report: dict[str, Any], path: str | Path) -> list[Path]:
    """SDC-1 per processing element of the array, as an R x C heat map."""
    plt = _pyplot()
    rows, cols = int(report["array"]["rows"]), int(report["array"]["cols"])
    grid = np.full((rows, cols), np.nan)
    for key, rates in report["per_pe"].items():
        r, c = (int(v) for v in key.split(","))
        grid[r, c] = 100 * rates["sdc1"]["rate"]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.5 * cols + 2.5), max(3.0, 0.45 * rows + 1.5)))
    image = ax.imshow(grid, cmap="magma_r")
    ax.set_xticks(range(cols))
    ax.set_yticks(range(rows))
    ax.set_xlabel("PE column")
    ax.set_ylabel("PE row")
    flow = report["array"]["dataflow"].upper()
    ax.set_title(f"SDC-1 (%) per PE, {rows}x{cols} {flow} array")
    fig.colorbar(image, ax=ax, label="SDC-1 (%)")
    fig.tight_layout()
    written = _save(fig, Path(path))
    plt.close(fig)
    return written


def plot_pe_spread(
    graph: Any, report: dict[str, Any], x: np.ndarray, sites: Any, path: str | Path
) -> list[Path]:
    """Which outputs of a layer one stuck-at fault corrupts, under WS and under
    OS: the campaign's most critical PE, its register's top bit stuck at 1, on
    the first input (output channels down, output pixels across)."""
    from axc.faults import pe
    from axc.hw.systolic import ArrayShape
    from axc.sim import Executor
    from axc.sim.int_kernels import accumulate

    site = next(s for s in sites if s.kind.startswith("pe_"))
    node = graph.nodes[site.layer]
    worst = max(report["per_pe"], key=lambda k: report["per_pe"][k]["sdc1"]["rate"])
    row, col = (int(v) for v in worst.split(","))
    values: dict[str, np.ndarray] = {}
    executor = Executor(graph)
    executor.run({graph.inputs[0]: x}, observe=values.__setitem__)
    step = executor.order.index(node)
    args = [values[node.inputs[0]]] + [
        graph.constants.get(t) if t else None for t in node.inputs[1:]
    ]
    acc = accumulate(executor.plan(step), node.op, args, int(node.attrs["acc_bits"]))
    shape = pe.array_of(graph)
    bit = 1 << (site.width - 1)
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, flow in zip(axes, ("ws", "os"), strict=True):
        array = ArrayShape(shape.rows, shape.cols, flow)
        bad = pe.layer_accumulators(
            graph, node, values[node.inputs[0]], acc, array, site.kind[3:], row, col,
            (-1, bit, 0), -1,
        )  # fmt: skip
        hit = (bad != acc).reshape(acc.shape[0], acc.shape[1], -1)[0]
        ax.imshow(hit, aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"{flow.upper()}: {int(hit.sum())} of {hit.size} outputs")
        ax.set_xlabel("output pixel")
        ax.set_ylabel("output channel")
    fig.suptitle(
        f"{site.kind[3:]} register of PE ({row}, {col}) stuck at 1 (bit {site.width - 1}), "
        f"layer {site.layer}"[:110]
    )
    fig.tight_layout()
    written = _save(fig, Path(path))
    plt.close(fig)
    return written
