"""Pooled two-proportion z-test vs a hand calculation."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from detectors.stats.proportions import proportions_ztest


def test_hand_calculation() -> None:
    # Reference 30/100 = 0.30, current 45/120 = 0.375, pooled 75/220.
    pooled = 75 / 220
    se = math.sqrt(pooled * (1 - pooled) * (1 / 100 + 1 / 120))
    z = (0.375 - 0.30) / se
    got = proportions_ztest(30, 100, 45, 120)
    assert got.statistic == pytest.approx(z, rel=1e-12)
    assert got.statistic == pytest.approx(1.1685534824642432, rel=1e-9)
    assert got.pvalue == pytest.approx(math.erfc(abs(z) / math.sqrt(2)), rel=1e-12)
    assert (got.method, got.threshold, got.drift, got.n_reference, got.n_current) == (
        "z_proportions",
        0.05,
        False,
        100,
        120,
    )


def test_sign_is_current_minus_reference_and_large_samples_detect() -> None:
    got = proportions_ztest(5_000, 50_000, 9_000, 100_000, alpha=0.01)
    assert got.statistic < 0
    assert got.pvalue == pytest.approx(2 * stats.norm.sf(abs(got.statistic)), rel=1e-12)
    assert got.drift


def test_tiny_pvalue_keeps_precision() -> None:
    # z ~ 9.7: 1 - cdf(z) would round to 0, the survival function does not.
    got = proportions_ztest(1_000, 10_000, 1_450, 10_000)
    assert got.statistic > 9
    assert 0.0 < got.pvalue < 1e-20
    assert got.pvalue == pytest.approx(math.erfc(got.statistic / math.sqrt(2)), rel=1e-9)


@pytest.mark.parametrize(("x1", "x2"), [(0, 0), (50, 80)])
def test_pooled_rate_zero_or_one_means_no_difference(x1: int, x2: int) -> None:
    got = proportions_ztest(x1, 50, x2, 80)  # all failures, or all successes
    assert (got.statistic, got.pvalue, got.drift) == (0.0, 1.0, False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((1, 0, 1, 10), "reference_total must be > 0"),
        ((1, 10, 0, 0), "current_total must be > 0"),
        ((11, 10, 1, 10), "reference_successes must be <= reference_total, got 11.0 > 10.0"),
        ((1, 10, 12, 10), "current_successes must be <= current_total"),
        ((-1, 10, 1, 10), "reference_successes must be a finite number >= 0, got -1"),
        (("3", 10, 1, 10), "reference_successes must be a number, got '3'"),
        ((1, float("inf"), 1, 10), "reference_total must be a finite number >= 0, got inf"),
    ],
)
def test_invalid_arguments(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        proportions_ztest(*args)
