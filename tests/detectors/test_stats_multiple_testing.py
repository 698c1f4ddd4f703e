"""Benjamini-Hochberg and Bonferroni vs a hand-computed example and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from detectors.stats.multiple_testing import adjust_pvalues
from detectors.stats.result import TestResult

P = np.array([0.04, 0.001, 0.03, 0.5, 0.02])


def test_benjamini_hochberg_by_hand() -> None:
    # Sorted: 0.001, 0.02, 0.03, 0.04, 0.5 at ranks 1..5, m = 5.
    # p * m / rank: 0.005, 0.05, 0.05, 0.05, 0.5; running min from the top keeps them.
    want = np.array([0.05, 0.005, 0.05, 0.5, 0.05])
    np.testing.assert_allclose(adjust_pvalues(P, "bh"), want, rtol=1e-12)
    np.testing.assert_allclose(adjust_pvalues(P), stats.false_discovery_control(P, method="bh"), rtol=1e-12)


def test_benjamini_hochberg_step_up_monotonicity() -> None:
    # 0.01*3/1 = 0.03 but 0.012*3/2 = 0.018 < 0.03, so the first adjusted value is 0.018.
    np.testing.assert_allclose(adjust_pvalues([0.01, 0.012, 0.9]), [0.018, 0.018, 0.9], rtol=1e-12)
    rng = np.random.default_rng(0)
    p = rng.uniform(size=200) ** 3
    np.testing.assert_allclose(adjust_pvalues(p), stats.false_discovery_control(p), rtol=1e-12)


def test_bonferroni_and_none() -> None:
    np.testing.assert_allclose(adjust_pvalues(P, "bonferroni"), [0.2, 0.005, 0.15, 1.0, 0.1], rtol=1e-12)
    np.testing.assert_array_equal(adjust_pvalues(P, "none"), P)


def test_edge_cases() -> None:
    assert adjust_pvalues([], "bh").size == 0
    assert adjust_pvalues([0.3], "bh")[0] == 0.3
    np.testing.assert_array_equal(adjust_pvalues([1.0, 1.0], "bh"), [1.0, 1.0])


@pytest.mark.parametrize(
    ("pvalues", "method", "message"),
    [
        ([0.1], "holm", "method must be one of"),
        ([0.1, 1.5], "bh", r"pvalues must be in \[0, 1\], got 1.5"),
        ([np.nan], "bh", r"pvalues must be in \[0, 1\]"),
        ([[0.1]], "bh", "pvalues must be 1-D"),
    ],
)
def test_invalid_arguments(pvalues: list, method: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        adjust_pvalues(pvalues, method)  # type: ignore[arg-type]


def test_result_to_dict_and_immutability() -> None:
    res = TestResult("ks", 0.2, 0.01, 0.05, True, 100, 50)
    assert res.to_dict() == {
        "method": "ks",
        "statistic": 0.2,
        "pvalue": 0.01,
        "threshold": 0.05,
        "drift": True,
        "n_reference": 100,
        "n_current": 50,
    }
    assert TestResult("psi", float("inf"), None, 0.1, True, 1, 1).to_dict()["statistic"] is None
    with pytest.raises(AttributeError):
        res.drift = False  # type: ignore[misc]
