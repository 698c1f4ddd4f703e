"""Two-sample Cramér-von Mises test for numeric samples.

A wrapper of :func:`scipy.stats.cramervonmises_2samp` (``method="auto"``: exact
p-value when both samples have at most 20 values, asymptotic otherwise). The
statistic T (Anderson 1962) is unitless, >= 0; it integrates the squared ECDF
difference over the pooled sample, so it is more sensitive than KS to changes
spread over the whole range.

Ties: scipy's formula uses average ranks and assumes continuous data. With
moderate ties (integers) it stays close to nominal, but with extreme ties it is
wrong: two identical constant samples get a large T. We return statistic 0,
p-value 1 for that case by convention (both constant and equal = no drift); for
heavily discrete features use KS or the chi-square test on counts.

Degenerate inputs: NaN raises ``ValueError``; scipy needs at least 2 values per
sample, so fewer raise ``ValueError`` too. ``+-inf`` is kept (ranks only).
"""

from __future__ import annotations

from numpy.typing import ArrayLike
from scipy import stats

from detectors.stats._validation import as_sample, check_alpha
from detectors.stats.result import TestResult


def cramer_von_mises_test(reference: ArrayLike, current: ArrayLike, *, alpha: float = 0.05) -> TestResult:
    """Two-sample Cramér-von Mises test; ``drift = pvalue < alpha``."""
    alpha = check_alpha(alpha)
    ref = as_sample(reference, "reference", min_size=2)
    cur = as_sample(current, "current", min_size=2)
    if min(ref.min(), cur.min()) == max(ref.max(), cur.max()):
        statistic, pvalue = 0.0, 1.0
    else:
        res = stats.cramervonmises_2samp(ref, cur, method="auto")
        statistic, pvalue = float(res.statistic), float(min(max(res.pvalue, 0.0), 1.0))
    return TestResult(
        method="cramer_von_mises",
        statistic=statistic,
        pvalue=pvalue,
        threshold=alpha,
        drift=pvalue < alpha,
        n_reference=int(ref.size),
        n_current=int(cur.size),
    )
