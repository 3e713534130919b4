"""Data sets: an ``.npz`` holding ``x`` (inputs, batch first) and optionally
``y`` (integer labels). Everything wrong with one is a user error."""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from axc.errors import UserError
from axc.ir import Graph

__all__ = ["Dataset", "load_dataset"]


@dataclass(frozen=True)
class Dataset:
    path: str
    x: np.ndarray
    y: np.ndarray | None

    def __len__(self) -> int:
        return int(self.x.shape[0])


def load_dataset(
    path: str | os.PathLike[str], graph: Graph | None = None, limit: int | None = None
) -> Dataset:
    """Read and check a data set; with ``graph``, ``x`` must fit its (single) input."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: no such data set")
    try:
        with np.load(p, allow_pickle=False) as npz:
            if "x" not in npz.files:
                raise UserError(
                    f"{p}: a data set needs an array 'x' (it has {', '.join(npz.files) or 'none'})"
                )
            x = npz["x"]
            y = npz["y"] if "y" in npz.files else None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise UserError(f"{p}: not a readable .npz data set ({exc})") from None
    if x.ndim == 0 or x.shape[0] == 0:
        raise UserError(f"{p}: the data set is empty (x has shape {x.shape})")
    if x.dtype.kind not in "fiu":
        raise UserError(f"{p}: x has type {x.dtype}; expected floating point or integers")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise UserError(f"{p}: x holds {bad} NaN or infinite value(s)")
    if y is not None and (y.ndim != 1 or y.shape[0] != x.shape[0] or y.dtype.kind not in "iu"):
        raise UserError(f"{p}: y must be {x.shape[0]} integer labels, got {y.dtype} {y.shape}")
    if graph is not None:
        if len(graph.inputs) != 1:
            raise UserError(f"the model takes {len(graph.inputs)} inputs; a data set feeds one")
        info = graph.tensors[graph.inputs[0]]
        want = tuple(info.shape[1:])
        if tuple(x.shape[1:]) != want or (
            not isinstance(info.shape[0], str) and x.shape[0] % int(info.shape[0])
        ):
            raise UserError(
                f"{p}: x has shape {x.shape}; the model's input "
                f"{graph.inputs[0]!r} needs [batch, {', '.join(map(str, want))}]"
            )
        x = x.astype(info.dtype.numpy_dtype(), copy=False)
    if limit is not None:
        x = x[:limit]
        y = y[:limit] if y is not None else None
    return Dataset(str(p), x, y)
