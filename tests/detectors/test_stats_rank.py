"""Anderson-Darling and Cramér-von Mises two-sample tests vs scipy."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from detectors.stats.anderson import anderson_darling_test
from detectors.stats.cramer import cramer_von_mises_test


def _scipy_ad(ref: np.ndarray, cur: np.ndarray):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return stats.anderson_ksamp([ref, cur])


@pytest.mark.parametrize("shift", [0.0, 0.08, 0.5])
def test_anderson_matches_scipy_and_pvalue_is_capped(shift: float) -> None:
    rng = np.random.default_rng(10)
    ref, cur = rng.normal(size=2_000), rng.normal(shift, size=1_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # our wrapper must not leak scipy's warnings
        got = anderson_darling_test(ref, cur)
    want = _scipy_ad(ref, cur)
    assert got.statistic == pytest.approx(float(want.statistic), rel=1e-9)
    assert got.pvalue == pytest.approx(float(want.pvalue), rel=1e-9)
    assert 0.001 <= got.pvalue <= 0.25
    assert got.method == "anderson_darling" and got.drift == (got.pvalue < 0.05)


def test_anderson_ties_infinities_and_constants() -> None:
    rng = np.random.default_rng(11)
    ref = np.concatenate([rng.poisson(3, size=500).astype(float), [np.inf]])
    cur = np.concatenate([rng.poisson(3, size=400).astype(float), [-np.inf]])
    got, want = anderson_darling_test(ref, cur), _scipy_ad(ref, cur)
    assert got.statistic == pytest.approx(float(want.statistic), rel=1e-9)
    same = anderson_darling_test(np.full(50, 1.0), np.full(20, 1.0))
    assert (same.statistic, same.pvalue, same.drift) == (0.0, 1.0, False)
    different = anderson_darling_test(np.full(50, 1.0), np.full(20, 2.0))
    assert different.pvalue == 0.001 and different.drift


@pytest.mark.parametrize(("n1", "n2", "shift"), [(2_000, 1_500, 0.0), (2_000, 1_500, 0.2), (8, 12, 1.0)])
def test_cramer_von_mises_matches_scipy(n1: int, n2: int, shift: float) -> None:
    rng = np.random.default_rng(n1 + n2)
    ref, cur = rng.normal(size=n1), rng.normal(shift, size=n2)
    got, want = cramer_von_mises_test(ref, cur), stats.cramervonmises_2samp(ref, cur)
    assert got.statistic == pytest.approx(float(want.statistic), rel=1e-9)
    assert got.pvalue == pytest.approx(float(want.pvalue), rel=1e-9, abs=1e-15)
    assert got.method == "cramer_von_mises"


def test_cramer_von_mises_constants_and_infinities() -> None:
    same = cramer_von_mises_test(np.zeros(50), np.zeros(30))
    assert (same.statistic, same.pvalue, same.drift) == (0.0, 1.0, False)
    different = cramer_von_mises_test(np.zeros(50), np.ones(30))
    assert different.drift
    ref, cur = np.array([0.0, np.inf, 1.0, 2.0]), np.array([1.0, -np.inf, 3.0, 2.0, 5.0])
    want = stats.cramervonmises_2samp(ref, cur)
    assert cramer_von_mises_test(ref, cur).statistic == pytest.approx(float(want.statistic), rel=1e-9)


@pytest.mark.parametrize(
    ("fn", "ref", "cur", "message"),
    [
        (anderson_darling_test, [], [1.0], "reference must not be empty"),
        (anderson_darling_test, [1.0, np.nan], [1.0], "reference contains NaN"),
        (cramer_von_mises_test, [1.0], [1.0, 2.0], "reference needs at least 2 values, got 1"),
        (cramer_von_mises_test, [1.0, 2.0], [np.nan, 1.0], "current contains NaN"),
    ],
)
def test_invalid_arguments(fn, ref: list, cur: list, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        fn(ref, cur)
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\)"):
        fn([1.0, 2.0], [1.0, 3.0], alpha=2)
