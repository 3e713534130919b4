"""Plots for what people would rather look at than read. matplotlib is optional
(``pip install axc[plot]``); a missing one is a clear user error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from axc.errors import ToolError

__all__ = ["plot_multiplier_error"]


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ToolError("plots need matplotlib: pip install 'axc[plot]'") from None
    return plt


def plot_multiplier_error(multiplier: Any, path: str | Path) -> Path:
    """A heat map of approximate - exact over the operand grid, and the
    distribution of the error, in one figure."""
    from axc.arith.metrics import error_metrics, natural_domain

    plt = _pyplot()
    a, b, table = natural_domain(multiplier)
    error = table - a * b
    metrics = error_metrics(multiplier)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    bound = max(1, int(np.abs(error).max()))
    image = left.imshow(
        error,
        origin="lower",
        cmap="RdBu_r",
        vmin=-bound,
        vmax=bound,
        extent=(int(b.min()), int(b.max()), int(a.min()), int(a.max())),
        aspect="auto",
    )
    left.set_xlabel("b")
    left.set_ylabel("a")
    label = multiplier.name + (f"{tuple(multiplier.params)}" if multiplier.params else "")
    left.set_title(f"{label.replace(',)', ')')}: error m(a, b) - a*b")
    fig.colorbar(image, ax=left)
    right.hist(error.ravel(), bins=101, color="tab:blue")
    right.set_yscale("log")
    right.set_xlabel("error")
    right.set_ylabel("operand pairs")
    right.set_title(
        f"MAE {metrics['mae']:.1f}  WCE {metrics['wce']:.0f}  "
        f"MRE {metrics['mre_percent']:.2f}%  EP {metrics['ep_percent']:.1f}%"
    )
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
