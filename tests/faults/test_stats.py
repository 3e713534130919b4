"""Sample sizes (Leveugle et al., DATE 2009) and Wilson intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from axc.errors import UserError
from axc.faults.stats import quantile, sample_size, wilson


def test_the_worked_example_of_the_issue() -> None:
    # N = 48,480 bit positions, e = 1 %, 95 %: n = 8,016 with the exact two-sided quantile
    assert quantile(0.95) == pytest.approx(1.959963984540054, abs=1e-12)
    assert sample_size(48_480, 0.01, 0.95) == 8016


def test_an_unbounded_population_gives_the_textbook_figure() -> None:
    assert sample_size(10**15, 0.01, 0.95) == 9604
    assert sample_size(10**15, 0.05, 0.95) == 385


def test_the_one_sided_quantile_would_undersize() -> None:
    # the mistake a public implementation makes: t = 1.645 at "95 %"
    one_sided = 48_480 / (1 + 0.01**2 * 48_479 / (1.6448536**2 * 0.25))
    assert math.ceil(one_sided) < sample_size(48_480, 0.01, 0.95)


@pytest.mark.parametrize("population", [0, 1, 2, 10, 100, 500])
def test_a_small_population_is_never_oversampled(population: int) -> None:
    n = sample_size(population, 0.01, 0.95)
    assert n <= population
    if population >= 2:  # at 1 % margin, a few hundred faults need nearly all of them
        assert n >= 0.9 * population


def test_margin_at_or_beyond_one_half_is_refused() -> None:
    for margin in (0.5, 0.7, 0.0, -0.1):
        with pytest.raises(UserError, match="margin"):
            sample_size(1000, margin)


@pytest.mark.parametrize("confidence", [0.0, 1.0, 1.5, -0.2])
def test_confidence_outside_the_open_unit_interval_is_a_clear_error(confidence: float) -> None:
    with pytest.raises(UserError, match="confidence must lie strictly between 0 and 1"):
        sample_size(1000, 0.01, confidence)


def test_wilson_interval_matches_known_values() -> None:
    low, high = wilson(5, 100)
    assert low == pytest.approx(0.02154, abs=1e-5)
    assert high == pytest.approx(0.11175, abs=1e-5)
    assert wilson(0, 50)[0] == 0.0 and wilson(0, 50)[1] == pytest.approx(0.07135, abs=1e-5)
    assert wilson(50, 50)[1] == 1.0
    assert wilson(0, 0) == (0.0, 1.0)
    narrow, wide = wilson(50, 1000, 0.9), wilson(50, 1000, 0.99)
    assert wide[0] < narrow[0] < 0.05 < narrow[1] < wide[1]


def test_clustered_interval_covers_when_faults_cluster_and_wilson_does_not() -> None:
    # each fault flips the answer on all of its images or on none (a sign bit
    # flip, against a low bit): the images are not independent trials
    from axc.faults.stats import clustered_wilson

    rng = np.random.default_rng(3)
    truth, faults, images = 0.05, 200, 20
    covered = {"wilson": 0, "clustered": 0}
    for _ in range(300):
        hits = rng.random(faults) < truth
        k = np.where(hits, images, 0)
        n = np.full(faults, images)
        lo, hi = wilson(int(k.sum()), int(n.sum()))
        covered["wilson"] += lo <= truth <= hi
        lo, hi = clustered_wilson(k, n)
        covered["clustered"] += lo <= truth <= hi
    assert covered["clustered"] / 300 > 0.9
    assert covered["wilson"] / 300 < 0.5


def test_clustered_interval_is_wilsons_for_independent_trials() -> None:
    from axc.faults.stats import clustered_wilson

    k = np.array([1, 0, 0, 0] * 250)
    low, high = clustered_wilson(k, np.ones_like(k))
    assert (low, high) == pytest.approx(wilson(250, 1000), abs=2e-4)
    # no SDC at all: the faults, not the inferences, bound the rate
    assert clustered_wilson(np.zeros(100), np.full(100, 50))[1] == pytest.approx(wilson(0, 100)[1])
