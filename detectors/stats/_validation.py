"""Argument checks shared by the statistics: one place for the error messages.

Every check raises ``ValueError`` naming the argument and the offending value, so
a caller several layers up can tell which input was wrong.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def check_alpha(alpha: Any, name: str = "alpha") -> float:
    """Significance level: a real number strictly between 0 and 1."""
    value = _real(alpha, name)
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {alpha!r}")
    return value


def check_threshold(threshold: Any, name: str = "threshold") -> float:
    """Distance threshold: a finite real number >= 0."""
    value = _real(threshold, name)
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"{name} must be a finite number >= 0, got {threshold!r}")
    return value


def check_positive(value: Any, name: str) -> float:
    """A finite real number > 0 (spreads, smoothing epsilons)."""
    out = _real(value, name)
    if not (math.isfinite(out) and out > 0.0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return out


def as_sample(values: ArrayLike, name: str, *, allow_inf: bool = True, min_size: int = 1) -> FloatArray:
    """A sample as a 1-D float64 array (no copy when it already is one).

    NaN is always rejected: missing values are dropped *and counted* by the
    caller (the window), never silently here. ``+-inf`` is accepted only when
    ``allow_inf`` (rank-based tests treat it as the most extreme value).
    """
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of real numbers: {exc}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size < min_size:
        what = "must not be empty" if min_size == 1 else f"needs at least {min_size} values"
        raise ValueError(f"{name} {what}, got {arr.size}")
    if not np.isfinite(arr).all():
        if np.isnan(arr).any():
            raise ValueError(
                f"{name} contains NaN ({int(np.isnan(arr).sum())} values); drop and count missing values before testing"
            )
        if not allow_inf:
            raise ValueError(
                f"{name} contains +-inf ({int(np.isinf(arr).sum())} values); this statistic needs finite values"
            )
    return arr


def as_counts(values: ArrayLike, name: str) -> FloatArray:
    """1-D float64 vector of non-negative finite counts (weights allowed)."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of counts: {exc}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite, got {float(arr[~np.isfinite(arr)][0])!r}")
    if (arr < 0).any():
        raise ValueError(f"{name} must be >= 0, got {float(arr[arr < 0][0])!r}")
    return arr


def aligned_counts(reference_counts: ArrayLike, current_counts: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Validate two aligned count vectors and drop the bins empty on both sides.

    Bins empty in both samples carry no information about a difference and would
    make chi-square expected counts zero, so every count-based statistic drops
    them. Raises when a side sums to zero (an empty window is the decision
    layer's "insufficient", not a statistic).
    """
    ref = as_counts(reference_counts, "reference_counts")
    cur = as_counts(current_counts, "current_counts")
    if ref.size != cur.size:
        raise ValueError(
            f"reference_counts and current_counts must have the same length, got {ref.size} and {cur.size}"
        )
    for name, arr in (("reference_counts", ref), ("current_counts", cur)):
        if arr.sum() <= 0:
            raise ValueError(f"{name} must sum to a positive number (empty sample), got {float(arr.sum())!r}")
    keep = (ref > 0) | (cur > 0)
    return ref[keep], cur[keep]


def count_total(counts: FloatArray) -> int:
    """Number of observations behind a count vector (rounded: weights may be fractional)."""
    return int(round(float(counts.sum())))


def _real(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    return float(value)
