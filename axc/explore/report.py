"""What an exploration writes: the front (CSV, JSON), every evaluation (CSV),
one ``.ax`` file per front point, plots of the front (PNG and SVG) and a
self-contained HTML report."""

from __future__ import annotations

import base64
import csv
import html
import itertools
import json
from pathlib import Path
from typing import Any

from axc.errors import UserError
from axc.explore.engine import Evaluation

__all__ = ["UNITS", "plot_front", "relocate", "write_html", "write_tables"]

UNITS = {
    "accuracy": "accuracy loss (pp)",
    "vulnerability": "SDC-1 (%)",
    "luts": "LUTs",
    "area": "LUTs without DSPs",
    "latency": "latency (µs)",
}


def _row(e: Evaluation, objectives: tuple[str, ...]) -> dict[str, Any]:
    hw = e.metrics.get("hardware") or {}
    row: dict[str, Any] = {"id": e.id, "generation": e.generation}
    row.update(e.values)
    for o in objectives:
        row[o] = "" if e.objectives is None else round(e.objectives[o], 6)
    row["top1"] = ";".join(f"{t:.6f}" for t in e.metrics.get("top1", []))
    for key in ("array", "multiplier", "luts", "ff", "dsp", "carry", "area"):
        row[f"hw_{key}"] = hw.get(key, "")
    row["latency_us"] = ";".join(f"{v:.3f}" for v in hw.get("latency_us", []))
    row["feasible"] = e.feasible
    row["reason"] = e.reason or ""
    return row


def write_tables(
    folder: Path, rows: list[Evaluation], front: list[Evaluation], objectives: tuple[str, ...]
) -> list[Path]:
    written = []
    for name, chosen in (("evaluations.csv", rows), ("front.csv", front)):
        path = folder / name
        table = [_row(e, objectives) for e in chosen]
        with path.open("w", newline="", encoding="utf-8") as f:
            if table:
                writer = csv.DictWriter(f, fieldnames=list(table[0]))
                writer.writeheader()
                writer.writerows(table)
        written.append(path)
    return written


def _sdc_interval(e: Evaluation) -> tuple[float, float] | None:
    """The point's SDC-1 interval over faults, in percent, when it has one
    model (an average of several models' rates has no such interval)."""
    ci = e.metrics.get("sdc1_ci") or []
    if len(ci) != 1 or len(ci[0]) != 2:
        return None
    return 100.0 * float(ci[0][0]), 100.0 * float(ci[0][1])


def _sdc_whiskers(ax: Any, front: list[Evaluation], a: str, b: str) -> None:
    """95% intervals (faults as the draws) on the front's SDC-1 axis."""
    if "vulnerability" not in (a, b):
        return
    for e in front:
        ci = _sdc_interval(e)
        if ci is None or e.objectives is None:
            continue
        x, y = e.objectives[a], e.objectives[b]
        if a == "vulnerability":
            ax.plot(ci, (y, y), color="#d62728", lw=0.8, alpha=0.6, zorder=2)
        if b == "vulnerability":
            ax.plot((x, x), ci, color="#d62728", lw=0.8, alpha=0.6, zorder=2)


def plot_front(
    rows: list[Evaluation], front: list[Evaluation], objectives: tuple[str, ...], stem: Path
) -> list[Path]:
    """Every pair of objectives: all feasible points in grey, the front on top,
    with its SDC-1 intervals where there is one model."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("plots need matplotlib: pip install matplotlib") from None
    pairs = list(itertools.combinations(objectives, 2)) or [(objectives[0], objectives[0])]
    cols = min(3, len(pairs))
    lines = -(-len(pairs) // cols)
    fig, axes = plt.subplots(lines, cols, figsize=(4.6 * cols, 4.0 * lines), squeeze=False)
    for ax in axes.flat[len(pairs) :]:
        ax.set_visible(False)
    feasible = [e for e in rows if e.feasible]
    on = {e.id for e in front}
    for ax, (a, b) in zip(axes.flat, pairs, strict=False):
        rest = [e for e in feasible if e.id not in on]
        ax.scatter(
            [e.objectives[a] for e in rest],  # type: ignore[index]
            [e.objectives[b] for e in rest],  # type: ignore[index]
            s=12, c="#bbbbbb", label="evaluated",
        )  # fmt: skip
        ax.scatter(
            [e.objectives[a] for e in front],  # type: ignore[index]
            [e.objectives[b] for e in front],  # type: ignore[index]
            s=28, c="#d62728", label="Pareto front", zorder=3,
        )  # fmt: skip
        _sdc_whiskers(ax, front, a, b)
        for e in front if len(front) <= 15 else []:  # labels only where they stay legible
            ax.annotate(str(e.id), (e.objectives[a], e.objectives[b]), fontsize=7,  # type: ignore[index]
                        xytext=(3, 3), textcoords="offset points")  # fmt: skip
        ax.set_xlabel(UNITS[a])
        ax.set_ylabel(UNITS[b])
        if a in ("luts", "area", "latency"):
            ax.set_xscale("log")
        if b in ("luts", "area", "latency"):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{len(front)} non-dominated of {len(feasible)} feasible designs")
    fig.tight_layout()
    out = []
    for ext in ("png", "svg"):
        path = stem.with_suffix(f".{ext}")
        fig.savefig(path, dpi=120)
        out.append(path)
    plt.close(fig)
    return out


def write_html(path: Path, summary: dict[str, Any], plot: Path | None) -> Path:
    """One file, the plot embedded: settings, the front as a table, the run."""
    objectives = summary["objectives"]
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>axc explore: {e(', '.join(summary['models']))}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:80em}"
        "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;"
        "padding:3px 7px;text-align:right}th{background:#f3f3f3}td.l{text-align:left}"
        "code{background:#f6f6f6}</style></head><body>",
        f"<h1>Exploration of {e(', '.join(summary['models']))}</h1>",
        "<p>",
        f"Directives <code>{e(', '.join(summary['directives']))}</code>; "
        f"objectives {e(', '.join(objectives))} (all minimized); "
        f"algorithm {e(summary['algorithm'])}, seed {summary['seed']}; "
        f"device budget {e(str(summary['device']))}.<br>",
        f"{summary['evaluations']} points evaluated ({summary['feasible']} feasible, "
        f"{summary['cache_hits']} from the cache) of a space of {summary['space_size']} "
        f"in {summary['seconds']:.1f} s; {len(summary['front'])} on the Pareto front.",
        "</p>",
    ]
    if plot is not None and plot.exists():
        data = base64.b64encode(plot.read_bytes()).decode()
        parts.append(f"<img alt='Pareto front' src='data:image/png;base64,{data}'>")
    parts.append("<h2>Pareto front</h2><table><tr><th>id</th>")
    names = list(summary["variables"])
    parts += [f"<th>{e(n)}</th>" for n in names]
    parts += [f"<th>{e(UNITS[o])}</th>" for o in objectives]
    parts.append("<th>array</th><th>LUT</th><th>DSP</th><th>directives</th></tr>")
    for p in summary["front"]:
        hw = p["metrics"].get("hardware") or {}
        parts.append(f"<tr><td>{p['id']}</td>")
        parts += [f"<td class='l'>{e(p['values'][n])}</td>" for n in names]
        parts += [f"<td>{p['objectives'][o]:.4g}</td>" for o in objectives]
        parts.append(
            f"<td class='l'>{e(str(hw.get('array', '')))}</td><td>{hw.get('luts', '')}</td>"
            f"<td>{hw.get('dsp', '')}</td>"
            f"<td class='l'>{' '.join(f'<code>{e(f)}</code>' for f in p['files'])}</td></tr>"
        )
    parts.append("</table>")
    parts.append("<h2>Decision variables</h2><table><tr><th>variable</th><th>values</th></tr>")
    for name, info in summary["variables"].items():
        parts.append(
            f"<tr><td class='l'>{e(name)}</td>"
            f"<td class='l'>{e(', '.join(info['values']))}</td></tr>"
        )
    parts.append("</table>")
    parts.append(
        "<h2>Reproduce a point</h2><p><code>axc compile MODEL -d points/point-N.ax -o build/"
        "</code>, then <code>axc simulate MODEL -d points/point-N.ax --data DATA</code> "
        "reports the same accuracy.</p>"
    )
    parts.append(f"<h2>Run</h2><pre>{e(json.dumps(summary['run'], indent=1))}</pre>")
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def relocate(folder: Path, root: Path) -> list[Path]:
    """Make the paths under ``root`` in an exploration's text outputs (JSON,
    HTML, CSV, Markdown, directives) relative to it, so that results
    published from ``folder`` name no particular machine. Returns the files
    rewritten."""
    prefix = str(Path(root).resolve()) + "/"
    changed = []
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and path.suffix in (".json", ".html", ".csv", ".ax", ".md"):
            text = path.read_text(encoding="utf-8")
            if prefix in text:
                path.write_text(text.replace(prefix, ""), encoding="utf-8")
                changed.append(path)
    return changed
