"""Scoring one design point: its accuracy, its vulnerability and its hardware.

:func:`evaluate_point` does the model work (passes, simulation, a fault
campaign) and runs anywhere: in this process, a local worker process or a
Dask worker; it returns plain data. :class:`Pricer` then prices the array in
the exploring process, from the resource model that yosys characterizes once
per array variant (``axc.backends.systolic.cost``), and the cycle model.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from axc.errors import UserError

__all__ = ["Pricer", "Settings", "evaluate_point", "reference_accuracy"]

HARDWARE = ("luts", "area", "latency")


@dataclass(frozen=True)
class Settings:
    """What every evaluation of one exploration shares (picklable)."""

    models: tuple[str, ...]
    sources: tuple[str, ...]  # each model's directive file (relative paths resolve there)
    data: tuple[str, ...]  # each model's test set
    objectives: tuple[str, ...]
    images: int | None = None
    faults: int = 200
    fault_images: int = 50
    seed: int = 0


def reference_accuracy(model: str, data: str, images: int | None) -> float:
    """Top-1 of the float model (what accuracy loss is measured from)."""
    from axc.api import load
    from axc.sim.dataset import load_dataset
    from axc.sim.evaluate import evaluate

    graph = load(model)
    result = evaluate(graph, load_dataset(data, graph, limit=images))
    if "top1" not in result:
        raise UserError(f"{data} has no labels (y): accuracy needs them")
    return float(result["top1"])


def evaluate_point(settings: Settings, texts: tuple[str, ...]) -> dict[str, Any]:
    """Build and score one point on every model. A design the passes or the
    array cannot build comes back as ``{"error": message}`` (infeasible)."""
    from axc.api import apply, inject, load
    from axc.directives.parser import parse_text
    from axc.passes.program import bind
    from axc.sim.dataset import load_dataset
    from axc.sim.evaluate import evaluate

    out: list[dict[str, Any]] = []
    try:
        for model, source, data, text in zip(
            settings.models, settings.sources, settings.data, texts, strict=True
        ):
            graph = load(model)
            apply(graph, bind(parse_text(text, source)), model_path=model)
            result = evaluate(graph, load_dataset(data, graph, limit=settings.images))
            entry: dict[str, Any] = {"top1": float(result["top1"])}
            if "vulnerability" in settings.objectives:
                if not graph.metadata.get("inject"):
                    apply(
                        graph,
                        f"inject * site=activations model=bitflip count={settings.faults}\n",
                    )
                report = inject(
                    graph,
                    None,
                    data,
                    images=settings.fault_images,
                    seed=settings.seed,
                    threads=1,
                    plots=False,
                )
                entry["sdc1"] = float(report["total"]["sdc1"]["rate"])
                # the faults, not the (fault, image) runs, are the independent draws
                entry["sdc1_ci"] = [float(v) for v in report["total"]["sdc1"]["ci_faults"]]
            if any(o in HARDWARE for o in settings.objectives) or graph.metadata.get("target"):
                entry["hardware"] = array_request(graph)
            out.append(entry)
    except UserError as exc:
        return {"error": str(exc).splitlines()[0]}
    return {"models": out}


def array_request(graph: Any) -> dict[str, Any]:
    """The arrays a compiled graph needs (one per multiplier), and the
    products each runs: duplicated and triplicated layers are products of
    their own (redundancy in time), a checksum adds a column."""
    from axc.backend import get_backend
    from axc.backends.systolic import SystolicOptions, array_parts, layer_dims

    get_backend("systolic")
    target = graph.metadata.get("target") or {}
    arrays = []
    for part in array_parts(graph, SystolicOptions()):
        dims = []
        for n in part.layers:
            # ABFT (protect checksum) runs one more weight column per group: its column sums
            extra = 1 if len(n.outputs) > 1 else 0
            dims += [(rows, k, m + extra) for rows, k, m, _ in layer_dims(graph, n)]
        mult = part.multiplier
        spec = ("exact", part.config.a_w - 1)  # exact multipliers take operands of bits + 1 bits
        if not getattr(mult, "is_exact", False):
            n = part.layers[0]
            spec = (str(n.annotations["multiplier"]), int(n.annotations.get("multiplier_bits", 8)))
        # (spec, bits): the multiplier itself is a megabyte of tables
        arrays.append({"config": part.config, "multiplier": spec, "dims": dims})
    return {
        "arrays": arrays,
        "clock_mhz": float(target.get("clock_mhz", 200.0)),
        "device": target.get("device"),
    }


class Pricer:
    """Resources, latency and device fit of arrays, from the calibrated model."""

    def __init__(
        self,
        *,
        area: bool,
        use_cache: bool = True,
        status: Callable[[str], None] | None = None,
    ) -> None:
        self.area = area
        self.use_cache = use_cache
        self.status = status
        self._models: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.Lock()
        self._busy: dict[tuple[Any, ...], threading.Event] = {}

    def _model(self, cfg: Any, mult: Any, dsp: bool) -> Any:
        import dataclasses

        from axc.backends.systolic.cost import characterize

        key = (dataclasses.replace(cfg, rows=1, cols=1, top="axc_systolic"), dsp)
        while True:
            with self._lock:
                if key in self._models:
                    return self._models[key]
                event = self._busy.get(key)
                if event is None:
                    self._busy[key] = threading.Event()
                    break
            event.wait()
        try:
            if self.status is not None:
                build = "" if dsp else ", no DSPs"
                self.status(f"yosys: {mult.identifier()} {cfg.dataflow}{build}")
            model = characterize(key[0], mult, use_cache=self.use_cache, dsp=dsp)
            with self._lock:
                self._models[key] = model
            return model
        finally:
            with self._lock:
                self._busy.pop(key).set()

    @functools.lru_cache(maxsize=64)  # noqa: B019 (one pricer per exploration)
    def _multiplier(self, spec: str, bits: int) -> Any:
        from axc.arith.multipliers import exact_multiplier, resolve

        return exact_multiplier(bits) if spec == "exact" else resolve(spec, bits)

    def price(self, requests: list[dict[str, Any]]) -> dict[str, Any]:
        """The design's arrays, one per multiplier, shared by every model (each
        array as wide as the widest use of it): their resources add up, and a
        model's latency is the sum of its layers' cycles on their arrays."""
        import dataclasses

        from axc.hw.devices import device, utilization
        from axc.hw.systolic import ArrayShape, gemm_cycles

        uses: dict[str, list[dict[str, Any]]] = {}
        for r in requests:
            for a in r["arrays"]:
                uses.setdefault(a["config"].multiplier, []).append(a)
        shapes = {(a["config"].rows, a["config"].cols, a["config"].dataflow)
                  for group in uses.values() for a in group}  # fmt: skip
        if len(shapes) > 1:
            raise UserError("the models ask for arrays of different shapes")
        rows, cols, dataflow = next(iter(shapes))
        shape = ArrayShape(rows, cols, dataflow)
        total: dict[str, Any] = {}
        area = 0
        names = []
        for group in uses.values():
            cfgs = [a["config"] for a in group]
            widest = max(cfgs, key=lambda c: (c.a_w, c.acc_w, c.out_w))
            mult = self._multiplier(*next(a["multiplier"] for a in group if a["config"] is widest))
            cfg = dataclasses.replace(
                widest,
                acc_w=max(c.acc_w for c in cfgs),
                out_w=max(c.out_w for c in cfgs),
                out_signed=all(c.out_signed for c in cfgs),
            )
            names.append(mult.identifier())
            for key, value in self._model(cfg, mult, True).predict(rows, cols).items():
                total[key] = total.get(key, 0) + value
            if self.area:
                area += self._model(cfg, mult, False).predict(rows, cols)["luts"]
        out: dict[str, Any] = {
            "array": f"{rows}x{cols} {dataflow}",
            "arrays": len(uses),
            "multiplier": ", ".join(names),
            **total,
        }
        if self.area:
            out["area"] = area
        latencies = []
        for r in requests:
            cycles = sum(gemm_cycles(shape, *dims) for a in r["arrays"] for dims in a["dims"])
            latencies.append(cycles / r["clock_mhz"])
        out["latency_us"] = latencies
        # several models share the arrays: their latencies' geometric mean
        out["latency"] = math.exp(sum(math.log(v) for v in latencies) / len(latencies))
        part = next((r["device"] for r in requests if r["device"]), None)
        if part is not None:
            out["utilization"] = utilization(total, device(part))
        return out
