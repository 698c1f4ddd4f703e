"""KS and Wasserstein from one ECDF pass: identical to the separate functions and to scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from detectors.stats import ecdf_statistics, ks_and_wasserstein, ks_test, wasserstein_normed


@pytest.mark.parametrize(
    ("reference", "current"),
    [
        (np.random.default_rng(1).normal(size=5000), np.random.default_rng(2).normal(0.2, 1.1, size=3000)),
        (
            np.random.default_rng(3).integers(0, 5, 2000).astype(float),
            np.random.default_rng(4).integers(1, 6, 700).astype(float),
        ),
        (np.array([1.0, 1.0, 1.0]), np.array([1.0, 1.0])),
        (np.array([0.0]), np.array([5.0, 6.0])),
    ],
    ids=["continuous", "heavy-ties", "constant-equal", "disjoint"],
)
def test_matches_scipy_and_the_separate_functions(reference: np.ndarray, current: np.ndarray) -> None:
    d, distance = ecdf_statistics(np.sort(reference), np.sort(current))
    assert d == pytest.approx(stats.ks_2samp(reference, current).statistic, abs=1e-12)
    assert distance == pytest.approx(stats.wasserstein_distance(reference, current), rel=1e-12, abs=1e-12)
    ks, effect = ks_and_wasserstein(np.sort(reference), current, alpha=0.05, threshold=0.1, method="asymp")
    assert ks == ks_test(reference, current, method="asymp")
    assert effect == wasserstein_normed(reference, current, threshold=0.1)
