"""Protected against unprotected, on the same faults: SDC-1 before and after,
detected faults, and the reduction factor with a bootstrap interval."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ceiling", "compare", "reduction"]

BOOTSTRAP = 2000


def reduction(
    before: np.ndarray, after: np.ndarray, confidence: float, seed: int
) -> dict[str, Any]:
    """SDC-1 events before over after (per fault, paired), with a percentile
    bootstrap interval that resamples faults: the images of one fault share it,
    so faults, not inferences, are the independent draws."""
    a, b = int(before.sum()), int(after.sum())
    factor = a / b if b else (float("inf") if a else 1.0)
    if len(before) == 0:
        return {"factor": factor, "ci": [float("nan"), float("nan")]}
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 6])
    picks = rng.integers(0, len(before), (BOOTSTRAP, len(before)))
    num = before[picks].sum(axis=1).astype(np.float64)
    den = after[picks].sum(axis=1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(den > 0, num / np.maximum(den, 1), np.where(num > 0, np.inf, 1.0))
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return {"factor": factor, "ci": [float(low), float(high)]}


def _entry(
    before: dict[str, Any],
    after: dict[str, Any],
    fb: dict[str, np.ndarray],
    fa: dict[str, np.ndarray],
    sel_b: np.ndarray,
    sel_a: np.ndarray,
    confidence: float,
    seed: int,
) -> dict[str, Any]:
    return {
        "faults": int(sel_b.sum()),
        "sdc1_before": before["sdc1"],
        "sdc1_after": after["sdc1"],
        "due_after": after["due"],
        "reduction": reduction(fb["sdc1"][sel_b], fa["sdc1"][sel_a], confidence, seed),
    }


def compare(
    before: dict[str, Any], after: dict[str, Any], confidence: float, seed: int
) -> dict[str, Any]:
    fb, fa = before.pop("_per_fault"), after.pop("_per_fault")
    if not np.array_equal(fb["id"], fa["id"]):
        raise AssertionError("the two campaigns ran different faults")
    everything = np.ones(len(fb["id"]), bool)
    out: dict[str, Any] = {
        "seed": before["seed"],
        "images": before["images"],
        "faults": before["faults"],
        "confidence": confidence,
        "clean": {"unprotected": before.get("clean", {}), "protected": after.get("clean", {})},
        "total": _entry(
            before["total"], after["total"], fb, fa, everything, everything, confidence, seed
        ),
        "per_layer": {},
        "unprotected": before,
        "protected": after,
    }
    for layer in before["per_layer"]:
        if layer in after["per_layer"]:
            out["per_layer"][layer] = _entry(
                before["per_layer"][layer],
                after["per_layer"][layer],
                fb,
                fa,
                fb["layer"] == layer,
                fa["layer"] == layer,
                confidence,
                seed,
            )
    out["ceiling"] = ceiling(fb, fa, list(out["per_layer"]))
    return out


def ceiling(
    fb: dict[str, np.ndarray], fa: dict[str, np.ndarray], layers: list[str]
) -> dict[str, Any]:
    """What protection could gain at most, given the layers it left unchanged
    (every fault's SDC-1 count the same with and without it): their SDC-1
    events stay, so the total falls by at most all events over theirs."""
    same = [
        layer
        for layer in layers
        if np.array_equal(fb["sdc1"][fb["layer"] == layer], fa["sdc1"][fa["layer"] == layer])
        and fb["sdc1"][fb["layer"] == layer].sum() > 0
    ]
    total = int(fb["sdc1"].sum())
    kept = int(sum(fb["sdc1"][fb["layer"] == layer].sum() for layer in same))
    return {
        "layers": same,
        "share_before": kept / total if total else 0.0,
        "factor": total / kept if kept else float("inf"),
    }
