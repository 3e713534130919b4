"""The exploration loop: NSGA-II (pymoo) or every point, cached and parallel.

Each generation's new points are scored in a batch: points seen before come
from the cache (in memory, and on disk under ``cache_dir()/explore`` keyed by
the models, the data, the point's directives and the settings), the rest run
in this process, in local worker processes (``workers``) or on a Dask
cluster (``scheduler``). Evaluations are deterministic, so the front does not
depend on where they ran. Arrays are priced here, each variant characterized
by yosys once (in parallel threads, cached on disk).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from axc.errors import UserError
from axc.explore.evaluate import HARDWARE, Pricer, Settings, evaluate_point
from axc.explore.space import Space

__all__ = ["Evaluation", "Search", "non_dominated"]

INFEASIBLE = 1e12

#: what a record holds (2: one array per multiplier; 3: SDC-1 intervals): part of the cache key
PRICING = "3"


@dataclass
class Evaluation:
    """One scored point."""

    id: int
    point: tuple[int, ...]
    values: dict[str, str]
    objectives: dict[str, float] | None  # None: the design cannot be built
    metrics: dict[str, Any] = field(default_factory=dict)
    violation: float = 0.0  # > 0: over the device budget by that fraction
    reason: str | None = None
    generation: int = 0
    cached: bool = False

    @property
    def feasible(self) -> bool:
        return self.objectives is not None and self.violation <= 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "point": list(self.point),
            "values": self.values,
            "objectives": self.objectives,
            "feasible": self.feasible,
            "violation": round(self.violation, 6),
            "reason": self.reason,
            "generation": self.generation,
            "metrics": self.metrics,
        }


def non_dominated(rows: Sequence[Evaluation], objectives: Sequence[str]) -> list[Evaluation]:
    """The feasible evaluations no other feasible one dominates (all minimized);
    of equal objective vectors, the first."""
    feasible = [r for r in rows if r.feasible]
    vectors = [tuple(r.objectives[o] for o in objectives) for r in feasible]  # type: ignore[index]
    front = []
    seen: set[tuple[float, ...]] = set()
    for i, v in enumerate(vectors):
        if v in seen:
            continue
        dominated = any(all(a <= b for a, b in zip(u, v, strict=True)) and u != v for u in vectors)
        if not dominated:
            front.append(feasible[i])
            seen.add(v)
    return front


def _digest_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Search:
    """One exploration: the spaces (one per model), the settings, the scorer."""

    def __init__(
        self,
        spaces: Sequence[Space],
        settings: Settings,
        references: Sequence[float],
        *,
        algorithm: str,
        population: int,
        generations: int,
        seed: int,
        device: str | None = None,
        workers: int = 1,
        scheduler: str | None = None,
        use_cache: bool = True,
        progress: Callable[[int, int, str], None] | None = None,
    ) -> None:
        self.spaces = list(spaces)
        self.space = self.spaces[0]
        self.settings = settings
        self.references = list(references)
        self.objectives = settings.objectives
        self.algorithm = algorithm
        self.population = population
        self.generations = generations
        self.seed = seed
        self.device = device
        self.workers = max(1, workers)
        self.scheduler = scheduler
        self.use_cache = use_cache
        self.progress = progress
        # synthesis results are keyed by their Verilog and yosys version: always reusable
        self.pricer = Pricer(
            area="area" in self.objectives,
            status=(lambda text: progress(0, len(self.evaluations), text)) if progress else None,
        )
        self.evaluations: list[Evaluation] = []
        self._memo: dict[tuple[int, ...], Evaluation] = {}
        self._salt = self._cache_salt()
        self.hits = 0
        self.seconds = 0.0
        self._pool: ProcessPoolExecutor | None = None

    # ------------------------------------------------------------ caching
    def _cache_salt(self) -> str:
        from axc import __version__

        s = self.settings
        parts = [__version__, PRICING, *map(_digest_file, s.models), *map(_digest_file, s.data)]
        parts.append(json.dumps([s.objectives, s.images, s.faults, s.fault_images, s.seed]))
        parts.append(str(self.device))
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def _cache_path(self, texts: tuple[str, ...]) -> Path:
        from axc.hw.synth import cache_dir

        key = hashlib.sha256((self._salt + "\n".join(texts)).encode()).hexdigest()[:32]
        return cache_dir() / "explore" / f"{key}.json"

    # ------------------------------------------------------------ scoring
    def texts(self, point: tuple[int, ...]) -> tuple[str, ...]:
        return tuple(space.directives(point) for space in self.spaces)

    def evaluate(self, points: Sequence[tuple[int, ...]], generation: int) -> list[Evaluation]:
        """Score ``points`` (in order), reusing earlier and cached scores."""
        out: list[Evaluation | None] = []
        todo: dict[tuple[int, ...], tuple[str, ...]] = {}
        for p in points:
            if p in self._memo:
                out.append(self._memo[p])
                continue
            out.append(None)
            todo.setdefault(p, self.texts(p))
        fresh: dict[tuple[int, ...], dict[str, Any]] = {}
        run: list[tuple[int, ...]] = []
        for p, texts in todo.items():
            path = self._cache_path(texts)
            if self.use_cache and path.is_file():
                try:
                    fresh[p] = {**json.loads(path.read_text()), "cached": True}
                    self.hits += 1
                    continue
                except ValueError:
                    pass  # a damaged entry is computed again
            run.append(p)
        raw = self._run([todo[p] for p in run])
        scored = self._price(raw)
        for p, record in zip(run, scored, strict=True):
            fresh[p] = record
            if self.use_cache:
                path = self._cache_path(todo[p])
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(record))
                tmp.replace(path)
        for p in todo:
            e = self._make(p, fresh[p], generation)
            self._memo[p] = e
            self.evaluations.append(e)
            if self.progress:
                step = "" if self.exhaustive() else f"gen {generation + 1}/{self.generations} "
                self.progress(1, len(self.evaluations), step + self._describe(e))
        return [self._memo[p] for p in points]

    def _describe(self, e: Evaluation) -> str:
        if e.objectives is None:
            return "infeasible"
        return " ".join(f"{k}={v:.4g}" for k, v in e.objectives.items())

    def _run(self, batch: list[tuple[str, ...]]) -> list[dict[str, Any]]:
        if not batch:
            return []
        args = [self.settings] * len(batch)
        if self.scheduler:
            from axc.faults.campaign import _client

            with _client(self.scheduler) as client:
                futures = client.map(evaluate_point, args, batch, pure=False)
                return list(client.gather(futures))
        if self.workers > 1 and len(batch) > 1:
            if self._pool is None:  # one pool for the whole run (spawned: numba is not fork-safe)
                import multiprocessing

                self._pool = ProcessPoolExecutor(
                    self.workers, mp_context=multiprocessing.get_context("spawn")
                )
            return list(self._pool.map(evaluate_point, args, batch))
        return [evaluate_point(self.settings, texts) for texts in batch]

    def _price(self, raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each raw result as a JSON record: accuracies, SDC rates, hardware."""
        needs = any(o in HARDWARE for o in self.objectives) or self.device is not None

        def one(result: dict[str, Any]) -> dict[str, Any]:
            if "error" in result:
                return {"error": result["error"]}
            models = result["models"]
            record: dict[str, Any] = {
                "top1": [m["top1"] for m in models],
                "sdc1": [m["sdc1"] for m in models if "sdc1" in m],
                "sdc1_ci": [m["sdc1_ci"] for m in models if "sdc1_ci" in m],
            }
            if needs:
                requests = [m["hardware"] for m in models if "hardware" in m]
                if len(requests) != len(models):
                    return {**record, "error": "no systolic target to price"}
                if self.device is not None:
                    for r in requests:
                        r["device"] = self.device
                try:
                    record["hardware"] = self.pricer.price(requests)
                except UserError as exc:
                    return {**record, "error": str(exc).splitlines()[0]}
            return record

        threads = min(len(raw), os.cpu_count() or 1) or 1
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(one, raw))

    def _make(self, point: tuple[int, ...], record: dict[str, Any], generation: int) -> Evaluation:
        values = self.space.describe(point)
        eid = len(self.evaluations)
        metrics = {k: v for k, v in record.items() if k not in ("error", "cached")}
        if "error" in record:
            return Evaluation(eid, point, values, None, metrics, reason=record["error"],
                              generation=generation, cached=bool(record.get("cached")))  # fmt: skip
        top1 = record["top1"]
        losses = [100.0 * (ref - t) for ref, t in zip(self.references, top1, strict=True)]
        hw = record.get("hardware") or {}
        table = {
            "accuracy": sum(losses) / len(losses),
            "vulnerability": 100.0 * sum(record["sdc1"]) / max(1, len(record["sdc1"])),
            "luts": float(hw.get("luts", 0)),
            "area": float(hw.get("area", 0)),
            "latency": float(hw.get("latency", 0.0)),
        }
        objectives = {o: table[o] for o in self.objectives}
        violation = 0.0
        reason = None
        fit = hw.get("utilization")
        if fit is not None:
            worst = max(fit["percent"].values())
            violation = max(0.0, worst / 100.0 - 1.0)
            if violation > 0:
                over = [k for k, v in fit["percent"].items() if v > 100]
                reason = f"over {fit['device']}'s budget ({', '.join(over)})"
        metrics["accuracy_loss"] = losses
        return Evaluation(eid, point, values, objectives, metrics, violation, reason,
                          generation, bool(record.get("cached")))  # fmt: skip

    # ------------------------------------------------------------ search
    def exhaustive(self) -> bool:
        if self.algorithm == "exhaustive":
            return True
        budget = self.population * (self.generations + 1)
        return self.algorithm == "auto" and self.space.size() <= budget

    def run(self) -> list[Evaluation]:
        start = time.perf_counter()
        try:
            if self.exhaustive():
                sizes = self.space.sizes
                grid = np.stack(np.meshgrid(*[np.arange(n) for n in sizes], indexing="ij"), -1)
                points = [tuple(int(v) for v in row) for row in grid.reshape(-1, len(sizes))]
                for i in range(0, len(points), 64):
                    self.evaluate(points[i : i + 64], 0)
            else:
                self._nsga2()
        finally:
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)
                self._pool = None
        self.seconds = time.perf_counter() - start
        return non_dominated(self.evaluations, self.objectives)

    def _initial(self, sizes: np.ndarray) -> np.ndarray:
        """The first generation: the "diagonal" points, where every item takes
        its i-th value (its last where it has fewer), then distinct random
        ones. Where the items list the same choices for different layers
        (one multiplier per layer, say), the diagonal holds the uniform
        designs, which random sampling almost never draws and which bound
        the front's cheap end."""
        chosen: list[tuple[int, ...]] = []
        for i in range(int(sizes.max())):
            point = tuple(int(min(i, n - 1)) for n in sizes)
            if point not in chosen:
                chosen.append(point)
        chosen = chosen[: self.population]
        rng = np.random.default_rng(self.seed)
        while len(chosen) < min(self.population, self.space.size()):
            point = tuple(int(v) for v in rng.integers(0, sizes))
            if point not in chosen:
                chosen.append(point)
        return np.array(chosen, dtype=float)

    def _nsga2(self) -> None:
        try:
            import pymoo  # noqa: F401
        except ImportError:
            raise UserError(
                "NSGA-II needs pymoo: pip install 'axc[dse]' (or algorithm=exhaustive)"
            ) from None
        from pymoo.algorithms.moo.nsga2 import NSGA2
        from pymoo.core.evaluator import Evaluator
        from pymoo.core.problem import Problem
        from pymoo.operators.crossover.sbx import SBX
        from pymoo.operators.mutation.pm import PM
        from pymoo.operators.repair.rounding import RoundingRepair
        from pymoo.problems.static import StaticProblem

        sizes = np.array(self.space.sizes)
        problem = Problem(
            n_var=len(sizes), n_obj=len(self.objectives), n_ieq_constr=1,
            xl=np.zeros(len(sizes)), xu=sizes - 1.0, vtype=int,
        )  # fmt: skip
        algorithm = NSGA2(
            pop_size=self.population,
            sampling=self._initial(sizes),
            crossover=SBX(prob=0.9, eta=3.0, vtype=float, repair=RoundingRepair()),
            mutation=PM(eta=3.0, vtype=float, repair=RoundingRepair()),
            eliminate_duplicates=True,
        )
        algorithm.setup(problem, termination=("n_gen", self.generations), seed=self.seed)
        generation = 0
        while algorithm.has_next():
            pop = algorithm.ask()
            xs = np.clip(np.rint(pop.get("X")), 0, sizes - 1).astype(int)
            rows = self.evaluate([tuple(int(v) for v in x) for x in xs], generation)
            f = np.array(
                [
                    [r.objectives[o] for o in self.objectives]
                    if r.objectives is not None
                    else [INFEASIBLE] * len(self.objectives)
                    for r in rows
                ]
            )
            g = np.array([[INFEASIBLE if r.objectives is None else r.violation] for r in rows])
            Evaluator().eval(StaticProblem(problem, F=f, G=g), pop)
            algorithm.tell(infills=pop)
            generation += 1
