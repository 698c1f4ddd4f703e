"""Champion vs challenger (detectors/versions.py): the divergence is the prediction-drift
decision on the two versions' predictions (KS numbers equal scipy's), agreement a hand count."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from detectors.decision import DriftSettings
from detectors.versions import agree, compare, divergence


def test_numeric_divergence_is_the_ks_test_and_the_effect_threshold() -> None:
    rng = np.random.default_rng(1)
    champion, challenger = rng.normal(0, 1, 800), rng.normal(0.5, 1, 600)
    verdict = divergence(champion, challenger, DriftSettings())
    expected = stats.ks_2samp(challenger, champion)
    assert verdict.test is not None and verdict.effect is not None
    assert (verdict.test.method, verdict.effect.method) == ("ks", "wasserstein_normed")
    assert verdict.test.statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert verdict.test.pvalue == pytest.approx(expected.pvalue, rel=1e-9)
    assert verdict.drift and not verdict.insufficient
    same = divergence(champion, champion.copy(), DriftSettings())
    assert same.test is not None and same.test.statistic == 0.0 and not same.drift


def test_categorical_divergence_counts_classes_and_too_few_is_insufficient() -> None:
    champion = np.array(["a"] * 300 + ["b"] * 300, dtype=object)
    challenger = np.array(["a"] * 100 + ["b"] * 400 + ["c"] * 100, dtype=object)
    verdict = divergence(champion, challenger, DriftSettings())
    expected = stats.chi2_contingency(np.array([[300, 300, 0], [100, 400, 100]]), correction=False)
    assert verdict.test is not None and verdict.test.method == "chi_square"
    assert verdict.test.statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert verdict.drift
    empty = divergence(np.array([0.1, 0.2]), np.array([], dtype=np.float64), DriftSettings())
    assert empty.insufficient and not empty.drift


def test_agreement_is_a_hand_count() -> None:
    assert agree(0.7, 0.9, threshold=0.5, tolerance=0.0) and not agree(0.4, 0.6, threshold=0.5, tolerance=0.0)
    assert agree(1.0, 1.05, threshold=None, tolerance=0.1) and not agree(1.0, 1.2, threshold=None, tolerance=0.1)
    assert agree("cat", "cat", threshold=None, tolerance=0.0) and not agree("cat", "dog", threshold=None, tolerance=0)
    assert not agree(float("nan"), 1.0, threshold=None, tolerance=1.0)
    pairs = [(0.1, 0.2), (0.6, 0.9), (0.6, 0.4), (0.49, 0.51), (0.9, 0.95)]  # same side: 1st, 2nd, 5th
    result = compare(
        ("1", np.array([p[0] for p in pairs])), ("2", np.array([p[1] for p in pairs])), pairs,
        (7, 10.0, 20.0, "3"), DriftSettings(), threshold=0.5,
    )  # fmt: skip
    assert (result.pairs, result.agreed, result.agreement_rate) == (5, 3, 0.6)
    assert (result.window_seq, result.reference_version, result.n_champion, result.n_challenger) == (7, "3", 5, 5)
    assert result.to_dict()["agreement_rate"] == 0.6
    none = compare(("1", np.array([0.1])), ("2", np.array([0.2])), [], (0, 0.0, 1.0, ""), DriftSettings())
    assert (none.pairs, none.agreement_rate) == (0, None)
