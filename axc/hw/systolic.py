"""The analytical model of axc's systolic array: tiling and cycles in closed form.

A conv or GEMM layer is a matrix product ``Y[N, M] = X[N, K] W[K, M]`` (im2col
for a convolution: N = images x output pixels, K = input channels x kernel
taps, M = output channels; each group of a grouped convolution is its own
product). An R x C array computes it tile by tile:

* weight-stationary (``ws``): a tile holds R rows of W (k) and C columns (m)
  in the PEs, and streams all N rows of X through them. Tiles run m-major,
  the k tiles of one m block one after another; the first adds the bias, the
  others add to the partial sums already written, the last requantizes.
* output-stationary (``os``): a tile keeps R rows (n) by C columns (m) of Y in
  the PEs' accumulators, and streams the K products through them.

Every tile, full or partial, takes

    cycles = T + 2R + C - 1

busy cycles, T being the streamed length (N for ws, K for os): R cycles of
weight preload (ws) or R of accumulator drain (os), T + R + C - 2 cycles for
the last operand to cross the array (ws adds one for the output register,
os one to clear the accumulators). docs/hardware.md derives it; the RTL's
cycle counter equals it for every tile (tests/backends/test_systolic.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "ArrayShape",
    "GemmCost",
    "Tile",
    "gemm_cost",
    "gemm_cycles",
    "scalesim_cycles",
    "scalesim_paper_cycles",
    "tile_cycles",
    "tiles",
]

DATAFLOWS = ("ws", "os")


@dataclass(frozen=True)
class ArrayShape:
    rows: int
    cols: int
    dataflow: str = "ws"

    def __post_init__(self) -> None:
        if self.rows < 1 or self.cols < 1:
            raise ValueError(f"an array needs at least one row and column, got {self}")
        if self.dataflow not in DATAFLOWS:
            raise ValueError(
                f"dataflow must be one of {', '.join(DATAFLOWS)}, got {self.dataflow!r}"
            )


@dataclass(frozen=True)
class Tile:
    """One pass of the array over ``Y[n0:n0+n, m0:m0+m]``, reducing ``k0:k0+k``."""

    index: int
    n0: int
    n: int
    k0: int
    k: int
    m0: int
    m: int
    first: bool  # adds the bias (the first pass over these outputs)
    last: bool  # requantizes (the last pass over these outputs)
    cycles: int


def tile_cycles(array: ArrayShape, streamed: int) -> int:
    """Busy cycles of one tile that streams ``streamed`` operand rows."""
    return streamed + 2 * array.rows + array.cols - 1


def tiles(array: ArrayShape, n: int, k: int, m: int) -> list[Tile]:
    """The tiles of ``Y[n, m] = X[n, k] W[k, m]`` in the order the array runs them."""
    if min(n, k, m) < 1:
        raise ValueError(f"empty product {n}x{k}x{m}")
    r, c = array.rows, array.cols
    out: list[Tile] = []
    for m0 in range(0, m, c):
        mw = min(c, m - m0)
        if array.dataflow == "ws":
            for k0 in range(0, k, r):
                out.append(
                    Tile(
                        len(out), 0, n, k0, min(r, k - k0), m0, mw,
                        k0 == 0, k0 + r >= k, tile_cycles(array, n),
                    )
                )  # fmt: skip
        else:
            for n0 in range(0, n, r):
                out.append(
                    Tile(
                        len(out), n0, min(r, n - n0), 0, k, m0, mw,
                        True, True, tile_cycles(array, k),
                    )
                )  # fmt: skip
    return out


def gemm_cycles(array: ArrayShape, n: int, k: int, m: int) -> int:
    """Busy cycles of the whole product: the sum over its tiles."""
    return _folds(array, n, k, m) * tile_cycles(array, n if array.dataflow == "ws" else k)


def _folds(array: ArrayShape, n: int, k: int, m: int) -> int:
    r, c = array.rows, array.cols
    return math.ceil(m / c) * (math.ceil(k / r) if array.dataflow == "ws" else math.ceil(n / r))


def scalesim_paper_cycles(array: ArrayShape, n: int, k: int, m: int) -> int:
    """SCALE-Sim's published compute-cycle formula for the same mapping
    (Samajdar et al., ISPASS 2020): (2 S_R + S_C + T - 2) cycles per fold."""
    t = n if array.dataflow == "ws" else k
    return _folds(array, n, k, m) * (t + 2 * array.rows + array.cols - 2)


def scalesim_cycles(array: ArrayShape, n: int, k: int, m: int) -> int:
    """The compute cycles SCALE-Sim v3 (pip ``scalesim`` 3.0.0) reports for the
    same mapping: ``folds (2R + C + T - 2) - 1`` for ws and ``folds (R + C + T - 2)
    - 1`` for os. It does not count the os drain (it overlaps the next fold's
    stream) and counts from cycle 0."""
    r, c = array.rows, array.cols
    t = n if array.dataflow == "ws" else k
    per_fold = t + (2 * r if array.dataflow == "ws" else r) + c - 2
    return _folds(array, n, k, m) * per_fold - 1


@dataclass(frozen=True)
class GemmCost:
    """What one product costs on the array: cycles, work, memory traffic (in
    words of the memory ports: a row of R or C lanes is R or C words) and the
    buffers the tiles need."""

    cycles: int
    macs: int  # useful multiply-accumulates, N K M
    tiles: int
    x_words: int  # operand reads
    w_words: int
    y_reads: int  # accumulator reads (accumulating across k tiles)
    y_writes: int  # accumulator writes
    out_writes: int  # output codes written
    x_buffer: int  # words of operand memory one tile reads
    w_buffer: int
    y_buffer: int  # accumulator memory one m block needs

    def utilization(self, array: ArrayShape) -> float:
        """Useful MACs over what the array could do in those cycles."""
        return self.macs / max(1, self.cycles * array.rows * array.cols)

    def latency_us(self, clock_mhz: float) -> float:
        return self.cycles / clock_mhz

    def to_json(self, array: ArrayShape, clock_mhz: float) -> dict[str, object]:
        out: dict[str, object] = dict(self.__dict__)
        out["utilization"] = round(self.utilization(array), 4)
        out["latency_us"] = round(self.latency_us(clock_mhz), 3)
        return out


def gemm_cost(array: ArrayShape, n: int, k: int, m: int) -> GemmCost:
    """Cycles, traffic and buffers of ``Y[n, m] = X[n, k] W[k, m]`` tile by tile,
    as the generated controller moves the data (docs/hardware.md)."""
    r, c = array.rows, array.cols
    plan = tiles(array, n, k, m)
    x = w = y_in = y_out = q = 0
    for t in plan:
        if array.dataflow == "ws":
            x += n * r  # every input row, R lanes
            w += r * c  # the preload
            y_in += 0 if t.first else n * c
            y_out += n * c
            q += n * c if t.last else 0
        else:
            x += k * r
            w += k * c
            y_out += t.n * c
            q += t.n * c
    ws = array.dataflow == "ws"
    return GemmCost(
        cycles=sum(t.cycles for t in plan),
        macs=n * k * m,
        tiles=len(plan),
        x_words=x,
        w_words=w,
        y_reads=y_in,
        y_writes=y_out,
        out_writes=q,
        x_buffer=(n if ws else k) * r,
        w_buffer=(r if ws else k) * c,
        y_buffer=(n if ws else r) * c,
    )
