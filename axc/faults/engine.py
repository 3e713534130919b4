"""Running faults: golden activations, re-execution from the faulty layer, early masking.

For a chunk of images the golden run keeps every tensor. A batch of
(fault, image) pairs then starts from the faulty layer: the corrupted tensor
is the golden one with one element's word changed, and only the layers that
depend on it run again, on all pairs at once. After each layer, the pairs
whose live tensors all equal the golden ones bit for bit are provably masked
and leave the batch. What reaches the output is compared with the golden
output of the same image.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from axc.errors import UserError
from axc.faults.model import Site, apply_masks
from axc.ir import Graph
from axc.sim.executor import Executor

__all__ = ["Counts", "Engine"]

_PAIR_BYTES = 48 << 20  # working set of one batch of pairs


@dataclass
class Counts:
    """Per fault of a task: faulty inferences and what became of them."""

    images: np.ndarray
    sdc1: np.ndarray
    sdc5: np.ndarray
    correct: np.ndarray
    masked: np.ndarray
    due: np.ndarray

    @classmethod
    def zeros(cls, n: int) -> Counts:
        return cls(*(np.zeros(n, np.int64) for _ in range(6)))


def _words(a: np.ndarray) -> np.ndarray:
    """(rows, -1) view of ``a`` whose == is bit identity (floats as unsigned words)."""
    flat = a.reshape(a.shape[0], -1)
    if flat.dtype.kind == "f":
        flat = flat.view(np.dtype(f"u{flat.dtype.itemsize}"))
    return flat


@numba.njit(nogil=True, cache=True)
def _equal_rows(
    values: np.ndarray, golden: np.ndarray, rows: np.ndarray, same: np.ndarray
) -> None:  # pragma: no cover - compiled
    """same[j] &= values[j] == golden[rows[j]] (element by element, early exit)."""
    width = values.shape[1]
    for j in range(values.shape[0]):
        if not same[j]:
            continue
        r = rows[j]
        for k in range(width):
            if values[j, k] != golden[r, k]:
                same[j] = False
                break


def _same(a: np.ndarray, golden: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per row j: is a[j] bit-identical to golden[rows[j]]?"""
    same = np.ones(a.shape[0], np.bool_)
    _equal_rows(_words(a), _words(golden), rows.astype(np.int64), same)
    return same


def _wrap(acc: np.ndarray, bits: int) -> np.ndarray:
    if bits >= 64:
        return acc
    half = np.int64(1) << np.int64(bits - 1)
    return ((acc + half) & ((half << np.int64(1)) - np.int64(1))) - half


class Golden:
    """Every tensor of one chunk of images, plus what metrics need of the output."""

    def __init__(self, values: dict[str, np.ndarray], output: np.ndarray, labels: Any) -> None:
        self.values = values
        self.output = output
        flat = output.reshape(output.shape[0], -1)
        self.top1 = flat.argmax(axis=1)
        self.labels = labels
        self.accumulators: dict[str, np.ndarray] = {}
        self.lock = threading.Lock()


class Engine:
    """A graph prepared for fault injection."""

    def __init__(self, graph: Graph, sites: Sequence[Site]) -> None:
        self.graph = graph
        self.sites = list(sites)
        self.executor = Executor(graph, threads=1)
        self.order = self.executor.order
        self.step_of = {n.name: i for i, n in enumerate(self.order)}
        self.output = graph.outputs[0]
        #: per-sample detection flags (protection): a raised one makes a DUE
        self.flags = [t for t in graph.metadata.get("due_outputs", []) if t in graph.tensors]
        self.last_use: dict[str, int] = {}
        for step, node in enumerate(self.order):
            for t in node.inputs:
                if t:
                    self.last_use[t] = step
        for t in graph.outputs:
            self.last_use[t] = len(self.order)
        self._pool_after: dict[str, int] = {}
        for t in graph.tensors:
            pool = None if t in graph.constants else self._pooled(t)
            if pool is not None:
                self._pool_after[t] = pool
        sample_bytes = 0
        for name, info in graph.tensors.items():
            if name in graph.constants or not info.shape or info.shape[0] != "N":
                continue
            size = math.prod(int(d) for d in info.shape[1:])
            sample_bytes += size * max(1, info.dtype.numpy_dtype().itemsize)
        self.sample_bytes = max(1, sample_bytes)

    # ------------------------------------------------------------- golden
    def golden(self, x: np.ndarray, labels: np.ndarray | None) -> Golden:
        values: dict[str, np.ndarray] = {}

        def keep(name: str, value: np.ndarray) -> None:
            values[name] = value

        out = self.executor.run({self.graph.inputs[0]: x}, observe=keep)
        return Golden(values, out[self.output], labels)

    def pairs_per_batch(self) -> int:
        return int(min(1 << 16, max(1, _PAIR_BYTES // (3 * self.sample_bytes))))

    # -------------------------------------------------------------- faults
    def run(self, faults: np.ndarray, golden: Golden) -> Counts:
        """Counts for ``faults`` (one site each, any mix) against every image of ``golden``."""
        with np.errstate(all="ignore"):  # corrupted floats overflow, as they would
            return self._run(faults, golden)

    def _run(self, faults: np.ndarray, golden: Golden) -> Counts:
        counts = Counts.zeros(len(faults))
        images = golden.output.shape[0]
        batch = self.pairs_per_batch()
        for site_id in np.unique(faults["site"]):
            mine = np.flatnonzero(faults["site"] == site_id)
            site = self.sites[int(site_id)]
            if site.kind in ("weights", "biases"):
                for j in mine:
                    self._constant_fault(site, faults[j : j + 1], golden, counts, int(j))
                continue
            per = max(1, batch // images)
            for start in range(0, len(mine), per):
                local = mine[start : start + per]
                fi = np.repeat(local, images)
                ii = np.tile(np.arange(images), len(local))
                self._pairs(site, faults, fi, ii, golden, counts)
        return counts

    def _pairs(
        self,
        site: Site,
        faults: np.ndarray,
        fi: np.ndarray,
        ii: np.ndarray,
        golden: Golden,
        counts: Counts,
    ) -> None:
        f = faults[fi]
        g = golden.values
        if site.kind == "activations":
            pool = self._pool_after.get(site.tensor)
            if pool is not None:
                self._through_pool(pool, site, f, fi, ii, golden, counts)
                return
            value = g[site.tensor][ii]  # fancy indexing copies
            self._corrupt(value, site, f)
            step = self.executor_step_producing(site.tensor)
            self._propagate(step, {site.tensor: value}, fi, ii, golden, counts)
            return
        step = self.step_of[site.layer]
        node = self.order[step]
        if site.kind == "inputs":
            value = g[site.tensor][ii]
            self._corrupt(value, site, f)
            args = [value] + [self._golden_arg(t, ii, g) for t in node.inputs[1:]]
            outs = self.executor.plan(step)(args)
        elif site.kind.startswith("pe_"):
            outs = self._from_accumulators(step, self._pe_accumulators(step, site, f, ii, golden))
        else:  # accumulators, psums
            acc = self._accumulators(step, golden)[ii]
            if site.kind == "accumulators":
                self._corrupt(acc, site, f)
            else:
                self._corrupt_psum(acc, site, node, f, ii, golden)
            outs = self._from_accumulators(step, acc)
        live = {t: self.executor.cast(t, v) for t, v in zip(node.outputs, outs, strict=True)}
        self._propagate(step, live, fi, ii, golden, counts)

    def _pooled(self, tensor: str) -> int | None:
        """The step of the 2x2/2 MaxPool that alone reads ``tensor``, if one does."""
        users = self.graph.consumers(tensor)
        if len(users) != 1 or tensor in self.graph.outputs:
            return None
        node = users[0]
        a = node.attrs
        plain = (
            node.op == "MaxPool"
            and tuple(a.get("kernel_shape", ())) == (2, 2)
            and tuple(a["strides"]) == (2, 2)
            and not any(a["pads"])
            and tuple(a["dilations"]) == (1, 1)
            and len(self.graph.tensors[tensor].shape) == 4
        )
        return self.step_of[node.name] if plain else None

    def _through_pool(
        self,
        step: int,
        site: Site,
        f: np.ndarray,
        fi: np.ndarray,
        ii: np.ndarray,
        golden: Golden,
        counts: Counts,
    ) -> None:
        """A fault in a tensor that only a 2x2/2 MaxPool reads changes at most
        one pooled value: recompute that window alone (the kernel's order of
        comparisons, so NaN and signed zeros come out alike), drop the pairs
        whose pooled value is unchanged, and go on from the pool with the rest."""
        g = golden.values
        x = g[site.tensor]
        pooled_name = self.order[step].outputs[0]
        pooled = g[pooled_name]
        _, _, height, width = x.shape
        c, rest = np.divmod(f["index"], height * width)
        h, w = np.divmod(rest, width)
        oh, ow = h // 2, w // 2
        inside = (oh < pooled.shape[2]) & (ow < pooled.shape[3])  # floor mode drops an edge
        top, left = 2 * np.minimum(oh, pooled.shape[2] - 1), 2 * np.minimum(ow, pooled.shape[3] - 1)
        window = [x[ii, c, top + dy, left + dx] for dy in (0, 1) for dx in (0, 1)]
        hit = (h - top) * 2 + (w - left)
        for k in range(4):
            sel = hit == k
            if sel.any():
                window[k] = np.array(window[k])
                window[k][sel] = apply_masks(
                    window[k][sel], site, f["and_mask"][sel], f["or_mask"][sel], f["xor_mask"][sel]
                )

        def pick(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return np.where((a >= b) | (a != a), a, b)

        new = pick(pick(window[0], window[1]), pick(window[2], window[3]))
        old = pooled[
            ii, c, np.minimum(oh, pooled.shape[2] - 1), np.minimum(ow, pooled.shape[3] - 1)
        ]
        changed = inside & (_words(new[:, None]) != _words(old[:, None]))[:, 0]
        quiet = ~changed
        counts.images += np.bincount(fi[quiet], minlength=len(counts.images))
        self._count_masked(fi[quiet], ii[quiet], counts, golden)
        if not changed.any():
            return
        fi, ii = fi[changed], ii[changed]
        value = pooled[ii]
        value[np.arange(len(ii)), c[changed], oh[changed], ow[changed]] = new[changed]
        self._propagate(step, {pooled_name: value}, fi, ii, golden, counts)

    def executor_step_producing(self, tensor: str) -> int:
        node = self.graph.producer(tensor)
        return -1 if node is None else self.step_of[node.name]

    def _golden_arg(self, t: str, ii: np.ndarray, g: dict[str, np.ndarray]) -> Any:
        if not t:
            return None
        if t in self.graph.constants:
            return self.graph.constants[t]
        return g[t][ii]

    @staticmethod
    def _corrupt(value: np.ndarray, site: Site, f: np.ndarray) -> None:
        flat = value.reshape(value.shape[0], -1)
        rows = np.arange(flat.shape[0])
        idx = f["index"]
        flat[rows, idx] = apply_masks(
            flat[rows, idx], site, f["and_mask"], f["or_mask"], f["xor_mask"]
        )

    # ------------------------------------------------------- accumulators
    def _accumulators(self, step: int, golden: Golden) -> np.ndarray:
        from axc.sim.int_kernels import accumulate

        node = self.order[step]
        with golden.lock:
            if node.name in golden.accumulators:
                return golden.accumulators[node.name]
        plan = self.executor.plan(step)
        if not hasattr(plan, "requant"):
            raise UserError(f"layer {node.name!r}: accumulator faults need constant weights")
        args = [golden.values[node.inputs[0]]] + [
            self.graph.constants.get(t) if t else None for t in node.inputs[1:]
        ]
        acc = accumulate(plan, node.op, args, int(node.attrs["acc_bits"]))
        with golden.lock:
            golden.accumulators[node.name] = acc
        return acc

    def _pe_accumulators(
        self, step: int, site: Site, f: np.ndarray, ii: np.ndarray, golden: Golden
    ) -> np.ndarray:
        """The layer's accumulators with each pair's PE fault (docs/hardware.md):
        the golden ones plus what the fault adds in the tiles it touches."""
        from axc.faults import pe

        node = self.order[step]
        base = self._accumulators(step, golden)
        x = golden.values[node.inputs[0]]
        array = pe.array_of(self.graph)
        out = base[ii].copy()
        for fid in np.unique(f["id"]):
            rows = np.flatnonzero(f["id"] == fid)
            rec = f[rows[0]]
            row, col = divmod(int(rec["index"]), array.cols)
            cycle = int(rec["step"]) - 1 if int(rec["step"]) > 0 else -1
            masks = (int(rec["and_mask"]), int(rec["or_mask"]), int(rec["xor_mask"]))
            out[rows] = pe.layer_accumulators(
                self.graph, node, x[ii[rows]], base[ii[rows]], array, site.kind[3:],
                row, col, masks, cycle,
            )  # fmt: skip
        return out

    def _from_accumulators(self, step: int, acc: np.ndarray) -> list[np.ndarray]:
        from axc.sim.int_kernels import requantize_accumulators

        node = self.order[step]
        plan: Any = self.executor.plan(step)
        if hasattr(plan, "outputs"):  # a checksum layer: its sums see the fault too
            return list(plan.outputs(acc))
        return [requantize_accumulators(plan, node.op, acc)]

    def _corrupt_psum(
        self,
        acc: np.ndarray,
        site: Site,
        node: Any,
        f: np.ndarray,
        ii: np.ndarray,
        golden: Golden,
    ) -> None:
        """acc += corrupt(ps_k) - ps_k, ps_k = bias + the first k products in (c, u, v) order."""
        if node.annotations.get("multiplier") not in (None, "exact"):
            raise UserError(
                f"layer {node.name!r}: partial-sum faults in approximate layers are not supported"
            )
        a = node.attrs
        w = self.graph.constants[node.inputs[1]].astype(np.int64)
        zw = np.asarray(a["w_zero_point"], np.int64).reshape(-1)
        w = w - (zw.reshape((-1,) + (1,) * (w.ndim - 1)) if zw.size > 1 else zw[0])
        bias_name = node.inputs[2] if len(node.inputs) > 2 else ""
        bias = (
            self.graph.constants[bias_name].astype(np.int64)
            if bias_name
            else np.zeros(w.shape[0], np.int64)
        )
        x = golden.values[node.inputs[0]]
        zx = int(a["x_zero_point"])
        idx = f["index"]
        k = f["step"].astype(np.int64)
        m_total = w.shape[0]
        if node.op == "QConv":
            from axc.sim.int_kernels import conv_output_shape
            from axc.sim.kernels import _im2col2d, _pad_spatial

            if len(a["kernel_shape"]) != 2:
                raise UserError(f"layer {node.name!r}: partial-sum faults need a 2-D convolution")
            uniq, where = np.unique(ii, return_inverse=True)
            xp = _pad_spatial(x[uniq], a["pads"], zx)
            out_spatial = conv_output_shape(xp.shape, a)
            pixels = out_spatial[0] * out_spatial[1]
            channel, pos = np.divmod(idx, pixels)
            mg = m_total // a["group"]
            cin = w.shape[1]
            rows = np.empty((len(idx), cin * int(np.prod(a["kernel_shape"]))), np.int64)
            for grp in np.unique(channel // mg):
                sel = np.flatnonzero(channel // mg == grp)
                cols = _im2col2d(xp, int(grp) * cin, cin, a, out_spatial, False, zx)
                rows[sel] = cols[where[sel], :, pos[sel]].astype(np.int64)
            wrow = w.reshape(m_total, -1)[channel]
        else:
            lead = x.reshape(x.shape[0], -1, w.shape[1])
            r, channel = np.divmod(idx, m_total)
            rows = lead[ii, r].astype(np.int64) - zx
            wrow = w[channel]
        terms = rows * wrow
        mask = np.arange(terms.shape[1])[None, :] < k[:, None]
        ps = _wrap(bias[channel] + (terms * mask).sum(axis=1), site.width)
        bad = apply_masks(ps, site, f["and_mask"], f["or_mask"], f["xor_mask"])
        flat = acc.reshape(acc.shape[0], -1)
        at = np.arange(flat.shape[0])
        flat[at, idx] = _wrap(flat[at, idx] + (bad.astype(np.int64) - ps), site.width)

    # ------------------------------------------------------------ weights
    def _constant_fault(
        self, site: Site, f: np.ndarray, golden: Golden, counts: Counts, j: int
    ) -> None:
        step = self.step_of[site.layer]
        node = self.order[step]
        value = np.array(self.graph.constants[site.tensor])
        self._corrupt(value.reshape(1, -1), site, np.repeat(f, 1))
        plan = self.executor.plan_with(step, {site.tensor: value})
        images = golden.output.shape[0]
        ii = np.arange(images)
        args = [self._golden_arg(t, ii, golden.values) for t in node.inputs]
        args[node.inputs.index(site.tensor)] = value
        outs = plan(args)
        live = {t: self.executor.cast(t, v) for t, v in zip(node.outputs, outs, strict=True)}
        fi = np.full(images, j)
        self._propagate(step, live, fi, ii, golden, counts)

    # -------------------------------------------------------- propagation
    def _propagate(
        self,
        after: int,
        live: dict[str, np.ndarray],
        fi: np.ndarray,
        ii: np.ndarray,
        golden: Golden,
        counts: Counts,
    ) -> None:
        g = golden.values
        counts.images += np.bincount(fi, minlength=len(counts.images))
        fi, ii, live = self._drop_masked(live, fi, ii, g, counts, golden)
        for step in range(after + 1, len(self.order)):
            if not len(fi):
                return
            node = self.order[step]
            if not any(t in live for t in node.inputs):
                continue
            args = [live[t] if t in live else self._golden_arg(t, ii, g) for t in node.inputs]
            outs = self.executor.plan(step)(args)
            for t, v in zip(node.outputs, outs, strict=True):
                if t:
                    live[t] = self.executor.cast(t, v)
            for t in list(live):
                if self.last_use.get(t, -1) <= step:
                    del live[t]
            fi, ii, live = self._drop_masked(live, fi, ii, g, counts, golden)
        if not len(fi):
            return
        out = live.get(self.output)
        if out is None:
            out = g[self.output][ii]
        flagged = np.zeros(len(fi), np.bool_)
        for name in self.flags:
            if name in live:
                flagged |= live[name].reshape(len(fi), -1).any(axis=1)
        self._score(out, flagged, fi, ii, counts, golden)

    def _drop_masked(
        self,
        live: dict[str, np.ndarray],
        fi: np.ndarray,
        ii: np.ndarray,
        g: dict[str, np.ndarray],
        counts: Counts,
        golden: Golden,
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        same = np.ones(len(fi), np.bool_)
        rows = ii.astype(np.int64)
        for t, v in live.items():
            _equal_rows(_words(v), _words(g[t]), rows, same)
        if not same.any():
            return fi, ii, live
        self._count_masked(fi[same], ii[same], counts, golden)
        keep = ~same
        return fi[keep], ii[keep], {t: v[keep] for t, v in live.items()}

    @staticmethod
    def _count_masked(fi: np.ndarray, ii: np.ndarray, counts: Counts, golden: Golden) -> None:
        counts.masked += np.bincount(fi, minlength=len(counts.masked))
        if golden.labels is not None:
            right = golden.top1[ii] == golden.labels[ii]
            counts.correct += np.bincount(fi, right, minlength=len(counts.correct)).astype(np.int64)

    @staticmethod
    def _score(
        out: np.ndarray,
        flagged: np.ndarray,
        fi: np.ndarray,
        ii: np.ndarray,
        counts: Counts,
        golden: Golden,
    ) -> None:
        """Outcome of each pair; a flagged one is a detected fault (DUE), not an SDC."""
        flat = out.reshape(out.shape[0], -1).astype(np.float64)
        identical = _same(out, golden.output, ii) & ~flagged
        broken = np.isnan(flat).any(axis=1)  # an unusable output: every SDC counts
        top1 = flat.argmax(axis=1)
        gt = golden.top1[ii]
        target = flat[np.arange(len(ii)), gt]
        above = (flat > target[:, None]).sum(axis=1)
        sdc1 = (broken | (top1 != gt)) & ~flagged
        sdc5 = (broken | (above >= 5)) & ~flagged
        counts.due += np.bincount(fi, flagged, minlength=len(counts.due)).astype(np.int64)
        counts.masked += np.bincount(fi, identical, minlength=len(counts.masked)).astype(np.int64)
        counts.sdc1 += np.bincount(fi, sdc1, minlength=len(counts.sdc1)).astype(np.int64)
        counts.sdc5 += np.bincount(fi, sdc5, minlength=len(counts.sdc5)).astype(np.int64)
        if golden.labels is not None:
            good = ~broken & (top1 == golden.labels[ii])
            counts.correct += np.bincount(fi, good, minlength=len(counts.correct)).astype(np.int64)
