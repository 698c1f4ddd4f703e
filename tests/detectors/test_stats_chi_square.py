"""Chi-square test of homogeneity vs scipy.stats.chi2_contingency (no Yates correction)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from detectors.stats.chi_square import chi_square_test
from detectors.stats.proportions import proportions_ztest


def test_matches_chi2_contingency() -> None:
    ref, cur = np.array([5_000, 3_000, 1_500, 500]), np.array([480, 320, 140, 60])
    got = chi_square_test(ref, cur)
    statistic, pvalue, dof, _ = stats.chi2_contingency(np.vstack([ref, cur]), correction=False)
    assert got.statistic == pytest.approx(statistic, rel=1e-12)
    assert got.pvalue == pytest.approx(pvalue, rel=1e-9)
    assert dof == 3
    assert (got.method, got.threshold, got.n_reference, got.n_current) == ("chi_square", 0.05, 10_000, 1_000)
    assert got.drift == (pvalue < 0.05)


def test_large_counts_detect_shift() -> None:
    ref, cur = np.array([25_000, 25_000]), np.array([480_000, 520_000])
    got = chi_square_test(ref, cur, alpha=0.01)
    statistic, pvalue, *_ = stats.chi2_contingency(np.vstack([ref, cur]), correction=False)
    assert got.statistic == pytest.approx(statistic, rel=1e-12)
    assert got.pvalue == pytest.approx(pvalue, rel=1e-9)
    assert got.drift and got.threshold == 0.01


def test_two_categories_equal_squared_pooled_z() -> None:
    got = chi_square_test([700, 300], [130, 70])
    z = proportions_ztest(300, 1000, 70, 200)
    assert got.statistic == pytest.approx(z.statistic**2, rel=1e-12)
    assert got.pvalue == pytest.approx(z.pvalue, rel=1e-9)


def test_not_goodness_of_fit() -> None:
    # Goodness-of-fit treats the reference proportions as exact and gives a different answer.
    ref, cur = np.array([60, 40]), np.array([550, 450])
    gof = stats.chisquare(cur, cur.sum() * ref / ref.sum())
    got = chi_square_test(ref, cur)
    assert got.pvalue > gof.pvalue


def test_bins_empty_on_both_sides_are_dropped_and_new_category_counts() -> None:
    got = chi_square_test([10, 0, 20, 0], [12, 0, 18, 5])
    statistic, pvalue, dof, _ = stats.chi2_contingency(np.array([[10, 20, 0], [12, 18, 5]]), correction=False)
    assert (got.statistic, dof) == (pytest.approx(statistic, rel=1e-12), 2)
    assert got.pvalue == pytest.approx(pvalue, rel=1e-9)


def test_single_category_and_identical_proportions() -> None:
    single = chi_square_test([0, 40, 0], [0, 7, 0])
    assert (single.statistic, single.pvalue, single.drift) == (0.0, 1.0, False)
    same = chi_square_test([10, 30], [100, 300])
    assert same.statistic == pytest.approx(0.0, abs=1e-12)
    assert same.pvalue == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("ref", "cur", "kwargs", "message"),
    [
        ([1, 2], [0, 0], {}, "current_counts must sum to a positive number"),
        ([1, 2], [3], {}, "same length"),
        ([1, 2], [3, 4], {"alpha": -0.1}, r"alpha must be in \(0, 1\), got -0.1"),
        ([1, 2], [3, 4], {"alpha": True}, "alpha must be a real number, got True"),
    ],
)
def test_invalid_arguments(ref: list, cur: list, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        chi_square_test(ref, cur, **kwargs)
