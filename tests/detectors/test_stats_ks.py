"""KS two-sample test against scipy.stats.ks_2samp (statistic and p-value, rel 1e-9)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from detectors.stats import ks
from detectors.stats.ks import asymptotic_pvalue, ks_test

REL = 1e-9


@pytest.mark.parametrize(
    ("n1", "n2", "shift"),
    [
        (10_000, 10_000, 0.0),  # exact, equal sizes
        (10_000, 1_000, 0.05),  # exact, unequal sizes
        (10_000, 7_919, 0.03),  # exact, coprime sizes
        (12_000, 10_000, 0.02),  # asymptotic: max size > 10,000
        (50, 70, 0.3),
        (3, 5, 1.0),
        (1, 1, 0.0),
    ],
)
def test_matches_scipy(n1: int, n2: int, shift: float) -> None:
    rng = np.random.default_rng(n1 * 31 + n2)
    ref, cur = rng.normal(size=n1), rng.normal(shift, size=n2)
    got = ks_test(ref, cur)
    want = stats.ks_2samp(ref, cur)
    assert got.statistic == pytest.approx(float(want.statistic), rel=REL, abs=1e-15)
    assert got.pvalue == pytest.approx(float(want.pvalue), rel=REL, abs=1e-300)
    assert (got.method, got.threshold, got.n_reference, got.n_current) == ("ks", 0.05, n1, n2)
    assert got.drift == (float(want.pvalue) < 0.05)


@pytest.mark.parametrize("method", ["exact", "asymp"])
def test_explicit_method_matches_scipy(method: str) -> None:
    rng = np.random.default_rng(1)
    ref, cur = rng.normal(size=400), rng.normal(0.2, size=300)
    got = ks_test(ref, cur, method=method)  # type: ignore[arg-type]
    want = stats.ks_2samp(ref, cur, method=method)
    assert got.pvalue == pytest.approx(float(want.pvalue), rel=REL)
    assert got.drift


def test_ties_and_discrete_data_match_scipy() -> None:
    rng = np.random.default_rng(2)
    ref, cur = rng.poisson(3, size=2_000).astype(float), rng.poisson(3.2, size=1_500).astype(float)
    got, want = ks_test(ref, cur), stats.ks_2samp(ref, cur)
    assert got.statistic == pytest.approx(float(want.statistic), rel=REL)
    assert got.pvalue == pytest.approx(float(want.pvalue), rel=REL)


def test_presorted_reference_gives_same_result_and_is_checked() -> None:
    rng = np.random.default_rng(3)
    ref, cur = rng.normal(size=5_000), rng.normal(size=800)
    assert ks_test(np.sort(ref), cur, reference_sorted=True) == ks_test(ref, cur)
    with pytest.raises(ValueError, match="reference_sorted=True but reference is not sorted"):
        ks_test(ref, cur, reference_sorted=True)


def test_public_fallback_when_private_scipy_helper_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(4)
    ref, cur = rng.normal(size=3_000), rng.normal(0.1, size=2_000)
    fast = ks_test(ref, cur)
    monkeypatch.setattr(ks, "_scipy_exact", None)
    slow = ks_test(ref, cur)
    assert slow.pvalue == pytest.approx(fast.pvalue, rel=REL)
    assert slow.statistic == pytest.approx(fast.statistic, rel=REL)


def test_constant_samples() -> None:
    same = ks_test(np.full(500, 2.5), np.full(80, 2.5))
    assert (same.statistic, same.pvalue, same.drift) == (0.0, 1.0, False)
    different = ks_test(np.full(500, 2.5), np.full(80, 3.0))
    assert different.statistic == 1.0
    assert different.pvalue == pytest.approx(float(stats.ks_2samp(np.full(500, 2.5), np.full(80, 3.0)).pvalue), rel=REL)
    assert different.drift


def test_infinities_are_kept_as_extreme_values() -> None:
    rng = np.random.default_rng(5)
    ref = np.concatenate([rng.normal(size=300), [np.inf, -np.inf]])
    cur = np.concatenate([rng.normal(size=200), [np.inf] * 20])
    got, want = ks_test(ref, cur), stats.ks_2samp(ref, cur)
    assert got.n_reference == 302 and got.n_current == 220
    assert got.statistic == pytest.approx(float(want.statistic), rel=REL)
    assert got.pvalue == pytest.approx(float(want.pvalue), rel=REL)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reference": [], "current": [1.0]}, "reference must not be empty, got 0"),
        ({"reference": [1.0], "current": []}, "current must not be empty, got 0"),
        ({"reference": [1.0, np.nan], "current": [1.0]}, "reference contains NaN"),
        ({"reference": [[1.0]], "current": [1.0]}, r"reference must be 1-D, got shape \(1, 1\)"),
        ({"reference": [1.0], "current": [1.0], "alpha": 1.5}, r"alpha must be in \(0, 1\), got 1.5"),
        ({"reference": [1.0], "current": [1.0], "alpha": 0}, r"alpha must be in \(0, 1\), got 0"),
        ({"reference": [1.0], "current": [1.0], "method": "fast"}, "method must be 'auto', 'exact' or 'asymp'"),
        ({"reference": ["a"], "current": [1.0]}, "reference must be an array of real numbers"),
    ],
)
def test_invalid_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ks_test(**kwargs)


@pytest.mark.parametrize("n", [141, 300, 1_000, 5_000, 9_999, 20_000])
def test_asymptotic_pvalue_is_scipys_kstwo(n: int) -> None:
    # Across every region of scipy's kstwo.sf for this n, including the Smirnov tail that
    # asymptotic_pvalue sums itself (2.2 <= n*d*d < 370) and its edges.
    grid = np.concatenate([np.geomspace(0.5 / n, 0.99, 60), np.sqrt(np.array([2.2, 2.2001, 369.9, 370.0]) / n)])
    for d in grid:
        want = float(np.clip(stats.kstwo.sf(d, n), 0.0, 1.0))
        assert asymptotic_pvalue(float(d), n) == pytest.approx(want, rel=1e-10, abs=1e-300), (n, d)
