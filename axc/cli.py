"""The ``axc`` command. Thin: it parses arguments and calls :mod:`axc.api`.

Exit status: 0 on success, 1 for a user error (one message, no traceback),
2 for an internal error (a bug: the traceback is printed for the report).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from axc import api
from axc.errors import UserError
from axc.ir import Graph, to_dot, to_text
from axc.ir.stats import summary as graph_summary

__all__ = ["main"]

EPILOGS = {
    "compile": """examples:
  axc compile model.onnx --directives d.ax -o build/
  axc compile model.onnx --directives d.ax -o build/ --dump-ir-after cut --json
""",
    "explore": """examples:
  axc explore examples/digits/digits_cnn.onnx -d examples/digits/explore.ax -o dse/
  axc explore a.onnx b.onnx -d a.ax -d b.ax -o dse/      # one array for both models
  axc explore model.onnx -d explore.ax -o dse/ --workers 4 --json
  axc explore model.onnx -d explore.ax -o dse/ --scheduler tcp://10.0.0.5:8786
""",
    "check": """examples:
  axc check model.onnx --directives d.ax
  axc check model.onnx --directives d.ax --json
""",
    "show": """examples:
  axc show model.onnx
  axc show model.onnx --dot model.dot      # then: dot -Tsvg model.dot -o model.svg
  axc show model.onnx --json
""",
    "simulate": """examples:
  axc simulate model.onnx --data test.npz
  axc simulate model.onnx --directives q.ax --data test.npz --json
  axc simulate model.onnx --directives q.ax --data test.npz --save-outputs out.npz
""",
    "inject": """examples:
  axc inject model.onnx --directives d.ax --data test.npz
  axc inject model.onnx -d d.ax --data test.npz --out campaign/ --seed 7
  axc inject model.onnx -d d.ax --data test.npz --out campaign/ --resume
  axc inject model.onnx -d d.ax --data test.npz --scheduler tcp://10.0.0.5:8786 --json
  axc inject model.onnx -d q.ax --data test.npz --faults campaign/faults.csv   # replay

d.ax declares the fault groups, e.g.
  quantize *
  inject *  site=activations model=bitflip count=auto(confidence=0.95, margin=0.01)
""",
    "ops": """examples:
  axc ops
  axc ops --json
""",
    "synth": """examples:
  axc synth model.onnx -d d.ax --option rows=8 --option cols=8    # the model's array
  axc synth --arrays 4x4,8x8,16x16 --multipliers "exact;drum(4)" --markdown
""",
    "verify": """examples:
  axc verify model.onnx -d q.ax --data test.npz               # HLS csim against the simulator
  axc verify model.onnx -d q.ax --data test.npz --keep prj/   # and keep the project
  axc verify model.onnx -d q.ax --data test.npz --backend systolic --option dataflow=os
                                         # every conv/GEMM layer through RTL simulation

Exit status 3 when the design's outputs differ from the simulator's.
""",
    "multipliers": """examples:
  axc multipliers list
  axc multipliers list --cost --json       # with LUT counts from yosys
  axc multipliers show "trunc(4)"
  axc multipliers show mul8u_xxx.c --plot error.png
  axc multipliers show drum --bits 6 --json
  axc multipliers show "bam(1, 6)" --emit build/mul    # its C++ and Verilog views
""",
}


class _Parser(argparse.ArgumentParser):
    """argparse exits with 2 on a usage error; for axc that is a user error (1)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1, f"axc: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    from axc import __version__

    parser = _Parser(
        prog="axc",
        description="A compiler for cheap and dependable DNN "
        "accelerators: quantization, approximate multipliers, fault protection, "
        "HLS and systolic-array backends.",
    )
    parser.add_argument("--version", action="version", version=f"axc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=EPILOGS.get(name),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    p = command("compile", "apply a directive file to a model and write the result")
    p.add_argument("model", help="ONNX model")
    p.add_argument("--directives", "-d", required=True, metavar="FILE", help="directive file (.ax)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    p.add_argument(
        "--force",
        action="store_true",
        help="write into a directory that holds other files (they are left alone)",
    )
    p.add_argument(
        "--dump-ir-after",
        action="append",
        default=[],
        metavar="PASS",
        help="print the IR after every run of PASS (repeatable)",
    )
    p.add_argument(
        "--backend", metavar="NAME", help="also lower with this backend (see `axc backends`)"
    )
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the backend (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing on success")

    p = command("check", "validate a directive file against a model; show what each selects")
    p.add_argument("model", help="ONNX model")
    p.add_argument("--directives", "-d", required=True, metavar="FILE", help="directive file (.ax)")
    p.add_argument("--json", action="store_true", help="print the selections as JSON")

    p = command("show", "print a model's IR after import")
    p.add_argument("model", help="ONNX model, or an axc IR file (.axc.json)")
    p.add_argument("--dot", metavar="FILE", help="write Graphviz dot to FILE ('-' for stdout)")
    p.add_argument("--json", action="store_true", help="print the IR as JSON")

    p = command("simulate", "run a model (after its directives) over a data set; report accuracy")
    p.add_argument("model", help="ONNX model")
    p.add_argument("--directives", "-d", metavar="FILE", help="directive file (.ax) to apply first")
    p.add_argument(
        "--data",
        required=True,
        metavar="NPZ",
        help="data set: x (inputs, batch first) and optionally y (labels)",
    )
    p.add_argument(
        "--save-outputs",
        metavar="NPZ",
        help="save every output for every input (quantized outputs also as NAME.q)",
    )
    p.add_argument("--json", action="store_true", help="print the figures as JSON")

    p = command("inject", "run a fault-injection campaign; report SDC rates with intervals")
    p.add_argument("model", help="ONNX model")
    p.add_argument(
        "--directives", "-d", metavar="FILE", help="directive file (.ax) with `inject` groups"
    )
    p.add_argument("--data", required=True, metavar="NPZ", help="images x (and labels y)")
    p.add_argument("--images", type=int, metavar="N", help="use the first N images only")
    p.add_argument("--seed", type=int, default=0, help="seed of the fault sample (default 0)")
    p.add_argument("--out", "-o", metavar="DIR", help="write results, fault list and plots here")
    p.add_argument("--resume", action="store_true", help="continue the campaign in --out")
    p.add_argument("--force", action="store_true", help="replace the results in --out")
    p.add_argument("--faults", metavar="CSV", help="replay this fault list instead of sampling")
    p.add_argument("--save-faults", metavar="CSV", help="also write the fault list here")
    p.add_argument(
        "--scheduler", metavar="ADDRESS", help="Dask scheduler (tcp://host:port); default: local"
    )
    p.add_argument("--threads", type=int, metavar="N", help="local threads (default: all cores)")
    p.add_argument(
        "--memory", type=float, default=2.0, metavar="GIB", help="memory bound (default 2 GiB)"
    )
    p.add_argument(
        "--confidence", type=float, default=0.95, help="of the reported intervals (default 0.95)"
    )
    p.add_argument(
        "--compare-protection",
        action="store_true",
        help="run the same faults with and without the `protect` directives; report the "
        "SDC-1 reduction",
    )
    p.add_argument("--no-plots", action="store_true", help="write no plots to --out")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar, no table")

    p = command("verify", "lower with a backend, run the design, compare with the simulator")
    p.add_argument("model", help="ONNX model")
    p.add_argument("--directives", "-d", required=True, metavar="FILE", help="directive file (.ax)")
    p.add_argument("--data", required=True, metavar="NPZ", help="the inputs to compare on")
    p.add_argument("--backend", default="hls", metavar="NAME", help="backend (default hls)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--images", type=int, metavar="N", help="the first N inputs only")
    p.add_argument("--keep", metavar="DIR", help="leave the generated project in DIR")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    p = command("synth", "synthesize systolic arrays with yosys: LUT, FF, DSP and CARRY counts")
    p.add_argument("model", nargs="?", help="ONNX model (its array); omit to give --arrays")
    p.add_argument("--directives", "-d", metavar="FILE", help="directive file (.ax)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--arrays", metavar="RxC,...", help="arrays without a model, e.g. 4x4,8x8")
    p.add_argument(
        "--multipliers", default="exact", metavar="SPEC;...",
        help="multipliers of those arrays, separated by ';' (default exact)",
    )  # fmt: skip
    p.add_argument("--dataflow", default="ws", choices=("ws", "os"))
    p.add_argument("--bits", type=int, default=8, help="operand width without a model")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument("--device", metavar="PART", help="also the share of an FPGA part, e.g. xc7z020")
    p.add_argument(
        "--predict", action="store_true",
        help="also price each array with the calibrated resource model (docs/hardware.md)",
    )  # fmt: skip
    p.add_argument("--no-cache", action="store_true", help="synthesize again")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    p = command("explore", "search the explore block's space for Pareto-optimal designs")
    p.add_argument(
        "models", nargs="+", metavar="MODEL", help="ONNX model(s); several share one array"
    )
    p.add_argument(
        "--directives", "-d", action="append", required=True, metavar="FILE",
        help="directive file with the explore block (one, or one per model)",
    )  # fmt: skip
    p.add_argument("-o", "--output", metavar="DIR", help="write the front, plots and report here")
    p.add_argument("--data", action="append", metavar="NPZ", help="test set (default test.npz)")
    p.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="evaluate on this Dask scheduler")
    p.add_argument("--population", type=int, help="override the block's population")
    p.add_argument("--generations", type=int, help="override the block's generations")
    p.add_argument("--seed", type=int, help="override the block's seed")
    p.add_argument("--no-cache", action="store_true", help="evaluate every point again")
    p.add_argument("--no-plots", action="store_true", help="write no plots")
    p.add_argument("--force", action="store_true", help="write into a non-empty directory")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar, no table")

    p = command("backends", "list the installed backends and their options")
    p.add_argument("--json", action="store_true", help="print the list as JSON")

    p = command("ops", "list the ONNX ops axc imports")
    p.add_argument("--json", action="store_true", help="print the list as JSON")

    p = command(
        "multipliers", "list the multiplier library, or show one multiplier's error and cost"
    )
    msub = p.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser, required=True)
    q = msub.add_parser("list", help="the built-in families with their error metrics")
    q.add_argument("--bits", type=int, default=8, help="operand width, 2..8 (default 8)")
    q.add_argument("--cost", action="store_true", help="synthesize each with yosys for LUT counts")
    q.add_argument("--json", action="store_true", help="print the list as JSON")
    q.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    q = msub.add_parser("show", help="one multiplier: built-in (trunc(4)) or a .c, .v or .npy file")
    q.add_argument(
        "multiplier", help='e.g. exact, "trunc(4)", "bam(1, 6)", mul8u_xxx.c, m.v, t.npy'
    )
    q.add_argument("--bits", type=int, default=8, help="operand width of a built-in, 2..8")
    q.add_argument("--cost", action="store_true", help="synthesize with yosys for its LUT count")
    q.add_argument("--plot", metavar="PNG", help="write a plot of its error to PNG")
    q.add_argument("--emit", metavar="DIR", help="write its C++ (.h) and Verilog (.v) views to DIR")
    q.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def _load_any(path: str) -> Graph:
    if path.endswith(".axc.json"):
        from axc.ir import read_ir

        try:
            return read_ir(path)
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"{path}: cannot read axc IR: {exc}") from None
    return api.load(path)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=1))


def _cmd_compile(args: argparse.Namespace) -> int:
    def dump(title: str, graph: Graph) -> None:
        print(f"// ---- {title}", file=sys.stderr)
        print(to_text(graph), file=sys.stderr, end="")

    result = api.compile(
        args.model,
        args.directives,
        args.output,
        force=args.force,
        dump_ir_after=args.dump_ir_after,
        dump=dump,
        backend=args.backend,
        options=args.option,
    )
    if args.json:
        _print_json({**result.summary, "files": [str(f) for f in result.files]})
    elif not args.quiet:
        print(api.format_summary(result.summary), end="")
        print(f"wrote       {', '.join(f.name for f in result.files)} to {result.outdir}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    graph = api.load(args.model)
    entries = api.check(graph, args.directives)
    if args.json:
        _print_json(
            [
                {
                    "location": e.location,
                    "directive": e.directive,
                    "pass": e.pass_name,
                    "targets": list(e.targets),
                }
                for e in entries
            ]
        )
        return 0
    for e in entries:
        picked = f"{len(e.targets)} layer(s): {', '.join(e.targets)}" if e.targets else "graph"
        print(f"{e.location}: {e.directive}\n    {e.pass_name} -> {picked}")
    print(f"{len(entries)} statement(s) OK against {args.model} ({len(graph.nodes)} layers)")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    graph = _load_any(args.model)
    if args.dot:
        text = to_dot(graph)
        if args.dot == "-":
            print(text, end="")
            return 0
        try:
            with open(args.dot, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as exc:
            raise UserError(f"cannot write {args.dot}: {exc}") from None
    if args.json:
        from axc.ir.serialize import graph_to_dict

        data = graph_to_dict(graph)
        data["summary"] = graph_summary(graph)
        _print_json(data)
    else:
        print(to_text(graph), end="")
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    import numpy as np

    graph = api.load(args.model)
    reference = None
    if args.directives:
        reference = graph.copy()
        api.apply(graph, args.directives, model_path=args.model)
    result = api.evaluate(
        graph, args.data, reference=reference, keep_outputs=bool(args.save_outputs)
    )
    outputs = result.pop("outputs", None)
    if outputs is not None:
        try:
            np.savez_compressed(args.save_outputs, **outputs)
        except OSError as exc:
            raise UserError(f"cannot write {args.save_outputs}: {exc}") from None
        result["saved"] = {"path": args.save_outputs, "arrays": sorted(outputs)}
    if args.json:
        _print_json(result)
        return 0
    print(f"{args.model}: {result['images']} inputs from {args.data}")
    labels = {
        "top1": "top-1 accuracy",
        "top5": "top-5 accuracy",
        "reference_top1": "float top-1",
        "agreement_top1": "top-1 agreement with float",
        "max_abs_diff": "max |output - float|",
    }
    for key, label in labels.items():
        if key in result:
            print(f"  {label:28} {result[key]:.4f}")
    if "saved" in result:
        print(f"  saved {', '.join(result['saved']['arrays'])} to {args.save_outputs}")
    return 0


def _rate(entry: dict[str, Any]) -> str:
    lo, hi = entry["ci"]
    return f"{100 * entry['rate']:7.3f}% [{100 * lo:6.3f}, {100 * hi:6.3f}]"


def _cmd_inject(args: argparse.Namespace) -> int:
    if args.resume and not args.out:
        raise UserError("--resume needs --out DIR, the folder of the campaign to continue")
    if args.directives is None and args.faults is None:
        raise UserError("give --directives with `inject` groups, or --faults to replay a list")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be at least 1, got {args.threads}")
    report = api.inject(
        args.model,
        args.directives,
        args.data,
        out=args.out,
        seed=args.seed,
        images=args.images,
        faults=args.faults,
        save_faults=args.save_faults,
        resume=args.resume,
        force=args.force,
        scheduler=args.scheduler,
        threads=args.threads,
        memory_gib=args.memory,
        confidence=args.confidence,
        plots=not args.no_plots,
        progress=not (args.quiet or args.json),
        compare_protection=args.compare_protection,
    )
    if args.json:
        _print_json(report)
        return 0
    if args.quiet:
        return 0
    if args.compare_protection:
        _print_comparison(args, report)
        return 0
    total = report["total"]
    conf = round(100 * report["confidence"])
    print(
        f"{args.model}: {report['faults']} faults x {report['images']} images = "
        f"{total['inferences']:,} faulty inferences (seed {report['seed']})"
    )
    if "top1" in report["clean"]:
        print(f"  clean top-1 accuracy {100 * report['clean']['top1']:.2f}%")
    header = f"  {'':24} {'faults':>7}  {'SDC-1 (' + str(conf) + '% CI)':>27}  {'SDC-5':>27}"
    print(header)

    def line(label: str, entry: dict[str, Any]) -> None:
        print(
            f"  {label[:24]:24} {entry['faults']:7d}  {_rate(entry['sdc1'])}  "
            f"{_rate(entry['sdc5'])}"
        )

    line("total", total)
    for name, entry in report["per_layer"].items():
        line(name, entry)
    if len(report["per_model"]) > 1:
        for name, entry in report["per_model"].items():
            line(name, entry)
    extra = [f"masked {_rate(total['masked']).strip()}"]
    if total["due"]["count"]:
        extra.append(f"detected (DUE) {_rate(total['due']).strip()}")
    if "accuracy" in total:
        extra.append(f"accuracy under fault {_rate(total['accuracy']).strip()}")
    print("  " + "; ".join(extra))
    lo, hi = total["sdc1"]["ci_faults"]
    print(
        f"  total SDC-1 with the faults as the independent draws: "
        f"[{100 * lo:.3f}, {100 * hi:.3f}]% ({conf}% CI, docs/faults.md)"
    )
    for entry in report.get("plan", []):
        if entry.get("population"):
            print(
                f"  sample: {entry['faults']} of {entry['population']:,} possible faults "
                f"({entry['stratum']})"
            )
    if "files" in report:
        print(f"  wrote {', '.join(Path(f).name for f in report['files'])} to {args.out}")
    return 0


def _factor(r: dict[str, Any]) -> str:
    def num(v: float) -> str:
        return "inf" if v == float("inf") else f"{v:.2f}"

    return f"{num(r['factor']):>6}x [{num(r['ci'][0])}, {num(r['ci'][1])}]"


def _print_comparison(args: argparse.Namespace, report: dict[str, Any]) -> None:
    conf = round(100 * report["confidence"])
    clean = report["clean"]
    print(
        f"{args.model}: the same {report['faults']} faults x {report['images']} images, "
        f"without and with protection (seed {report['seed']})"
    )
    if "top1" in clean["unprotected"]:
        print(
            f"  clean top-1 accuracy {100 * clean['unprotected']['top1']:.2f}% unprotected, "
            f"{100 * clean['protected']['top1']:.2f}% protected"
        )
    print(
        f"  {'':20} {'faults':>6}  {'SDC-1 before':>27}  {'SDC-1 after':>27}  "
        f"{'DUE after':>9}  reduction ({conf}% CI)"
    )

    def line(label: str, e: dict[str, Any]) -> None:
        print(
            f"  {label[:20]:20} {e['faults']:6d}  {_rate(e['sdc1_before'])}  "
            f"{_rate(e['sdc1_after'])}  {100 * e['due_after']['rate']:8.3f}%  "
            f"{_factor(e['reduction'])}"
        )

    line("total", report["total"])
    for name, entry in report["per_layer"].items():
        line(name, entry)
    spans = [
        "[{:.3f}, {:.3f}]%".format(*(100 * v for v in report["total"][key]["ci_faults"]))
        for key in ("sdc1_before", "sdc1_after")
    ]
    print(
        f"  total SDC-1 with the faults as the independent draws: {spans[0]} before, "
        f"{spans[1]} after ({conf}% CI, docs/faults.md)"
    )
    cap = report.get("ceiling", {})
    if cap.get("layers"):
        print(
            f"  unchanged by protection: {', '.join(cap['layers'])}, "
            f"{100 * cap['share_before']:.0f}% of the SDC-1 events before; with every other "
            f"layer's removed, the total would fall by at most {cap['factor']:.2f}x"
        )
    extra = {"compares": 0, "macs": 0, "storage_bits": 0}
    for row in report["cost"]:
        for key in extra:
            extra[key] += row[key]
    print(
        f"  protection cost: {len(report['cost'])} node(s), {extra['compares']:,} comparisons "
        f"and {extra['macs']:,} extra MACs per image, {extra['storage_bits']:,} bits of storage"
    )


def _cmd_verify(args: argparse.Namespace) -> int:
    result = api.verify(
        args.model,
        args.directives,
        args.data,
        backend=args.backend,
        options=args.option,
        images=args.images,
        keep=args.keep,
    )
    if args.json:
        _print_json(result)
    elif "layers" in result:
        print(
            f"{args.backend} {result['array']} ({result['multiplier']}), {result['images']} inputs"
        )
        print(f"  {'layer':30} {'accumulators':>12} {'outputs':>8} {'cycles':>8}  model")
        for row in result["layers"]:
            print(
                f"  {row['layer'][:30]:30} "
                f"{'equal' if row['accumulators_equal'] else 'DIFFER':>12} "
                f"{'equal' if row['outputs_equal'] else 'DIFFER':>8} {row['cycles']:8d}  "
                f"{'equal' if row['cycles_match_model'] else 'DIFFERS'}"
            )
        ok = result["bit_exact"] and result["cycles_match_model"]
        ok = ok and result.get("traffic_matches_model", True)
        return 0 if ok else 3
    elif result["bit_exact"]:
        print(
            f"{args.backend}: {result['images']} inputs, outputs equal to the simulator's "
            "bit for bit"
        )
    else:
        print(
            f"{args.backend}: {result['mismatched_images']} of {result['images']} inputs differ "
            f"from the simulator ({result['mismatched_values']} values, largest difference "
            f"{result['max_abs_diff']:g})"
        )
    return 0 if result["bit_exact"] and result.get("cycles_match_model", True) else 3


def _parse_arrays(text: str | None) -> list[tuple[int, int]]:
    arrays = []
    for item in (text or "").split(","):
        if not item.strip():
            continue
        match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", item)
        if not match or not (1 <= int(match[1]) <= 256 and 1 <= int(match[2]) <= 256):
            raise UserError(f"--arrays: {item.strip()!r} is not ROWSxCOLS with 1..256 each")
        arrays.append((int(match[1]), int(match[2])))
    return arrays


def _cmd_synth(args: argparse.Namespace) -> int:
    rows = api.synth(
        args.model,
        args.directives,
        options=args.option,
        arrays=_parse_arrays(args.arrays),
        multipliers=[m.strip() for m in args.multipliers.split(";") if m.strip()],
        dataflow=args.dataflow,
        bits=args.bits,
        progress=not (args.quiet or args.json),
        use_cache=not args.no_cache,
        predict=args.predict,
        device=args.device,
    )
    if args.json:
        _print_json(rows)
        return 0
    if args.markdown:
        print("| array | dataflow | multiplier | LUT | FF | DSP | CARRY4 |")
        print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
        for r in rows:
            cells = [str(r[k]) for k in ("luts", "ff", "dsp", "carry")]
            if "predicted" in r:  # synthesized (model, error)
                cells = [
                    f"{r[k]} ({r['predicted'][k]}, {r['error_percent'][k]:+.1f}%)"
                    for k in ("luts", "ff", "dsp", "carry")
                ]
            print(
                f"| {r['rows']}x{r['cols']} | {r['dataflow']} | `{r['multiplier']}` | "
                + " | ".join(cells)
                + " |"
            )
    else:
        print(
            f"{'array':8} {'flow':4} {'multiplier':28} {'LUT':>7} {'FF':>6} {'DSP':>5} "
            f"{'CARRY4':>7}"
        )
        for r in rows:
            print(
                f"{str(r['rows']) + 'x' + str(r['cols']):8} {r['dataflow']:4} {r['multiplier']:28} "
                f"{r['luts']:7d} {r['ff']:6d} {r['dsp']:5d} {r['carry']:7d}"
            )
            if "predicted" in r:
                p = r["predicted"]
                e = r["error_percent"]
                print(
                    f"{'':8} {'':4} {'  model (error %)':28} {p['luts']:7d} {p['ff']:6d} "
                    f"{p['dsp']:5d} {p['carry']:7d}   "
                    f"({e['luts']:+.1f} {e['ff']:+.1f} {e['dsp']:+.1f} {e['carry']:+.1f})"
                )
    for r in rows:
        if "utilization" in r:
            u = r["utilization"]
            share = ", ".join(f"{k} {v:.1f}%" for k, v in u["percent"].items() if k != "bram36")
            print(
                f"{r['rows']}x{r['cols']} {r['multiplier']} on {u['device']}: {share} "
                f"({'fits' if u['fits'] else 'does NOT fit'})"
            )
    if rows:
        print(f"(yosys {rows[0]['yosys']}: {rows[0]['script'].split(';')[0]})")
    return 0


def _cmd_explore(args: argparse.Namespace) -> int:
    from axc.explore import explore
    from axc.explore.report import UNITS

    overrides = {
        k: getattr(args, k)
        for k in ("population", "generations", "seed")
        if getattr(args, k) is not None
    }
    summary = explore(
        args.models,
        args.directives,
        out=args.output,
        data=args.data,
        workers=args.workers,
        scheduler=args.scheduler,
        use_cache=not args.no_cache,
        force=args.force,
        plots=not args.no_plots,
        progress=not (args.quiet or args.json),
        overrides=overrides,
    )
    if args.json:
        _print_json(summary)
        return 0
    if args.quiet:
        return 0
    objectives = summary["objectives"]
    print(
        f"{summary['evaluations']} points evaluated ({summary['algorithm']}, "
        f"{summary['feasible']} feasible, {summary['cache_hits']} cached) of "
        f"{summary['space_size']} in {summary['seconds']:.1f} s; Pareto front:"
    )
    names = list(summary["variables"])
    head = ["id", *names, *(UNITS[o] for o in objectives), "array"]
    rows = []
    for p in summary["front"]:
        hw = p["metrics"].get("hardware") or {}
        rows.append(
            [str(p["id"]), *(p["values"][n] for n in names),
             *(f"{p['objectives'][o]:.4g}" for o in objectives), str(hw.get("array", ""))]
        )  # fmt: skip
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    if summary.get("files"):
        print(f"wrote {args.output}/: report.html, front.csv, front.json, points/*.ax, ...")
    return 0


def _cmd_backends(args: argparse.Namespace) -> int:
    import dataclasses

    from axc.backend import available_backends

    rows: list[dict[str, Any]] = [
        {
            "name": name,
            "summary": cls.summary,
            "options": {
                f.name: {
                    "type": str(f.type),
                    "default": None if f.default is dataclasses.MISSING else f.default,
                }
                for f in dataclasses.fields(cls.Options)
            },
        }
        for name, cls in available_backends().items()
    ]
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("no backend installed")
    for row in rows:
        options = ", ".join(f"{k}={v['default']}" for k, v in row["options"].items())
        print(f"{row['name']:12} {row['summary']}" + (f"  (options: {options})" if options else ""))
    return 0


def _cmd_ops(args: argparse.Namespace) -> int:
    from axc.frontend import SUPPORTED_OPS

    if args.json:
        _print_json(list(SUPPORTED_OPS))
    else:
        print("\n".join(SUPPORTED_OPS))
    return 0


def _format_metrics(m: dict[str, float]) -> str:
    return (
        f"MAE {m['mae']:10.2f} ({m['mae_percent']:.4f}%)  WCE {m['wce']:8.0f} "
        f"({m['wce_percent']:.3f}%)  MRE {m['mre_percent']:7.3f}%  EP {m['ep_percent']:6.2f}%  "
        f"MSE {m['mse']:.4g}  bias {m['bias']:+.2f}"
    )


def _cmd_multipliers(args: argparse.Namespace) -> int:
    if args.action == "list":
        rows = api.list_multipliers(args.bits, cost=args.cost, progress=not args.quiet)
        if args.json:
            _print_json(rows)
            return 0
        for r in rows:
            cost = f"  {r['cost']['luts']:4d} LUTs" if "cost" in r else ""
            print(f"{r['spec']:18}{cost}  {_format_metrics(r['metrics'])}")
            print(f"{'':18}  {r['summary']}")
        if rows and "cost" in rows[0]:
            print(f"(yosys {rows[0]['cost']['yosys']}, synth_xilinx -nodsp)")
        return 0
    report = api.multiplier_report(
        args.multiplier, args.bits, cost=args.cost, plot=args.plot, emit=args.emit
    )
    if args.json:
        _print_json(report)
        return 0
    params = f"({', '.join(map(str, report['params']))})" if report["params"] else ""
    print(
        f"{report['name']}{params}: {report['bits']}-bit, {report['signed_operands']} operands "
        f"in [{report['operand_range'][0]}, {report['operand_range'][1]}]"
    )
    if report["summary"]:
        print(f"  {report['summary']}")
    if report["reference"]:
        print(f"  after {report['reference']}")
    print(f"  {_format_metrics(report['metrics'])}")
    if "cost" in report:
        c = report["cost"]
        print(f"  {c['luts']} LUTs, {c['carry']} CARRY4 (yosys {c['yosys']}, synth_xilinx -nodsp)")
    if "plot" in report:
        print(f"  plot written to {report['plot']}")
    for path in report.get("emitted", []):
        print(f"  wrote {path}")
    return 0


COMMANDS = {
    "multipliers": _cmd_multipliers,
    "compile": _cmd_compile,
    "check": _cmd_check,
    "show": _cmd_show,
    "simulate": _cmd_simulate,
    "inject": _cmd_inject,
    "backends": _cmd_backends,
    "verify": _cmd_verify,
    "synth": _cmd_synth,
    "explore": _cmd_explore,
    "ops": _cmd_ops,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else 1
    if args.command is None:
        parser.print_help()
        return 1
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"axc: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("axc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception:
        traceback.print_exc()
        print(
            "axc: internal error (a bug in axc; please report it with the traceback above)",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
