"""Campaign statistics: sample sizes after Leveugle et al. and Wilson intervals.

Leveugle, Calvez, Maistri, Vanhauwaert, "Statistical fault injection:
quantified error and confidence", DATE 2009: to estimate a proportion over a
population of N possible faults with margin e at a given confidence,

    n = N / (1 + e^2 (N - 1) / (t^2 p (1 - p)))

where t is the two-sided standard normal quantile of the confidence
(1.95996... at 95 %) and p the expected proportion (0.5, the conservative
choice, unless known). n is rounded up.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

from axc.errors import UserError

__all__ = ["clustered_wilson", "quantile", "sample_size", "wilson"]


def quantile(confidence: float) -> float:
    """The two-sided standard normal quantile t with P(|Z| <= t) = confidence."""
    if not 0.0 < confidence < 1.0:
        raise UserError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    return NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)


def sample_size(population: int, margin: float, confidence: float = 0.95, p: float = 0.5) -> int:
    """Faults to inject out of ``population`` for ``margin`` at ``confidence``.

    Never more than the population (then the campaign is exhaustive). A margin
    of 0.5 or more says nothing about a proportion and is refused, as is a
    confidence outside (0, 1)."""
    t = quantile(confidence)
    if not 0.0 < margin < 0.5:
        raise UserError(f"margin must lie strictly between 0 and 0.5, got {margin}")
    if not 0.0 < p < 1.0:
        raise UserError(f"the expected proportion p must lie strictly between 0 and 1, got {p}")
    if population < 0:
        raise UserError(f"the fault population cannot be negative ({population})")
    if population <= 1:
        return population
    n = population / (1.0 + margin * margin * (population - 1) / (t * t * p * (1.0 - p)))
    # guard against n landing a hair above an integer through rounding
    return min(population, math.ceil(n - 1e-9))


def wilson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of ``successes`` out of ``trials``; (0, 1) for no trials."""
    if trials <= 0:
        return (0.0, 1.0)
    z = quantile(confidence)
    phat = successes / trials
    z2 = z * z
    centre = (phat + z2 / (2 * trials)) / (1 + z2 / trials)
    half = (
        z * math.sqrt(phat * (1 - phat) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    )
    low = 0.0 if successes <= 0 else max(0.0, centre - half)
    high = 1.0 if successes >= trials else min(1.0, centre + half)
    return (low, high)


def clustered_wilson(successes: Any, trials: Any, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson interval of a rate counted over clusters, each with its own
    ``successes[i]`` out of ``trials[i]`` (a fault and the images it ran on):
    the clusters, not the trials, are the independent draws. The interval is
    Wilson's at the effective sample size (Kish): the trials divided by the
    design effect, the cluster-robust variance of the ratio over the binomial
    one (at least 1). With no success, or no failure, the spread cannot be
    estimated and the clusters count as the trials."""
    import numpy as np

    k_i = np.asarray(successes, dtype=np.float64)
    n_i = np.asarray(trials, dtype=np.float64)
    k, n, clusters = float(k_i.sum()), float(n_i.sum()), len(n_i)
    if n <= 0 or clusters == 0:
        return (0.0, 1.0)
    p = k / n
    if k <= 0 or k >= n or clusters < 2:
        low, high = wilson(round(p * clusters), clusters, confidence)
        return (0.0 if k <= 0 else low, 1.0 if k >= n else high)
    variance = clusters / (clusters - 1) * float(((k_i - p * n_i) ** 2).sum()) / (n * n)
    effect = max(1.0, variance / (p * (1.0 - p) / n))
    return wilson(p * n / effect, n / effect, confidence)  # type: ignore[arg-type]
