"""KS and Wasserstein from one pass over the two empirical CDFs.

Both statistics read the same thing: the reference and current ECDFs evaluated on the
pooled, sorted values. The drift decision needs both for every numeric feature (KS for
significance, normed Wasserstein for the effect), so computing the pooled order and the
two ECDFs once, instead of once per statistic, halves the cost of evaluating a window.
Results equal :func:`detectors.stats.ks.ks_statistic` and
:func:`detectors.stats.wasserstein.wasserstein_distance` (to rounding in the last bits).
"""

from __future__ import annotations

import numpy as np

from detectors.stats._validation import FloatArray, check_alpha, check_threshold
from detectors.stats.ks import KsMethod, _pvalue
from detectors.stats.result import TestResult
from detectors.stats.wasserstein import _default_spread


def ecdf_statistics(reference_sorted: FloatArray, current_sorted: FloatArray) -> tuple[float, float]:
    """``(KS D, raw Wasserstein-1)`` of two ascending, finite samples.

    One stable merge of the two runs gives, by running counts, both ECDFs at every pooled
    value: no binary searches. Within a run of tied values only the last position holds
    the right-continuous ECDF, which is where D is read; Wasserstein multiplies each ECDF
    gap by the distance to the next pooled value, which is zero inside a tie run.
    """
    n_ref, n_cur = reference_sorted.size, current_sorted.size
    pooled = np.concatenate([reference_sorted, current_sorted])
    order = np.argsort(pooled, kind="stable")  # two sorted runs: merged in about linear time
    pooled = pooled[order]
    from_ref = order < n_ref
    gaps = np.cumsum(from_ref) / n_ref - np.cumsum(~from_ref) / n_cur
    last_of_value = np.append(pooled[1:] != pooled[:-1], True)
    at_values = gaps[last_of_value]
    d = float(max(at_values.max(), -at_values.min(), 0.0))
    distance = float(np.sum(np.abs(gaps[:-1]) * np.diff(pooled)))
    return d, distance


def ks_and_wasserstein(
    reference_sorted: FloatArray,
    current: FloatArray,
    *,
    alpha: float,
    threshold: float,
    spread: float | None = None,
    method: KsMethod = "auto",
) -> tuple[TestResult, TestResult]:
    """The KS test and the normed Wasserstein distance of finite samples, as
    :func:`ks_test` and :func:`wasserstein_normed` would give them."""
    check_alpha(alpha)
    check_threshold(threshold)
    cur = np.sort(current)
    d, distance = ecdf_statistics(reference_sorted, cur)
    d, pvalue = _pvalue(d, reference_sorted, cur, method)
    n_ref, n_cur = int(reference_sorted.size), int(cur.size)
    ks = TestResult("ks", d, pvalue, alpha, pvalue < alpha, n_ref, n_cur)
    scale = spread if spread is not None and spread > 0 else _default_spread(reference_sorted, cur)
    statistic = 0.0 if distance == 0.0 else distance / scale
    return ks, TestResult("wasserstein_normed", statistic, None, threshold, statistic >= threshold, n_ref, n_cur)
