"""Pearson chi-square test of homogeneity for two aligned count vectors.

Which chi-square: the 2 x K contingency test (reference counts as one row,
current counts as the other; ``scipy.stats.chi2_contingency``), not the
goodness-of-fit test (``scipy.stats.chisquare`` of the current counts against
expected counts from the reference proportions). The reference is itself a
sample - 50,000 rows, or far fewer for a young model - and goodness-of-fit
treats its proportions as exact, so its noise is attributed to the current
window: with a 1M-row window and a 10k-row reference, goodness-of-fit rejects
almost always even when nothing changed. The contingency test accounts for both
samples' noise (its variance uses 1/n_ref + 1/n_cur) and reduces to
goodness-of-fit when the reference is much larger than the window.

No Yates continuity correction, also for K = 2 (scipy applies it by default
when there is one degree of freedom): the correction is known to be
conservative, our counts are large, and without it the 2-category case is
exactly the pooled two-proportion z-test (chi2 = z^2,
:func:`detectors.stats.proportions.proportions_ztest`).

Statistic: sum over the 2 x K cells of (observed - expected)^2 / expected,
expected = row total * column total / grand total; degrees of freedom K - 1;
p-value from the chi-square distribution. ``drift = pvalue < alpha``.

Empty bins: categories/bins empty on both sides are dropped (their expected
count would be 0). A single remaining category: the two samples cannot differ,
statistic 0, p-value 1. An all-zero side, empty or negative input raises
``ValueError``. The approximation wants expected counts of about 5 or more per
cell; callers enforce a minimum sample size (the decision layer's
``min_samples``) rather than this function merging rare categories.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from detectors.stats._validation import aligned_counts, check_alpha, count_total
from detectors.stats.result import TestResult


def chi_square_test(
    reference_counts: ArrayLike,
    current_counts: ArrayLike,
    *,
    alpha: float = 0.05,
) -> TestResult:
    """2 x K chi-square test of homogeneity without continuity correction."""
    alpha = check_alpha(alpha)
    ref, cur = aligned_counts(reference_counts, current_counts)
    n_ref, n_cur = float(ref.sum()), float(cur.sum())
    if ref.size < 2:
        statistic, pvalue = 0.0, 1.0
    else:
        table = np.vstack([ref, cur])
        column = ref + cur
        expected = np.outer([n_ref, n_cur], column) / (n_ref + n_cur)
        statistic = float(np.sum((table - expected) ** 2 / expected))
        pvalue = float(stats.chi2.sf(statistic, ref.size - 1))
    return TestResult(
        method="chi_square",
        statistic=statistic,
        pvalue=pvalue,
        threshold=alpha,
        drift=pvalue < alpha,
        n_reference=count_total(ref),
        n_current=count_total(cur),
    )
