"""Normed Wasserstein distance against scipy.stats.wasserstein_distance / our spread."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from detectors.stats.wasserstein import reference_spread, wasserstein_normed

REL = 1e-12


def test_matches_scipy_divided_by_reference_std() -> None:
    rng = np.random.default_rng(0)
    ref, cur = rng.normal(3.0, 2.0, size=10_000), rng.normal(3.5, 2.0, size=4_000)
    got = wasserstein_normed(ref, cur)
    want = stats.wasserstein_distance(ref, cur) / np.std(ref)
    assert got.statistic == pytest.approx(want, rel=REL)
    assert got.pvalue is None
    assert (got.method, got.threshold, got.drift) == ("wasserstein_normed", 0.1, True)
    assert (got.n_reference, got.n_current) == (10_000, 4_000)


def test_pure_shift_in_sds_is_recovered() -> None:
    # Same values shifted by 0.25 reference SDs: W1 is exactly the shift.
    ref = np.random.default_rng(1).normal(size=2_000)
    got = wasserstein_normed(ref, ref + 0.25 * np.std(ref), threshold=0.3)
    assert got.statistic == pytest.approx(0.25, rel=1e-9)
    assert not got.drift


def test_explicit_spread_and_presorted_reference() -> None:
    rng = np.random.default_rng(2)
    ref, cur = rng.normal(size=1_000), rng.normal(size=500)
    got = wasserstein_normed(np.sort(ref), cur, spread=2.0, reference_sorted=True)
    assert got.statistic == pytest.approx(stats.wasserstein_distance(ref, cur) / 2.0, rel=REL)
    with pytest.raises(ValueError, match="spread must be a finite number > 0, got 0"):
        wasserstein_normed(ref, cur, spread=0)
    with pytest.raises(ValueError, match="not sorted"):
        wasserstein_normed(ref, cur, reference_sorted=True)


def test_threshold_is_inclusive() -> None:
    ref = np.array([0.0, 1.0])
    got = wasserstein_normed(ref, ref + 0.5, threshold=1.0)  # W1 = 0.5, std = 0.5
    assert got.statistic == pytest.approx(1.0, rel=REL)
    assert got.drift


def test_constant_reference_and_current_equal() -> None:
    got = wasserstein_normed(np.full(100, 7.0), np.full(30, 7.0))
    assert (got.statistic, got.drift) == (0.0, False)
    assert reference_spread(np.full(100, 7.0), np.full(30, 7.0)) == 0.0


def test_constant_but_different_uses_pooled_std() -> None:
    # W1 = 1, pooled sample is half 0 / half 1 -> std 0.5 -> statistic 2.
    got = wasserstein_normed(np.zeros(50), np.ones(50))
    assert got.statistic == pytest.approx(2.0, rel=REL)
    assert got.drift
    # A constant reference of 0.1 has a float std of ~1e-17; constancy must be max == min.
    assert reference_spread(np.full(1000, 0.1), np.full(1000, 0.1)) == 0.0


def test_constant_reference_varying_current() -> None:
    ref, cur = np.zeros(300), np.array([0.0, 1.0, 2.0])
    got = wasserstein_normed(ref, cur)
    pooled = np.concatenate([ref, cur])
    assert got.statistic == pytest.approx(stats.wasserstein_distance(ref, cur) / np.std(pooled), rel=REL)


@pytest.mark.parametrize(
    ("reference", "current", "kwargs", "message"),
    [
        ([], [1.0], {}, "reference must not be empty"),
        ([1.0], [], {}, "current must not be empty"),
        ([1.0, np.inf], [1.0], {}, r"reference contains \+-inf"),
        ([1.0], [-np.inf], {}, r"current contains \+-inf"),
        ([np.nan], [1.0], {}, "reference contains NaN"),
        ([1.0], [1.0], {"threshold": -0.1}, "threshold must be a finite number >= 0, got -0.1"),
        ([1.0], [1.0], {"threshold": float("nan")}, "threshold must be a finite number >= 0"),
    ],
)
def test_invalid_arguments(reference: list, current: list, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        wasserstein_normed(reference, current, **kwargs)
