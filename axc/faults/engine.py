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


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row (first axis): bit-identical?"""
    a2, b2 = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    if a2.dtype.kind == "f":
        a2 = a2.view(np.dtype(f"u{a2.dtype.itemsize}"))
        b2 = b2.view(np.dtype(f"u{b2.dtype.itemsize}"))
    return np.asarray((a2 == b2).all(axis=1))


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
        self.last_use: dict[str, int] = {}
        for step, node in enumerate(self.order):
            for t in node.inputs:
                if t:
                    self.last_use[t] = step
        for t in graph.outputs:
            self.last_use[t] = len(self.order)
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
        return int(min(1 << 16, max(64, _PAIR_BYTES // (3 * self.sample_bytes))))

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
                    self._constant_fault(site, faults[j : j + 1], golden, counts, j)
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
            value = np.array(g[site.tensor][ii])
            self._corrupt(value, site, f)
            step = self.executor_step_producing(site.tensor)
            self._propagate(step, {site.tensor: value}, fi, ii, golden, counts)
            return
        step = self.step_of[site.layer]
        node = self.order[step]
        if site.kind == "inputs":
            value = np.array(g[site.tensor][ii])
            self._corrupt(value, site, f)
            args = [value] + [self._golden_arg(t, ii, g) for t in node.inputs[1:]]
            outs = self.executor.plan(step)(args)
        else:  # accumulators, psums
            acc = np.array(self._accumulators(step, golden)[ii])
            if site.kind == "accumulators":
                self._corrupt(acc, site, f)
            else:
                self._corrupt_psum(acc, site, node, f, ii, golden)
            outs = [self._requantize(step, acc)]
        live = {t: self.executor.cast(t, v) for t, v in zip(node.outputs, outs, strict=True)}
        self._propagate(step, live, fi, ii, golden, counts)

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
        node = self.order[step]
        with golden.lock:
            if node.name in golden.accumulators:
                return golden.accumulators[node.name]
        plan = self.executor.plan(step)
        if not hasattr(plan, "requant"):
            raise UserError(f"layer {node.name!r}: accumulator faults need constant weights")
        bits = int(node.attrs["acc_bits"])

        def keep(total: np.ndarray, offset: np.ndarray, channel_last: bool = False) -> np.ndarray:
            shape = [1] * total.ndim
            shape[-1 if channel_last else 1] = -1
            return _wrap(np.asarray(total).astype(np.int64) + offset.reshape(shape), bits)

        args = [golden.values[node.inputs[0]]] + [
            self.graph.constants.get(t) if t else None for t in node.inputs[1:]
        ]
        acc = plan(args, finish=keep)[0]  # type: ignore[call-arg]
        with golden.lock:
            golden.accumulators[node.name] = acc
        return acc

    def _requantize(self, step: int, acc: np.ndarray) -> np.ndarray:
        node = self.order[step]
        plan: Any = self.executor.plan(step)
        m = acc.shape[1] if node.op == "QConv" else acc.shape[-1]
        zero = np.zeros(m, np.int64)
        if node.op == "QConv":
            out = plan.requant(acc.reshape(acc.shape[0], m, -1), zero)
        else:
            out = plan.requant(acc.reshape(-1, m), zero, channel_last=True)
        return out.reshape(acc.shape)

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
        np.add.at(counts.images, fi, 1)
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
        if out is None:  # the fault never reached the output
            self._count_masked(fi, ii, counts, golden)
            return
        self._score(out, fi, ii, counts, golden)

    def _drop_masked(
        self,
        live: dict[str, np.ndarray],
        fi: np.ndarray,
        ii: np.ndarray,
        g: dict[str, np.ndarray],
        counts: Counts,
        golden: Golden,
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        same = np.ones(len(fi), bool)
        for t, v in live.items():
            same &= _same(v, g[t][ii])
        if not same.any():
            return fi, ii, live
        self._count_masked(fi[same], ii[same], counts, golden)
        keep = ~same
        return fi[keep], ii[keep], {t: v[keep] for t, v in live.items()}

    @staticmethod
    def _count_masked(fi: np.ndarray, ii: np.ndarray, counts: Counts, golden: Golden) -> None:
        np.add.at(counts.masked, fi, 1)
        if golden.labels is not None:
            np.add.at(counts.correct, fi, (golden.top1[ii] == golden.labels[ii]).astype(np.int64))

    @staticmethod
    def _score(
        out: np.ndarray, fi: np.ndarray, ii: np.ndarray, counts: Counts, golden: Golden
    ) -> None:
        flat = out.reshape(out.shape[0], -1).astype(np.float64)
        ref = golden.output[ii].reshape(len(ii), -1)
        identical = _same(out, golden.output[ii])
        broken = np.isnan(flat).any(axis=1)  # an unusable output: every SDC counts
        top1 = flat.argmax(axis=1)
        gt = golden.top1[ii]
        target = flat[np.arange(len(ii)), gt]
        above = (flat > target[:, None]).sum(axis=1)
        sdc1 = broken | (top1 != gt)
        sdc5 = broken | (above >= 5)
        del ref
        np.add.at(counts.masked, fi, identical.astype(np.int64))
        np.add.at(counts.sdc1, fi, sdc1.astype(np.int64))
        np.add.at(counts.sdc5, fi, sdc5.astype(np.int64))
        if golden.labels is not None:
            good = ~broken & (top1 == golden.labels[ii])
            np.add.at(counts.correct, fi, good.astype(np.int64))
