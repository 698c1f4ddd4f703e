"""PSI, Jensen-Shannon, Hellinger and KL on aligned counts vs scipy / hand calculations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from detectors.stats.binned import hellinger_distance, jensen_shannon_distance, kl_divergence, psi

REF = np.array([120.0, 340.0, 280.0, 160.0, 100.0])
CUR = np.array([90.0, 300.0, 310.0, 200.0, 100.0])
P, Q = REF / REF.sum(), CUR / CUR.sum()


def test_psi_hand_calculation() -> None:
    got = psi(REF, CUR)
    assert got.statistic == pytest.approx(float(np.sum((Q - P) * np.log(Q / P))), rel=1e-12)
    assert (got.method, got.pvalue, got.threshold, got.n_reference, got.n_current) == ("psi", None, 0.1, 1000, 1000)
    # Two-bin example by hand: p = (0.5, 0.5), q = (0.6, 0.4).
    two = psi([50, 50], [60, 40]).statistic
    assert two == pytest.approx(0.1 * math.log(1.2) - 0.1 * math.log(0.8), rel=1e-12)


def test_kl_matches_scipy_entropy_current_given_reference() -> None:
    got = kl_divergence(REF, CUR)
    assert got.statistic == pytest.approx(float(stats.entropy(Q, P)), rel=1e-12)
    assert got.method == "kl_divergence" and got.pvalue is None


def test_jensen_shannon_matches_scipy_base2() -> None:
    got = jensen_shannon_distance(REF, CUR)
    assert got.statistic == pytest.approx(float(jensenshannon(P, Q, base=2)), rel=1e-12)
    assert got.method == "jensen_shannon" and got.threshold == 0.045
    # Disjoint supports: maximal distance 1 (base 2), no smoothing involved.
    assert jensen_shannon_distance([5, 0], [0, 5]).statistic == pytest.approx(1.0, rel=1e-12)


def test_jensen_shannon_debiased_hand_calculation() -> None:
    raw = jensenshannon(P, Q, base=2) ** 2
    bias = (5 - 1) / (8 * math.log(2)) * (1 / 1000 + 1 / 1000)
    got = jensen_shannon_distance(REF, CUR, debias=True)
    assert got.statistic == pytest.approx(math.sqrt(raw - bias), rel=1e-12)
    assert got.method == "jensen_shannon_debiased"
    # Below the expected noise level the debiased distance floors at 0.
    assert jensen_shannon_distance([100, 100], [101, 99], debias=True).statistic == 0.0


def test_hellinger_hand_calculation_and_range() -> None:
    want = math.sqrt(1 - float(np.sum(np.sqrt(P * Q))))
    assert hellinger_distance(REF, CUR).statistic == pytest.approx(want, rel=1e-9)
    assert hellinger_distance([3, 0], [0, 7]).statistic == pytest.approx(1.0, rel=1e-12)


def test_bins_empty_on_both_sides_are_dropped() -> None:
    ref, cur = np.array([0, 10, 0, 30, 0]), np.array([0, 12, 0, 28, 0])
    for fn in (psi, kl_divergence, jensen_shannon_distance, hellinger_distance):
        full, compact = fn(ref, cur), fn(ref[[1, 3]], cur[[1, 3]])
        assert full.statistic == pytest.approx(compact.statistic, rel=1e-12)


def test_psi_and_kl_smoothing_where_one_side_is_zero() -> None:
    ref, cur = np.array([500.0, 500.0, 0.0]), np.array([450.0, 450.0, 100.0])
    eps = 1e-4
    p = np.maximum(ref / ref.sum(), eps)
    p /= p.sum()
    q = cur / cur.sum()  # no zero on this side: the floor does nothing
    assert psi(ref, cur).statistic == pytest.approx(float(np.sum((q - p) * np.log(q / p))), rel=1e-12)
    assert kl_divergence(ref, cur).statistic == pytest.approx(float(stats.entropy(q, p)), rel=1e-12)
    assert math.isfinite(psi(ref, cur, epsilon=1e-6).statistic)
    assert psi(ref, cur, epsilon=1e-6).statistic > psi(ref, cur).statistic
    # Jensen-Shannon is finite with zeros and is not smoothed.
    assert jensen_shannon_distance(ref, cur).statistic == pytest.approx(
        float(jensenshannon(ref, cur, base=2)), rel=1e-12
    )


@pytest.mark.parametrize("fn", [psi, kl_divergence, jensen_shannon_distance, hellinger_distance])
def test_identical_and_single_category(fn) -> None:  # type: ignore[no-untyped-def]
    same = fn([10, 20, 30], [20, 40, 60])
    assert same.statistic == pytest.approx(0.0, abs=1e-12)
    assert not same.drift
    single = fn([0, 25, 0], [0, 1000, 0])
    assert single.statistic == 0.0 and not single.drift


@pytest.mark.parametrize("fn", [psi, kl_divergence, jensen_shannon_distance, hellinger_distance])
@pytest.mark.parametrize(
    ("ref", "cur", "message"),
    [
        ([1, 2], [0, 0], "current_counts must sum to a positive number"),
        ([0, 0], [1, 2], "reference_counts must sum to a positive number"),
        ([], [], "reference_counts must not be empty"),
        ([1, 2], [1, 2, 3], "same length, got 2 and 3"),
        ([1, -2], [1, 2], "reference_counts must be >= 0, got -2.0"),
        ([1, np.nan], [1, 2], "reference_counts must be finite"),
        ([[1, 2]], [1, 2], "reference_counts must be 1-D"),
    ],
)
def test_invalid_counts(fn, ref: list, cur: list, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        fn(ref, cur)


def test_invalid_threshold_and_epsilon() -> None:
    with pytest.raises(ValueError, match="threshold must be a finite number >= 0, got -1"):
        jensen_shannon_distance([1, 2], [2, 1], threshold=-1)
    with pytest.raises(ValueError, match=r"epsilon must be in \(0, 1\), got 1.0"):
        psi([1, 2], [2, 1], epsilon=1.0)
    with pytest.raises(ValueError, match="epsilon must be a finite number > 0, got 0"):
        kl_divergence([1, 2], [2, 1], epsilon=0)
