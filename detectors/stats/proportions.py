"""Pooled two-sample z-test for a proportion (a binary feature, or a rate such as
the share of class 1 or the null rate).

With reference x1 successes out of n1 and current x2 out of n2:
p1 = x1/n1, p2 = x2/n2, pooled p = (x1 + x2) / (n1 + n2),
se = sqrt(p (1 - p) (1/n1 + 1/n2)), z = (p2 - p1) / se (positive when the rate
went up), two-sided p-value = 2 * (1 - Phi(|z|)). It equals the 2 x 2
chi-square test without continuity correction (z^2 = chi2).

Degenerate cases: a side with no observations (n = 0) raises ``ValueError``;
a pooled rate of exactly 0 or 1 (both samples all failures or all successes)
means no difference is observable: z = 0, p-value 1. Counts may be fractional
(weights) but must satisfy 0 <= x <= n.
"""

from __future__ import annotations

import math
from typing import Any

from scipy import stats

from detectors.stats._validation import check_alpha
from detectors.stats.result import TestResult


def proportions_ztest(
    reference_successes: float,
    reference_total: float,
    current_successes: float,
    current_total: float,
    *,
    alpha: float = 0.05,
) -> TestResult:
    """Two-sided pooled z-test; statistic is z (current minus reference), ``drift = pvalue < alpha``."""
    alpha = check_alpha(alpha)
    n1 = _count(reference_total, "reference_total")
    n2 = _count(current_total, "current_total")
    x1 = _count(reference_successes, "reference_successes")
    x2 = _count(current_successes, "current_successes")
    for name, total in (("reference_total", n1), ("current_total", n2)):
        if total <= 0:
            raise ValueError(f"{name} must be > 0 (empty sample), got {total!r}")
    if x1 > n1:
        raise ValueError(f"reference_successes must be <= reference_total, got {x1!r} > {n1!r}")
    if x2 > n2:
        raise ValueError(f"current_successes must be <= current_total, got {x2!r} > {n2!r}")
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)
    if variance <= 0.0:
        z, pvalue = 0.0, 1.0
    else:
        z = (x2 / n2 - x1 / n1) / math.sqrt(variance)
        # 2 * sf(|z|) rather than 2 * (1 - cdf) keeps precision for tiny p-values.
        pvalue = float(min(1.0, 2.0 * stats.norm.sf(abs(z))))
    return TestResult(
        method="z_proportions",
        statistic=float(z),
        pvalue=pvalue,
        threshold=alpha,
        drift=pvalue < alpha,
        n_reference=int(round(n1)),
        n_current=int(round(n2)),
    )


def _count(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise ValueError(f"{name} must be a number, got {value!r}")
    out = float(value)
    if not (math.isfinite(out) and out >= 0.0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return out
