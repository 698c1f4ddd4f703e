"""Anderson-Darling k-sample test (k = 2) for numeric samples.

A wrapper of :func:`scipy.stats.anderson_ksamp` (Scholz & Stephens 1987, the
midrank variant that is correct for tied data). The statistic is scipy's
*standardized* A2akN, (A2 - (k - 1)) / sigma: about 0 when nothing changed, and
it can be negative. Compared with KS it weighs the tails more.

P-value caveat: scipy interpolates the p-value from a table and caps it to
[0.001, 0.25] (it warns; we silence that warning and document it here). So an
``alpha`` below 0.001 can never flag drift, and p-values >= 0.25 all read 0.25.
Multiple-testing corrections still work, but adjusted values are only as fine
as the cap allows.

Degenerate inputs: empty samples and NaN raise ``ValueError``; ``+-inf`` is kept
(the statistic uses ranks only). Both samples constant and equal: scipy refuses
("needs more than one distinct observation"); we return statistic 0, p-value 1
(no drift) by convention. Constant but different samples are handled by scipy
(large statistic, p-value 0.001).
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from detectors.stats._validation import as_sample, check_alpha
from detectors.stats.result import TestResult

#: Bounds scipy clips the interpolated p-value to.
PVALUE_FLOOR, PVALUE_CAP = 0.001, 0.25


def anderson_darling_test(reference: ArrayLike, current: ArrayLike, *, alpha: float = 0.05) -> TestResult:
    """Two-sample Anderson-Darling test; ``drift = pvalue < alpha``."""
    alpha = check_alpha(alpha)
    ref = as_sample(reference, "reference")
    cur = as_sample(current, "current")
    pooled_min = min(ref.min(), cur.min())
    pooled_max = max(ref.max(), cur.max())
    if pooled_min == pooled_max:
        statistic, pvalue = 0.0, 1.0
    else:
        with warnings.catch_warnings():
            # "p-value capped/floored" and scipy's midrank->variant deprecation notice.
            warnings.simplefilter("ignore", UserWarning)
            res = _anderson(ref, cur)
        statistic, pvalue = float(res.statistic), float(res.pvalue)
    return TestResult(
        method="anderson_darling",
        statistic=statistic,
        pvalue=pvalue,
        threshold=alpha,
        drift=pvalue < alpha,
        n_reference=int(ref.size),
        n_current=int(cur.size),
    )


def _anderson(ref: np.ndarray, cur: np.ndarray):
    try:  # scipy >= 1.17 names the tie handling `variant`
        return stats.anderson_ksamp([ref, cur], variant="midrank")
    except TypeError:  # older scipy: midrank=True is the default
        return stats.anderson_ksamp([ref, cur])
