"""Campaigns: plan, run (locally or on Dask), store durably, resume, report.

The work is split into tasks, each a slice of the fault list against one
chunk of the data set's images. A task's results (one row per fault and
chunk) are committed to the SQLite results file in one transaction as soon
as it finishes, so an interrupted campaign loses at most the tasks in
flight. ``resume`` skips every committed task; since a task's results depend
only on the seed-determined fault list and the images, a resumed campaign
ends with exactly the rows an uninterrupted one writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from axc.errors import UserError
from axc.faults.engine import Counts, Engine, Golden
from axc.faults.model import (
    FAULT_DTYPE,
    MODELS,
    FaultGroup,
    Site,
    generate,
    group_to_dict,
)
from axc.faults.stats import clustered_wilson, wilson
from axc.ir import Graph
from axc.ir.serialize import graph_to_dict

__all__ = ["Campaign", "CampaignInterrupted", "ResultsFile"]

FORMAT = "axc-campaign 1"
RESULTS = "results.sqlite"
DEFAULT_MEMORY = 2 << 30


class CampaignInterrupted(UserError):
    """Ctrl-C during a campaign: what finished is saved; ``--resume`` continues."""

    exit_code = 130


# ------------------------------------------------------------------ storage
class ResultsFile:
    """The campaign's SQLite file: its configuration, fault list and results."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self.conn = conn
        self.lock = threading.Lock()

    @classmethod
    def create(
        cls,
        path: Path,
        config: dict[str, Any],
        sites: Sequence[Site],
        faults: np.ndarray,
        plan: list[dict[str, Any]],
    ) -> ResultsFile:
        path.unlink(missing_ok=True)
        conn = sqlite3.connect(path, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        with conn:
            conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            conn.execute(
                "CREATE TABLE faults (id INTEGER PRIMARY KEY, grp INTEGER, site INTEGER, "
                "idx INTEGER, step INTEGER, bit INTEGER, nbits INTEGER, model INTEGER, "
                "and_mask TEXT, or_mask TEXT, xor_mask TEXT)"
            )
            conn.execute(
                "CREATE TABLE results (fault INTEGER NOT NULL, chunk INTEGER NOT NULL, "
                "images INTEGER, sdc1 INTEGER, sdc5 INTEGER, correct INTEGER, masked INTEGER, "
                "due INTEGER, PRIMARY KEY (fault, chunk))"
            )
            conn.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [
                    ("format", FORMAT),
                    ("config", json.dumps(config, sort_keys=True)),
                    ("sites", json.dumps([s.as_dict() for s in sites])),
                    ("plan", json.dumps(plan)),
                ],
            )
            conn.executemany(
                "INSERT INTO faults VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    (
                        int(f["id"]),
                        int(f["group"]),
                        int(f["site"]),
                        int(f["index"]),
                        int(f["step"]),
                        int(f["bit"]),
                        int(f["nbits"]),
                        int(f["model"]),
                        hex(int(f["and_mask"])),
                        hex(int(f["or_mask"])),
                        hex(int(f["xor_mask"])),
                    )
                    for f in faults
                ),
            )
        return cls(path, conn)

    @classmethod
    def open(cls, path: Path) -> ResultsFile:
        if not path.is_file():
            raise UserError(f"{path}: no campaign results to resume")
        try:
            conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, check_same_thread=False)
            rows = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            if rows.get("format") != FORMAT:
                raise sqlite3.DatabaseError(f"format {rows.get('format')!r}")
            conn.execute("SELECT count(*) FROM results").fetchone()
            conn.execute("SELECT count(*) FROM faults").fetchone()
            json.loads(rows["config"])
        except (sqlite3.Error, KeyError, ValueError) as exc:
            raise UserError(
                f"{path}: not a readable axc campaign results file ({exc}); "
                "remove it or start over without --resume"
            ) from None
        return cls(path, conn)

    def meta(self, key: str) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def faults(self) -> np.ndarray:
        rows = self.conn.execute("SELECT * FROM faults ORDER BY id").fetchall()
        out = np.zeros(len(rows), FAULT_DTYPE)
        for j, r in enumerate(rows):
            out[j] = (
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                r[6],
                r[7],
                int(r[8], 16),
                int(r[9], 16),
                int(r[10], 16),
            )
        return out

    def sites(self) -> list[Site]:
        return [Site(**s) for s in self.meta("sites")]

    def done(self) -> set[tuple[int, int]]:
        return {(f, c) for f, c in self.conn.execute("SELECT fault, chunk FROM results")}

    def write(self, ids: np.ndarray, chunk: int, counts: Counts) -> None:
        rows = [
            (
                int(ids[j]),
                chunk,
                int(counts.images[j]),
                int(counts.sdc1[j]),
                int(counts.sdc5[j]),
                int(counts.correct[j]),
                int(counts.masked[j]),
                int(counts.due[j]),
            )
            for j in range(len(ids))
        ]
        with self.lock, self.conn:
            self.conn.executemany("INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def table(self) -> dict[str, np.ndarray]:
        """Results summed over chunks, per fault, with the fault's attributes."""
        rows = self.conn.execute(
            "SELECT f.id, f.grp, f.site, f.bit, f.model, f.idx, f.step, sum(r.images), "
            "sum(r.sdc1), sum(r.sdc5), sum(r.correct), sum(r.masked), sum(r.due) FROM faults f "
            "JOIN results r ON r.fault = f.id GROUP BY f.id ORDER BY f.id"
        ).fetchall()
        names = (
            "id",
            "group",
            "site",
            "bit",
            "model",
            "index",
            "step",
            "images",
            "sdc1",
            "sdc5",
            "correct",
            "masked",
            "due",
        )
        data = np.array(rows, np.int64).reshape(-1, len(names))
        return {n: data[:, i] for i, n in enumerate(names)}

    def close(self) -> None:
        self.conn.close()


# -------------------------------------------------------------------- tasks
@dataclass(frozen=True)
class Task:
    chunk: int
    start: int  # into the site-sorted fault order
    stop: int


def _tasks(faults: np.ndarray, chunks: int, chunk_images: int, pairs: int) -> list[Task]:
    """Chunk-major tasks over the fault list sorted by site (stable)."""
    per = max(1, (4 * pairs) // max(1, chunk_images))
    order_sites = faults["site"]
    tasks = []
    for chunk in range(chunks):
        start = 0
        while start < len(faults):
            stop = min(len(faults), start + per)
            # keep one site per task where it costs little
            same = np.flatnonzero(order_sites[start:stop] != order_sites[start])
            if len(same) and same[0] > 0:
                stop = start + int(same[0])
            tasks.append(Task(chunk, start, stop))
            start = stop
    return tasks


class _Worker:
    """What runs tasks in one process: an engine and a few golden chunks."""

    def __init__(
        self,
        graph: Graph,
        sites: Sequence[Site],
        x: np.ndarray,
        y: np.ndarray | None,
        chunk_images: int,
        keep: int,
    ) -> None:
        self.engine = Engine(graph, sites)
        self.x, self.y = x, y
        self.chunk_images = chunk_images
        self.keep = max(1, keep)
        self._golden: OrderedDict[int, Golden] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[int, threading.Event] = {}

    def golden(self, chunk: int) -> Golden:
        while True:
            with self._lock:
                if chunk in self._golden:
                    self._golden.move_to_end(chunk)
                    return self._golden[chunk]
                event = self._building.get(chunk)
                if event is None:
                    event = self._building[chunk] = threading.Event()
                    mine = True
                else:
                    mine = False
            if not mine:
                event.wait()
                continue
            lo = chunk * self.chunk_images
            hi = min(len(self.x), lo + self.chunk_images)
            labels = self.y[lo:hi] if self.y is not None else None
            g = self.engine.golden(self.x[lo:hi], labels)
            with self._lock:
                self._golden[chunk] = g
                while len(self._golden) > self.keep:
                    self._golden.popitem(last=False)
                del self._building[chunk]
            event.set()
            return g

    def run(self, faults: np.ndarray, chunk: int) -> Counts:
        from axc.sim.jit import serial

        with serial():
            return self.engine.run(faults, self.golden(chunk))


# Dask workers keep one _Worker per campaign (keyed by its digest).
_REMOTE: dict[str, _Worker] = {}
_REMOTE_LOCK = threading.Lock()


def _remote_task(payload: dict[str, Any], faults: np.ndarray, chunk: int) -> Counts:
    with _REMOTE_LOCK:
        worker = _REMOTE.get(payload["digest"])
        if worker is None:
            _REMOTE.clear()
            worker = _Worker(
                payload["graph"],
                payload["sites"],
                payload["x"],
                payload["y"],
                payload["chunk_images"],
                2,
            )
            _REMOTE[payload["digest"]] = worker
    return worker.run(faults, chunk)


# ---------------------------------------------------------------- campaign
def _digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(str((p.dtype, p.shape)).encode())
            h.update(np.ascontiguousarray(p).tobytes())
        else:
            h.update(json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _graph_digest(graph: Graph) -> str:
    data = graph_to_dict(graph)
    data.get("metadata", {}).pop("inject", None)
    consts = [graph.constants[k] for k in sorted(graph.constants)]
    return _digest(data, *consts)


@dataclass
class Campaign:
    """A fault-injection campaign over ``graph`` (after its passes) on images ``x``.

    ``groups`` (from ``inject`` directives) and ``seed`` determine the fault
    list; ``faults`` (with ``sites``) replays a saved one instead."""

    graph: Graph
    x: np.ndarray
    y: np.ndarray | None
    groups: Sequence[FaultGroup] = ()
    seed: int = 0
    faults: np.ndarray | None = None
    sites: list[Site] | None = None
    out: Path | None = None
    resume: bool = False
    force: bool = False
    scheduler: str | None = None
    threads: int | None = None
    memory: int = DEFAULT_MEMORY
    confidence: float = 0.95
    progress: bool = True
    #: called with (tasks done, tasks in all) after each committed task
    on_task: Callable[[int, int], None] | None = None
    plan: list[dict[str, Any]] = field(default_factory=list)

    def prepare(self) -> tuple[np.ndarray, list[Site]]:
        if self.faults is not None and self.sites is not None:
            self.plan = [
                {"group": -1, "stratum": "replayed", "population": None, "faults": len(self.faults)}
            ]
            return self.faults, self.sites
        if not self.groups:
            raise UserError(
                "no fault groups: the directives need an `inject` statement "
                "(e.g. `inject * site=activations model=bitflip count=1000`), or pass --faults"
            )
        faults, sites, self.plan = generate(self.groups, self.graph, self.seed)
        if not len(faults):
            raise UserError("the fault groups select no fault")
        return faults, sites

    def config(self, faults: np.ndarray) -> dict[str, Any]:
        out = {
            "model": _graph_digest(self.graph),
            "data": _digest(self.x, self.y if self.y is not None else "none"),
            "images": len(self.x),
            "seed": int(self.seed),
            "labels": self.y is not None,
            "groups": [group_to_dict(g) for g in self.groups],
            "faults": _digest(faults),
        }
        if any(g.kind.startswith("pe_") for g in self.groups):
            from axc.faults.pe import array_of

            shape = array_of(self.graph)
            out["array"] = {"rows": shape.rows, "cols": shape.cols, "dataflow": shape.dataflow}
        return out

    def run(self) -> dict[str, Any]:
        faults, sites = self.prepare()
        config = self.config(faults)
        store = self._store(config, sites, faults)
        try:
            self._execute(store, faults, sites)
            return report(store, self.confidence)
        finally:
            store.close()

    def _store(self, config: dict[str, Any], sites: list[Site], faults: np.ndarray) -> ResultsFile:
        if self.out is None:
            import tempfile

            self._tmp = tempfile.TemporaryDirectory(prefix="axc-inject-")
            return ResultsFile.create(
                Path(self._tmp.name) / RESULTS, config, sites, faults, self.plan
            )
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create {self.out}: {exc}") from None
        path = self.out / RESULTS
        if self.resume:
            store = ResultsFile.open(path)
            stored = store.meta("config")
            if stored != config:
                differs = sorted(
                    k for k in set(stored) | set(config) if stored.get(k) != config.get(k)
                )
                store.close()
                raise UserError(
                    f"{path} holds another campaign (it differs in {', '.join(differs)}); "
                    "resume with the same model, directives, data and seed"
                )
            return store
        if path.exists() and not self.force:
            raise UserError(
                f"{self.out} already holds campaign results; --resume continues them, "
                "--force starts over"
            )
        return ResultsFile.create(path, config, sites, faults, self.plan)

    def _execute(self, store: ResultsFile, faults: np.ndarray, sites: list[Site]) -> None:
        order = np.argsort(faults["site"], kind="stable")
        ordered = faults[order]
        engine_probe = Engine(self.graph, sites)
        images = len(self.x)
        chunk_images = int(max(1, min(images, self.memory // (8 * engine_probe.sample_bytes))))
        chunks = -(-images // chunk_images)
        tasks = _tasks(ordered, chunks, chunk_images, engine_probe.pairs_per_batch())
        done = store.done()
        pending = [t for t in tasks if (int(ordered["id"][t.start]), t.chunk) not in done]
        total = sum((t.stop - t.start) * self._chunk_size(t.chunk, chunk_images) for t in tasks)
        waiting = set(pending)
        finished = sum(
            (t.stop - t.start) * self._chunk_size(t.chunk, chunk_images)
            for t in tasks
            if t not in waiting
        )
        bar = _bar(total, finished, self.progress)
        count = [len(tasks) - len(pending)]

        def record(task: Task, counts: Counts) -> None:
            store.write(ordered["id"][task.start : task.stop], task.chunk, counts)
            bar.update((task.stop - task.start) * self._chunk_size(task.chunk, chunk_images))
            count[0] += 1
            if self.on_task is not None:
                self.on_task(count[0], len(tasks))

        try:
            if self.scheduler:
                self._run_dask(pending, ordered, sites, chunk_images, record)
            else:
                self._run_local(pending, ordered, sites, chunk_images, record)
        except KeyboardInterrupt:
            raise CampaignInterrupted(
                f"interrupted: {count[0]} of {len(tasks)} tasks are saved in {store.path}; "
                "run again with --resume to continue"
            ) from None
        finally:
            bar.close()

    def _chunk_size(self, chunk: int, chunk_images: int) -> int:
        return min(chunk_images, len(self.x) - chunk * chunk_images)

    def _run_local(
        self,
        pending: list[Task],
        ordered: np.ndarray,
        sites: list[Site],
        chunk_images: int,
        record: Callable[[Task, Counts], None],
    ) -> None:
        from axc.sim.executor import _single_threaded_blas, default_threads

        threads = max(1, self.threads or default_threads())
        worker = _Worker(self.graph, sites, self.x, self.y, chunk_images, threads + 1)
        if threads == 1:
            for task in pending:
                record(task, worker.run(ordered[task.start : task.stop], task.chunk))
            return
        with _single_threaded_blas(), ThreadPoolExecutor(threads, "axc-inject") as pool:
            queue = iter(pending)
            running: dict[Future[Counts], Task] = {}

            def top_up() -> None:  # at most two tasks per thread in flight
                for task in queue:
                    fut = pool.submit(worker.run, ordered[task.start : task.stop], task.chunk)
                    running[fut] = task
                    if len(running) >= 2 * threads:
                        return

            try:
                top_up()
                while running:
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        task = running.pop(fut)
                        record(task, fut.result())
                    top_up()
            except BaseException:
                for fut in running:
                    fut.cancel()
                raise

    def _run_dask(
        self,
        pending: list[Task],
        ordered: np.ndarray,
        sites: list[Site],
        chunk_images: int,
        record: Callable[[Task, Counts], None],
    ) -> None:
        with _client(self.scheduler or "") as client:
            from distributed import as_completed

            payload = {
                "digest": _digest(self.config(ordered), chunk_images),
                "graph": self.graph,
                "sites": sites,
                "x": self.x,
                "y": self.y,
                "chunk_images": chunk_images,
            }
            [remote] = client.scatter([payload], broadcast=True)
            futures = {
                client.submit(
                    _remote_task, remote, ordered[t.start : t.stop], t.chunk, pure=False
                ): t
                for t in pending
            }
            try:
                for fut in as_completed(list(futures)):
                    record(futures[fut], fut.result())
            except BaseException:
                client.cancel(list(futures))
                raise


@contextmanager
def _client(address: str) -> Iterator[Any]:
    try:
        from distributed import Client
    except ImportError:
        raise UserError("--scheduler needs dask.distributed: pip install 'axc[dist]'") from None
    try:
        client = Client(address, timeout=float(os.environ.get("AXC_DASK_TIMEOUT", "10")))
    except (OSError, TimeoutError, ValueError) as exc:
        raise UserError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    try:
        yield client
    finally:
        client.close()


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(total: int, done: int, show: bool) -> Any:
    if not show:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=done,
        unit="inf",
        unit_scale=True,
        desc="faulty inferences",
        leave=False,
        dynamic_ncols=True,
    )


# ------------------------------------------------------------------ report
def _rates(
    t: dict[str, np.ndarray], sel: np.ndarray, confidence: float, labels: bool
) -> dict[str, Any]:
    n = int(t["images"][sel].sum())
    out: dict[str, Any] = {"faults": int(sel.sum()), "inferences": n}
    keys = ["sdc1", "sdc5", "masked", "due"] + (["correct"] if labels else [])
    for key in keys:
        k = int(t[key][sel].sum())
        lo, hi = wilson(k, n, confidence)
        name = "accuracy" if key == "correct" else key
        # faults as the independent draws: the images of one fault share it
        flo, fhi = clustered_wilson(t[key][sel], t["images"][sel], confidence)
        out[name] = {
            "count": k,
            "rate": k / n if n else 0.0,
            "ci": [lo, hi],
            "ci_faults": [flo, fhi],
        }
    return out


def report(store: ResultsFile, confidence: float = 0.95) -> dict[str, Any]:
    """Totals and breakdowns (per layer, site, bit, model) with Wilson intervals."""
    t = store.table()
    sites = store.sites()
    config = store.meta("config")
    labels = bool(config.get("labels"))
    all_ = np.ones(len(t["id"]), bool)
    total_faults = store.conn.execute("SELECT count(*) FROM faults").fetchone()[0]
    out: dict[str, Any] = {
        "seed": config["seed"],
        "images": config["images"],
        "faults": int(total_faults),
        "faults_done": len(t["id"]),
        "complete": len(t["id"]) == int(total_faults),
        "confidence": confidence,
        "plan": store.meta("plan"),
        "total": _rates(t, all_, confidence, labels),
    }
    layer_of = np.array([sites[int(s)].layer for s in t["site"]], dtype=object)
    kind_of = np.array([sites[int(s)].kind for s in t["site"]], dtype=object)
    out["per_layer"] = {
        name: _rates(t, layer_of == name, confidence, labels)
        for name in dict.fromkeys(s.layer for s in sites)
        if (layer_of == name).any()
    }
    out["per_site"] = {
        k: _rates(t, kind_of == k, confidence, labels) for k in dict.fromkeys(kind_of.tolist())
    }
    out["per_bit"] = {
        int(b): _rates(t, t["bit"] == b, confidence, labels) for b in np.unique(t["bit"])
    }
    out["per_model"] = {
        MODELS[int(m)]: _rates(t, t["model"] == m, confidence, labels)
        for m in np.unique(t["model"])
    }
    per_layer_bit: dict[str, dict[int, float]] = {}
    for name in out["per_layer"]:
        row = {}
        for b in np.unique(t["bit"][layer_of == name]):
            sel = (layer_of == name) & (t["bit"] == b)
            n = int(t["images"][sel].sum())
            row[int(b)] = int(t["sdc1"][sel].sum()) / n if n else 0.0
        per_layer_bit[name] = row
    out["per_layer_bit_sdc1"] = per_layer_bit
    pe_rows = np.array([sites[int(s)].kind.startswith("pe_") for s in t["site"]], bool)
    if pe_rows.any():
        cols = int(config["array"]["cols"])
        per_pe: dict[str, Any] = {}
        for index in np.unique(t["index"][pe_rows]):
            pe_row, pe_col = divmod(int(index), cols)
            per_pe[f"{pe_row},{pe_col}"] = _rates(
                t, pe_rows & (t["index"] == index), confidence, labels
            )
        out["per_pe"] = per_pe
        out["array"] = config.get("array")
        permanent = pe_rows & (t["step"] < 0)
        out["per_pe_kind"] = {
            "stuck-at": _rates(t, permanent, confidence, labels),
            "transient": _rates(t, pe_rows & ~permanent, confidence, labels),
        }
    out["_per_fault"] = {
        "id": t["id"],
        "layer": layer_of,
        "images": t["images"],
        "sdc1": t["sdc1"],
        "due": t["due"],
    }
    return out
