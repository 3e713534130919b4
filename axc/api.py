"""The Python API. Every CLI command is one of these calls.

import axc
g = axc.load("model.onnx")
axc.apply(g, "d.ax")
y = axc.simulate(g, x)
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from axc.directives import DirectiveFile, parse_file, parse_text
from axc.errors import UserError
from axc.frontend import load as _load_onnx
from axc.frontend import save as _save_onnx
from axc.ir import Graph, write_ir
from axc.ir.stats import summary as graph_summary
from axc.passes import PassContext, PassManager, PassRecord, Program, bind
from axc.sim import run as _run

__all__ = [
    "CheckEntry",
    "CompileResult",
    "apply",
    "check",
    "compile",
    "evaluate",
    "export",
    "inject",
    "list_multipliers",
    "load",
    "multiplier_report",
    "parse_directives",
    "simulate",
    "synth",
    "verify",
]

MANIFEST = ".axc-manifest.json"


def load(path: str | os.PathLike[str]) -> Graph:
    """Import an ONNX model into axc's IR."""
    return _load_onnx(path)


def parse_directives(source: str | os.PathLike[str] | DirectiveFile | Program) -> Program:
    """A validated directive program from a file path, directive text or a parsed file.

    A ``str`` that names an existing file is read from it; any other ``str``
    is directive text."""
    if isinstance(source, Program):
        return source
    if isinstance(source, DirectiveFile):
        return bind(source)
    if (
        isinstance(source, str)
        and ("\n" in source or not Path(source).exists())
        and not source.endswith(".ax")
    ):
        return bind(parse_text(source))
    return bind(parse_file(source))


def apply(
    graph: Graph,
    directives: str | os.PathLike[str] | DirectiveFile | Program,
    *,
    verify: bool | None = None,
    dump_ir_after: Collection[str] = (),
    dump: Callable[[str, Graph], None] | None = None,
    model_path: str | None = None,
    skip_protection: bool = False,
) -> list[PassRecord]:
    """Run the directives' passes over ``graph`` in place; returns what each did.
    ``skip_protection`` leaves out the ``protect`` directives (the unprotected
    twin of a protected design)."""
    program = parse_directives(directives)
    ctx = PassContext(model_path=model_path, directives_path=program.source.path)
    if skip_protection:
        ctx.shared["skip_protect"] = True
    manager = PassManager(verify=verify, dump_ir_after=dump_ir_after, dump=dump)
    return manager.run(graph, program, ctx)


def simulate(
    graph: Graph, inputs: Mapping[str, np.ndarray] | Sequence[np.ndarray] | np.ndarray
) -> dict[str, np.ndarray]:
    """Run ``graph`` on ``inputs`` (float executor) and return its outputs by name."""
    return _run(graph, inputs)


def evaluate(
    graph: Graph,
    data: str | os.PathLike[str],
    *,
    reference: Graph | None = None,
    keep_outputs: bool = False,
) -> dict[str, Any]:
    """Run ``graph`` over an ``.npz`` data set (``x``, optional labels ``y``):
    top-1/top-5 accuracy, agreement with a ``reference`` graph, and optionally
    every output (see :func:`axc.sim.evaluate.evaluate`)."""
    from axc.sim.dataset import load_dataset
    from axc.sim.evaluate import evaluate as _evaluate

    return _evaluate(graph, load_dataset(data, graph), reference, keep_outputs)


def export(graph: Graph, path: str | os.PathLike[str]) -> None:
    """Write ``graph`` as an ONNX model."""
    _save_onnx(graph, path)


@dataclass(frozen=True)
class CheckEntry:
    location: str
    directive: str
    pass_name: str
    targets: tuple[str, ...]
    summary: str


def check(
    graph: Graph, directives: str | os.PathLike[str] | DirectiveFile | Program
) -> list[CheckEntry]:
    """Validate directives against ``graph`` and report what each selects.

    Selectors are resolved against the graph as given, without running passes."""
    program = parse_directives(directives)
    entries = []
    for bound in program.directives:
        d = bound.directive
        entries.append(
            CheckEntry(
                f"{program.source.path}:{d.span.line}:{d.span.column}",
                str(d),
                bound.pass_cls.name,
                tuple(bound.targets(graph)),
                bound.pass_cls.summary,
            )
        )
    if program.explore is not None:
        for item in program.explore.items:
            i = item.item
            entries.append(
                CheckEntry(
                    f"{program.source.path}:{i.span.line}:{i.span.column}",
                    f"explore {i.pass_name} {i.selector or ''} {i.param} in "
                    f"{len(item.values)} values".replace("  ", " "),
                    item.pass_cls.name,
                    tuple(program.explore_targets(item, graph)),
                    "exploration axis",
                )
            )
    return entries


@dataclass
class CompileResult:
    outdir: Path
    files: list[Path]
    records: list[PassRecord]
    summary: dict[str, Any] = field(default_factory=dict)


def _claim_outdir(outdir: Path, force: bool) -> set[str]:
    """Names in ``outdir`` that axc wrote before (and may replace)."""
    if outdir.exists() and not outdir.is_dir():
        raise UserError(f"output path {outdir} exists and is not a directory")
    if not outdir.exists():
        return set()
    ours: set[str] = set()
    manifest = outdir / MANIFEST
    if manifest.is_file():
        try:
            ours = set(json.loads(manifest.read_text(encoding="utf-8")).get("files", []))
        except (ValueError, OSError):
            ours = set()
        ours.add(MANIFEST)
    others = sorted(p.name for p in outdir.iterdir() if p.name not in ours)
    if others and not force:
        listed = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
        raise UserError(
            f"output directory {outdir} already holds files axc did not write "
            f"({listed}); choose an empty directory, or pass --force to write "
            "axc's files beside them"
        )
    return ours


def compile(
    model: str | os.PathLike[str],
    directives: str | os.PathLike[str] | Program,
    outdir: str | os.PathLike[str],
    *,
    force: bool = False,
    dump_ir_after: Collection[str] = (),
    dump: Callable[[str, Graph], None] | None = None,
    verify: bool | None = None,
    backend: str | None = None,
    options: Sequence[str] = (),
) -> CompileResult:
    """Import, apply the directives and write the transformed IR (JSON + npz),
    the ONNX export and a summary into ``outdir``; with ``backend``, also that
    backend's lowering (``options``: its ``KEY=VALUE`` options) into
    ``outdir/BACKEND/``.

    Nothing is written unless every step succeeds; then files appear at once.
    Files in ``outdir`` that axc did not write are never overwritten."""
    from axc.backend import available_backends, get_backend, make_options

    out = Path(outdir)
    _claim_outdir(out, force)  # fail early, before any work
    lowering = get_backend(backend) if backend is not None else None
    if options and lowering is None:
        raise UserError("--option needs --backend")
    graph = load(model)
    before = graph_summary(graph)
    records = apply(
        graph,
        directives,
        verify=verify,
        dump_ir_after=dump_ir_after,
        dump=dump,
        model_path=str(model),
    )
    notes = []
    implicit = False
    if lowering is None:
        # no --backend: the directives' target, else HLS for an integer design
        target = (graph.metadata.get("target") or {}).get("backend")
        installed = available_backends()
        integer = any(n.op in ("QConv", "QGemm") for n in graph.nodes.values())
        choice = target or ("hls" if integer else None)
        if choice is not None and choice in installed:
            lowering, implicit = installed[choice], True
        elif target is not None:
            notes.append(f"the target's backend {target!r} is not installed: wrote the IR only")
    backend_options = make_options(lowering, list(options)) if lowering is not None else None
    stem = Path(model).stem
    after = graph_summary(graph)
    summary = {
        "model": str(model),
        "directives": str(parse_directives(directives).source.path),
        "imported": before,
        "compiled": after,
        "target": graph.metadata.get("target"),
        "approximate": {
            n.name: n.annotations["multiplier"]
            for n in graph.topological()
            if n.annotations.get("multiplier")
        },
        "notes": notes,
        "passes": [
            {
                "directive": r.directive,
                "location": r.location,
                "pass": r.pass_name,
                "targets": list(r.targets),
                "changed": r.changed,
            }
            for r in records
        ],
    }
    parent = out.parent if out.parent != Path("") else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".axc-staging-", dir=parent))
    except OSError as exc:
        raise UserError(f"cannot create output directory {out}: {exc}") from None
    try:
        write_ir(graph, staging / f"{stem}.axc.json")
        _save_onnx(graph, staging / f"{stem}.onnx")
        artifacts = None
        if lowering is not None and backend_options is not None:
            folder = staging / lowering.name
            folder.mkdir()
            try:
                artifacts = lowering().lower(graph, backend_options, folder)
            except UserError as exc:
                if not implicit:
                    raise
                shutil.rmtree(folder, ignore_errors=True)  # the default backend: a note
                notes.append(f"{lowering.name} (the default backend) skipped: {exc}")
        if lowering is not None and backend_options is not None and artifacts is not None:
            summary["backend"] = {
                "name": lowering.name,
                "options": dataclasses.asdict(backend_options),
                "files": sorted(str(p.relative_to(staging)) for p in artifacts.files),
                **artifacts.summary,
            }
        (staging / "summary.json").write_text(
            json.dumps(summary, indent=1) + "\n", encoding="utf-8"
        )
        (staging / "summary.txt").write_text(format_summary(summary), encoding="utf-8")
        names = sorted(p.name for p in staging.iterdir())
        ours = _claim_outdir(out, force)  # again: the folder may have changed meanwhile
        out.mkdir(exist_ok=True)
        for name in names:
            os.replace(staging / name, out / name)
        (out / MANIFEST).write_text(
            json.dumps({"files": sorted(set(names) | (ours - {MANIFEST}))}, indent=1) + "\n",
            encoding="utf-8",
        )
    except OSError as exc:
        raise UserError(f"cannot write into {out}: {exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return CompileResult(out, [out / n for n in names], records, summary)


def format_summary(summary: dict[str, Any]) -> str:
    imported, compiled = summary["imported"], summary["compiled"]
    lines = [
        f"model       {summary['model']}",
        f"directives  {summary['directives']}",
        f"layers      {imported['nodes']} imported, {compiled['nodes']} after passes",
        "ops         " + ", ".join(f"{k} x{v}" for k, v in compiled["ops"].items()),
        f"parameters  {compiled['parameters']:,}",
        f"MACs/input  {compiled['macs_per_input']:,}",
    ]
    if summary.get("target"):
        t = summary["target"]
        lines.append("target      " + " ".join(f"{k}={v}" for k, v in t.items()))
    approximate = summary.get("approximate") or {}
    for layer, spec in approximate.items():
        lines.append(f"multiplier  {layer}: {spec}")
    if approximate:
        lines.append(
            "            (the ONNX export computes these layers' products exactly: "
            "ONNX has no approximate multiplier)"
        )
    if summary.get("backend"):
        b = summary["backend"]
        lines.append(f"backend     {b['name']}: {len(b['files'])} files in {b['name']}/")
    for note in summary.get("notes", []):
        lines.append(f"note        {note}")
    for p in summary["passes"]:
        n = len(p["targets"])
        what = f"{n} layer{'s' if n != 1 else ''}" if n else "graph"
        lines.append(
            f"pass        {p['location']}  {p['directive']}  ({what}"
            f"{', changed' if p['changed'] else ', no change'})"
        )
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------- multipliers
def multiplier_report(
    spec: str,
    bits: int = 8,
    *,
    cost: bool = False,
    plot: str | os.PathLike[str] | None = None,
    emit: str | os.PathLike[str] | None = None,
    base: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """What ``axc multipliers show`` prints: a multiplier's definition, operand
    range, error metrics and (with ``cost``) its LUT and CARRY counts from
    yosys. ``spec`` is a built-in form (``trunc(4)``) or a .c, .v or .npy file.
    ``emit`` names a folder to write its C++ (.h) and Verilog (.v) views to."""
    from axc.arith.metrics import error_metrics
    from axc.arith.multipliers import FAMILIES, parse_multiplier

    m = parse_multiplier(spec, bits=bits, base=str(base) if base is not None else None)
    family = FAMILIES.get(m.family)
    report: dict[str, Any] = {
        "name": m.name,
        "family": m.family,
        "params": list(m.params),
        "bits": m.bits,
        "signed_operands": "sign-magnitude" if m.sign_magnitude else "two's complement",
        "operand_range": [m.a_lo, m.a_hi],
        "identifier": m.identifier(),
        "summary": family.summary if family else "",
        "reference": m.reference,
        "metrics": error_metrics(m),
    }
    if cost:
        from axc.hw.synth import synthesize

        result = synthesize(m.verilog(), m.identifier())
        report["cost"] = {"luts": result.luts, "carry": result.carry, "yosys": result.yosys}
    try:
        if emit is not None:
            folder = Path(emit)
            folder.mkdir(parents=True, exist_ok=True)
            header, module = folder / f"{m.identifier()}.h", folder / f"{m.identifier()}.v"
            header.write_text(m.cpp())
            module.write_text(m.verilog())
            report["emitted"] = [str(header), str(module)]
        if plot is not None:
            from axc.report.plots import plot_multiplier_error

            report["plot"] = str(plot_multiplier_error(m, Path(plot)))
    except OSError as exc:
        raise UserError(f"cannot write {exc.filename or 'the output'}: {exc.strerror}") from None
    return report


def list_multipliers(
    bits: int = 8, *, cost: bool = False, progress: bool = False
) -> list[dict[str, Any]]:
    """Every built-in family, with its representative parameters at ``bits``
    (``progress``: a progress bar on stderr while synthesizing)."""
    from tqdm import tqdm

    from axc.arith.multipliers import FAMILIES

    out = []
    families = list(FAMILIES.values())
    bar = tqdm(families, desc="synthesizing", unit="multiplier", disable=not (progress and cost))
    for fam in bar:
        spec = fam.name + (f"({', '.join(map(str, fam.example))})" if fam.example else "")
        report = multiplier_report(spec, bits, cost=cost)
        report["spec"] = spec
        report["parameters"] = [name for name, _ in fam.params]
        out.append(report)
    return out


# ------------------------------------------------------------ fault injection
def inject(
    model: str | os.PathLike[str] | Graph,
    directives: str | os.PathLike[str] | DirectiveFile | Program | None,
    data: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    seed: int = 0,
    images: int | None = None,
    faults: str | os.PathLike[str] | None = None,
    save_faults: str | os.PathLike[str] | None = None,
    resume: bool = False,
    force: bool = False,
    scheduler: str | None = None,
    threads: int | None = None,
    memory_gib: float = 2.0,
    confidence: float = 0.95,
    plots: bool = True,
    progress: bool = False,
    compare_protection: bool = False,
) -> dict[str, Any]:
    """Run the fault-injection campaign the ``inject`` directives declare (or a
    saved fault list, ``faults``) over a data set, and report SDC-1, SDC-5,
    accuracy under fault, masked and detected shares with Wilson intervals,
    in total and per layer, site, bit position and fault model.

    With ``out``, results go to ``out/results.sqlite`` as they come (``resume``
    continues an interrupted campaign), with the fault list (``faults.csv``),
    the report (``summary.json``) and plots. ``scheduler`` runs the tasks on a
    Dask cluster (``tcp://host:port``).

    ``compare_protection`` runs the same fault list on the design with and
    without its ``protect`` directives (in ``out/unprotected`` and
    ``out/protected``) and adds, per layer and in total, the reduction factor
    of SDC-1 with a bootstrap interval over the faults."""
    from axc.faults.stats import quantile

    quantile(confidence)  # checks it
    if images is not None and images < 1:
        raise UserError(f"--images must be at least 1, got {images}")
    if not memory_gib > 0:
        raise UserError(f"the memory limit must be positive, got {memory_gib} GiB")
    # what both campaigns of a comparison share: Campaign's own keyword arguments
    settings: dict[str, Any] = {
        "seed": seed,
        "resume": resume,
        "force": force,
        "scheduler": scheduler,
        "threads": threads,
        "memory": int(memory_gib * (1 << 30)),
        "confidence": confidence,
        "progress": progress,
    }
    if not compare_protection:
        graph, model_path = _model(model)
        if directives is not None:
            apply(graph, directives, model_path=model_path)
        report = _campaign(graph, data, out, images, plots, settings, faults, save_faults)
        report.pop("_faults")
        report.pop("_per_fault")
        return report
    if directives is None:
        raise UserError("--compare-protection needs directives with `protect` statements")
    bare, model_path = _model(model)
    apply(bare, directives, model_path=model_path, skip_protection=True)
    guarded, _ = _model(model)
    apply(guarded, directives, model_path=model_path)
    if not any(n.annotations.get("protect") for n in guarded.nodes.values()):
        raise UserError("--compare-protection: the directives protect nothing (no `protect`)")
    folder = Path(out) if out is not None else None
    before = _campaign(
        bare, data, folder and folder / "unprotected", images, plots, settings, faults, save_faults
    )
    after = _campaign(
        guarded,
        data,
        folder and folder / "protected",
        images,
        plots,
        settings,
        replay=before.pop("_faults"),
    )
    after.pop("_faults")
    from axc.faults.compare import compare
    from axc.passes.protect import protection_cost

    report = compare(before, after, confidence, seed)
    report["cost"] = protection_cost(guarded)
    if folder is not None:
        summary = folder / "comparison.json"
        try:
            summary.write_text(json.dumps(report, indent=1))
        except OSError as exc:
            raise UserError(f"cannot write {summary}: {exc.strerror}") from None
        report["files"] = [str(summary)]
    return report


def _model(model: str | os.PathLike[str] | Graph) -> tuple[Graph, str | None]:
    if isinstance(model, Graph):
        return model.copy(), None
    return load(model), str(model)


def _campaign(
    graph: Graph,
    data: str | os.PathLike[str],
    out: str | os.PathLike[str] | None,
    images: int | None,
    plots: bool,
    settings: dict[str, Any],
    faults: str | os.PathLike[str] | None = None,
    save_faults: str | os.PathLike[str] | None = None,
    replay: tuple[Any, Any] | None = None,
) -> dict[str, Any]:
    """One campaign and its files. The report also holds, under ``_faults``
    and ``_per_fault``, the fault list and per-fault counts (for a comparison);
    callers remove them."""
    from axc.faults.campaign import Campaign
    from axc.faults.model import group_from_dict, read_faults, write_faults
    from axc.sim.dataset import load_dataset
    from axc.sim.evaluate import evaluate as _evaluate

    dataset = load_dataset(data, graph, limit=images)
    groups = [group_from_dict(g) for g in graph.metadata.get("inject", [])]
    fault_list = sites = None
    if faults is not None:
        fault_list, sites = read_faults(faults, graph)
    if replay is not None:
        fault_list, sites = replay
    folder = Path(out) if out is not None else None
    campaign = Campaign(
        graph, dataset.x, dataset.y, groups, faults=fault_list, sites=sites, out=folder, **settings
    )
    report = campaign.run()
    per_fault = report.pop("_per_fault")
    clean = _evaluate(graph, dataset)
    report["clean"] = {k: clean[k] for k in ("top1", "top5") if k in clean}
    report["data"] = str(data)
    listed, listed_sites = campaign.prepare()
    if folder is not None:
        written = []
        fault_file = folder / "faults.csv"
        write_faults(fault_file, listed, listed_sites)
        written.append(fault_file)
        if plots and len(report["per_layer"]):
            try:
                from axc.report.plots import plot_bit_vulnerability, plot_layer_vulnerability

                written += plot_layer_vulnerability(report, folder / "sdc1_per_layer")
                written += plot_bit_vulnerability(report, folder / "sdc1_per_bit")
                if "per_pe" in report:
                    from axc.report.plots import plot_pe_spread, plot_pe_vulnerability

                    written += plot_pe_vulnerability(report, folder / "sdc1_per_pe")
                    written += plot_pe_spread(
                        graph, report, dataset.x[:1], listed_sites, folder / "pe_fault_spread"
                    )
            except UserError as exc:  # no matplotlib: the figures are still in the JSON
                report["plots_skipped"] = str(exc)
        summary = folder / "summary.json"
        report["files"] = [str(p) for p in [*written, summary, folder / "results.sqlite"]]
        try:
            summary.write_text(json.dumps(report, indent=1))
        except OSError as exc:
            raise UserError(f"cannot write {summary}: {exc.strerror}") from None
    if save_faults is not None:
        write_faults(save_faults, listed, listed_sites)
    report["_faults"] = (listed, listed_sites)
    report["_per_fault"] = per_fault
    return report


# ------------------------------------------------------------------ verify
def verify(
    model: str | os.PathLike[str],
    directives: str | os.PathLike[str] | Program,
    data: str | os.PathLike[str],
    *,
    backend: str = "hls",
    options: Sequence[str] = (),
    images: int | None = None,
    keep: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Lower the compiled model with ``backend``, run the lowered design on the
    data set (csim for ``hls``) and compare its outputs with the simulator's,
    bit for bit. A backend with ``verify_layers`` (``systolic``) compares every
    layer it runs instead, with each tile's cycles against the closed-form
    model. ``keep`` names a folder to leave the project in."""
    from axc.backend import get_backend, make_options
    from axc.sim.dataset import load_dataset

    lowering = get_backend(backend)
    run_design = getattr(lowering, "run", None)
    check_layers = getattr(lowering, "verify_layers", None)
    if run_design is None and check_layers is None:
        raise UserError(
            f"backend {backend!r} cannot run its designs, so there is nothing to verify"
        )
    graph = load(model)
    apply(graph, directives, model_path=str(model))
    dataset = load_dataset(data, graph, limit=images)
    backend_options = make_options(lowering, list(options))
    with tempfile.TemporaryDirectory(prefix="axc-verify-") as tmp:
        folder = Path(keep) if keep is not None else Path(tmp) / backend
        try:
            folder.mkdir(parents=True, exist_ok=keep is not None)
        except OSError as exc:
            raise UserError(f"cannot create {folder}: {exc}") from None
        if keep is not None and any(folder.iterdir()):
            raise UserError(f"{folder} is not empty; give an empty or new folder to --keep")
        lowering().lower(graph, backend_options, folder)
        if check_layers is not None:
            # layer by layer (the systolic array runs conv and GEMM layers)
            report = check_layers(graph, backend_options, dataset.x, Path(tmp), folder)
            return {
                **report,
                "model": str(model),
                "project": str(folder) if keep is not None else None,
            }
        assert run_design is not None
        got = np.asarray(run_design(folder, dataset.x, Path(tmp)))
    want = np.asarray(_run(graph, dataset.x)[graph.outputs[0]])
    want = want.reshape(len(dataset.x), -1)
    bits = np.dtype(f"u{want.dtype.itemsize}")
    same = got.astype(want.dtype).view(bits) == want.view(bits)
    rows = same.all(axis=1)
    return {
        "backend": backend,
        "model": str(model),
        "images": len(dataset.x),
        "bit_exact": bool(rows.all()),
        "mismatched_images": int((~rows).sum()),
        "mismatched_values": int((~same).sum()),
        "max_abs_diff": float(np.abs(got.astype(np.float64) - want).max()) if got.size else 0.0,
        "project": str(folder) if keep is not None else None,
    }


def synth(
    model: str | os.PathLike[str] | None = None,
    directives: str | os.PathLike[str] | Program | None = None,
    *,
    options: Sequence[str] = (),
    arrays: Sequence[tuple[int, int]] = (),
    multipliers: Sequence[str] = ("exact",),
    dataflow: str = "ws",
    bits: int = 8,
    progress: bool = False,
    use_cache: bool = True,
    predict: bool = False,
    device: str | None = None,
) -> list[dict[str, Any]]:
    """yosys ``synth_xilinx`` of systolic arrays: the one a compiled model lowers
    to (``model`` and ``directives``, with backend ``options``), or, without a
    model, every combination of ``arrays`` (rows, cols) and ``multipliers``
    for ``bits``-bit operands. Each row: the array, its multiplier, LUT, FF,
    DSP and CARRY counts and the yosys version; results are cached. With
    ``predict``, each row also holds the calibrated resource model's figures
    (``predicted``) and their error against synthesis in percent; with
    ``device`` (a part such as ``xc7z020``), its utilization of that part."""
    from tqdm import tqdm

    from axc.backend import get_backend, make_options
    from axc.hw.devices import device as find_device
    from axc.hw.devices import utilization

    part = find_device(device) if device else None
    systolic = get_backend("systolic")
    module = sys.modules[systolic.__module__]
    jobs: list[tuple[Any, Any]] = []
    if model is not None:
        if directives is None:
            raise UserError("a model needs its directives to say what the array computes")
        graph = load(model)
        apply(graph, directives, model_path=str(model))
        parts = module.array_parts(graph, make_options(systolic, list(options)))
        jobs += [(part.config, part.multiplier) for part in parts]  # one per multiplier
    else:
        if not arrays:
            raise UserError("give a model, or the arrays to synthesize (--arrays 4x4,8x8)")
        for rows, cols in arrays:
            for spec in multipliers:
                try:
                    jobs.append(module.standalone_config(rows, cols, dataflow, spec, bits))
                except ValueError as exc:
                    raise UserError(str(exc)) from None
    out = []
    bar = tqdm(jobs, desc="synthesizing", unit="array", disable=not progress)
    for cfg, mult in bar:
        bar.set_postfix_str(f"{cfg.rows}x{cfg.cols} {mult.identifier()}")
        result = module.synthesize_array(cfg, mult, use_cache=use_cache)
        extra: dict[str, Any] = {}
        if predict:
            from axc.backends.systolic.cost import RESOURCES, characterize

            guess = characterize(cfg, mult, use_cache=use_cache).predict(cfg.rows, cfg.cols)
            extra["predicted"] = guess
            extra["error_percent"] = {
                k: round(100 * (guess[k] - getattr(result, k)) / max(1, getattr(result, k)), 1)
                for k in RESOURCES
            }
        if part is not None:
            extra["utilization"] = utilization(
                {"luts": result.luts, "ff": result.ff, "dsp": result.dsp}, part
            )
        out.append(
            {
                "rows": cfg.rows,
                "cols": cfg.cols,
                "dataflow": cfg.dataflow,
                "multiplier": mult.identifier(),
                "luts": result.luts,
                "ff": result.ff,
                "dsp": result.dsp,
                "carry": result.carry,
                "yosys": result.yosys,
                "script": result.script,
                "cached": result.cached,
                **extra,
            }
        )
    return out
