"""Error metrics of a multiplier, computed exhaustively (EvoApproxLib's definitions).

Over every operand pair of the multiplier's natural domain (the unsigned
``n``-bit operands of a sign-magnitude multiplier, the two's complement ones
of a signed multiplier), with ``e = approximate - exact``:

========  ==========================================  ==========================
key       absolute                                    relative (``*_percent``)
========  ==========================================  ==========================
``mae``   mean |e|                                    mae / 2^(2n) * 100
``wce``   max |e|                                     wce / 2^(2n) * 100
``mre``   mean |e| / max(1, |exact|)                  mre * 100
``ep``    fraction of pairs with e != 0               ep * 100
``mse``   mean e^2                                    mse / 2^(4n) * 100
``bias``  mean e                                      bias / 2^(2n) * 100
========  ==========================================  ==========================
"""

from __future__ import annotations

import numpy as np

from axc.arith.multipliers import Multiplier

__all__ = ["KEYS", "error_metrics", "natural_domain"]

KEYS = ("mae", "wce", "mre", "ep", "mse", "bias")


def natural_domain(m: Multiplier) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Operands a (column), b (row) and the table over the natural domain."""
    if m.sign_magnitude:
        lim = (1 << m.bits) - 1
        a = np.arange(lim + 1, dtype=np.int64)
        b = np.arange(lim + 1, dtype=np.int64)
    else:
        a = np.arange(m.a_lo, m.a_hi + 1, dtype=np.int64)
        b = np.arange(m.b_lo, m.b_hi + 1, dtype=np.int64)
    table = m.table[np.ix_(a - m.a_lo, b - m.b_lo)].astype(np.int64)
    return a[:, None], b[None, :], table


def error_metrics(m: Multiplier) -> dict[str, float]:
    a, b, table = natural_domain(m)
    exact = a * b
    e = (table - exact).astype(np.float64)
    scale = float(1 << (2 * m.bits))
    out = {
        "mae": float(np.abs(e).mean()),
        "wce": float(np.abs(e).max()),
        "mre": float((np.abs(e) / np.maximum(1, np.abs(exact))).mean()),
        "ep": float((e != 0).mean()),
        "mse": float((e * e).mean()),
        "bias": float(e.mean()),
    }
    out["mae_percent"] = out["mae"] / scale * 100
    out["wce_percent"] = out["wce"] / scale * 100
    out["mre_percent"] = out["mre"] * 100
    out["ep_percent"] = out["ep"] * 100
    out["mse_percent"] = out["mse"] / scale**2 * 100
    out["bias_percent"] = out["bias"] / scale * 100
    return out
