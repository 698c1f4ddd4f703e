"""Wasserstein-1 (earth mover's) distance between two numeric samples, normed by the reference spread.

W1 = integral |F_ref(x) - F_cur(x)| dx is in the unit of the feature; dividing by
a spread of the reference makes it unitless: ``statistic = W1 / spread`` is "how
many reference standard deviations the mass moved on average". For a pure mean
shift of delta standard deviations it equals delta exactly (in the population),
which is what makes a single default threshold (0.1) meaningful across features.

Spread (documented choice, in this order):

1. ``spread=`` when the caller passes one (e.g. the standard deviation of the
   full reference profile rather than of its bounded sample); must be > 0.
2. The population standard deviation (ddof=0) of the reference sample.
3. The reference is constant (max == min, so std, IQR and range are all 0):
   the population standard deviation of the pooled reference+current sample.
   That is > 0 exactly when the current sample has a different value somewhere,
   so "constant but different" gets a finite, large statistic (e.g. reference
   all 0 and current all 1 with equal sizes: W1 = 1, pooled std = 0.5, statistic 2).
4. Both samples constant and equal: statistic 0 (no drift).

Constancy is tested with max == min rather than std == 0 because a constant
column like 0.1 can have a floating-point std of ~1e-17.

NaN and +-inf raise ``ValueError``: the distance is undefined (or infinite)
with infinite values, so callers pass the finite part (the decision layer does).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from detectors.stats._validation import FloatArray, as_sample, check_positive, check_threshold
from detectors.stats.result import TestResult

#: Default threshold in reference standard deviations (see detectors.decision).
DEFAULT_THRESHOLD = 0.1


def wasserstein_normed(
    reference: ArrayLike,
    current: ArrayLike,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    spread: float | None = None,
    reference_sorted: bool = False,
) -> TestResult:
    """W1(reference, current) / spread; ``drift = statistic >= threshold``; no p-value.

    Args:
        reference: finite reference sample.
        current: finite current sample.
        threshold: distance threshold in spreads (>= 0).
        spread: explicit spread (> 0); default: see the module docstring.
        reference_sorted: the reference is already ascending (checked, O(n)).
    """
    threshold = check_threshold(threshold)
    ref = as_sample(reference, "reference", allow_inf=False)
    cur = np.sort(as_sample(current, "current", allow_inf=False))
    if reference_sorted:
        if ref.size > 1 and not bool(np.all(ref[1:] >= ref[:-1])):
            raise ValueError("reference_sorted=True but reference is not sorted ascending")
    else:
        ref = np.sort(ref)
    if spread is not None:
        scale = check_positive(spread, "spread")
    else:
        scale = _default_spread(ref, cur)
    distance = wasserstein_distance(ref, cur)
    statistic = 0.0 if distance == 0.0 else distance / scale
    return TestResult(
        method="wasserstein_normed",
        statistic=statistic,
        pvalue=None,
        threshold=threshold,
        drift=statistic >= threshold,
        n_reference=int(ref.size),
        n_current=int(cur.size),
    )


def reference_spread(reference: ArrayLike, current: ArrayLike | None = None) -> float:
    """The spread :func:`wasserstein_normed` divides by (rules 2-4 of the module docstring).

    Returns 0.0 only when both samples are constant and equal (or the reference
    is constant and no current sample is given).
    """
    ref = as_sample(reference, "reference", allow_inf=False)
    cur = ref[:0] if current is None else as_sample(current, "current", allow_inf=False)
    return _default_spread(ref, cur)


def wasserstein_distance(reference_sorted: FloatArray, current_sorted: FloatArray) -> float:
    """Raw W1 in the feature's unit between two ascending samples (same arithmetic as scipy)."""
    pooled = np.sort(np.concatenate([reference_sorted, current_sorted]), kind="stable")
    widths = np.diff(pooled)
    # ECDFs evaluated on each gap between consecutive pooled values.
    cdf_ref = np.searchsorted(reference_sorted, pooled[:-1], side="right") / reference_sorted.size
    cdf_cur = np.searchsorted(current_sorted, pooled[:-1], side="right") / current_sorted.size
    return float(np.sum(np.abs(cdf_ref - cdf_cur) * widths))


def _default_spread(ref: FloatArray, cur: FloatArray) -> float:
    if ref.max() > ref.min():
        return float(np.std(ref))
    pooled = np.concatenate([ref, cur])
    if pooled.max() > pooled.min():
        return float(np.std(pooled))
    return 0.0  # both constant and equal: the distance is 0 and is not divided
