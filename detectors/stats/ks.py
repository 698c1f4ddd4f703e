"""Two-sample Kolmogorov-Smirnov test (two-sided) for numeric samples.

The statistic is D = sup_x |F_ref(x) - F_cur(x)| (unitless, in [0, 1]); the
p-value is the one :func:`scipy.stats.ks_2samp` returns with ``method="auto"``:
exact when both samples have at most 10,000 values, Smirnov's asymptotic
distribution (``kstwo.sf(D, round(n1*n2/(n1+n2)))``) otherwise, and asymptotic
as well when the exact computation fails numerically (scipy warns in that case;
we do not).

Why not just call ``ks_2samp``: the reference sample of a profile is fixed
while windows come and go, so the caller can keep it sorted and pass
``reference_sorted=True``; only the current sample is sorted per call. The
statistic is computed here with two ``searchsorted`` passes over the pooled
values (identical arithmetic to scipy, so D matches bit for bit). For the exact
p-value we use scipy's own (private) helper when it is importable and fall back
to the public ``ks_2samp`` otherwise, so the p-value always equals scipy's.

Degenerate inputs: empty samples and NaN raise ``ValueError``. ``+-inf`` is kept:
the test only uses the order of the values, and infinities are simply the most
extreme ones (scipy treats them the same way). Two constant samples with the same
value give D = 0, p = 1; constant samples with different values give D = 1.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import special, stats

from detectors.stats._validation import FloatArray, as_sample, check_alpha
from detectors.stats.result import TestResult

try:  # private in scipy; only used for speed, the public function is the fallback.
    from scipy.stats._stats_py import _attempt_exact_2kssamp as _scipy_exact
except ImportError:  # pragma: no cover - depends on the scipy version
    _scipy_exact = None

KsMethod = Literal["auto", "exact", "asymp"]

#: scipy's ``method="auto"`` is exact up to this sample size (both samples).
MAX_EXACT_N = 10_000


def ks_test(
    reference: ArrayLike,
    current: ArrayLike,
    *,
    alpha: float = 0.05,
    method: KsMethod = "auto",
    reference_sorted: bool = False,
) -> TestResult:
    """Two-sided two-sample KS test; ``drift = pvalue < alpha``.

    Args:
        reference: reference sample (1-D, no NaN).
        current: current sample (1-D, no NaN).
        alpha: significance level in (0, 1).
        method: ``"auto"`` (scipy's rule), ``"exact"`` or ``"asymp"``.
        reference_sorted: the reference is already ascending (checked, O(n)).
    """
    alpha = check_alpha(alpha)
    if method not in ("auto", "exact", "asymp"):
        raise ValueError(f"method must be 'auto', 'exact' or 'asymp', got {method!r}")
    ref = as_sample(reference, "reference")
    cur = np.sort(as_sample(current, "current"))
    if reference_sorted:
        if ref.size > 1 and not bool(np.all(ref[1:] >= ref[:-1])):
            raise ValueError("reference_sorted=True but reference is not sorted ascending")
    else:
        ref = np.sort(ref)
    d = ks_statistic(ref, cur)
    d, pvalue = _pvalue(d, ref, cur, method)
    return TestResult(
        method="ks",
        statistic=d,
        pvalue=pvalue,
        threshold=alpha,
        drift=pvalue < alpha,
        n_reference=int(ref.size),
        n_current=int(cur.size),
    )


def ks_statistic(reference_sorted: FloatArray, current_sorted: FloatArray) -> float:
    """D = max |F_ref - F_cur| over the pooled values; both inputs ascending."""
    pooled = np.concatenate([reference_sorted, current_sorted])
    # side="right" makes each ECDF right-continuous, so ties are handled exactly.
    cdf_ref = np.searchsorted(reference_sorted, pooled, side="right") / reference_sorted.size
    cdf_cur = np.searchsorted(current_sorted, pooled, side="right") / current_sorted.size
    diffs = cdf_ref - cdf_cur
    return float(max(diffs.max(), -diffs.min(), 0.0))


def _pvalue(d: float, ref: FloatArray, cur: FloatArray, method: KsMethod) -> tuple[float, float]:
    """(statistic, p-value) following scipy's mode selection and fallbacks."""
    n1, n2 = int(ref.size), int(cur.size)
    mode = method
    if mode == "auto":
        mode = "exact" if max(n1, n2) <= MAX_EXACT_N else "asymp"
    elif mode == "exact":
        g = math.gcd(n1, n2)
        if n1 // g >= np.iinfo(np.int32).max / (n2 // g):  # lcm too large for the lattice
            mode = "asymp"
    if mode == "exact":
        exact = _exact(d, n1, n2)
        if exact is None:  # helper unavailable: scipy's public function does everything.
            res = stats.ks_2samp(ref, cur, method="exact")
            return float(res.statistic), float(res.pvalue)
        ok, d, prob = exact
        # scipy reports D rounded to the lattice h / lcm(n1, n2) from here on, even
        # when it then falls back to the asymptotic p-value; so do we.
        if ok:
            return d, float(np.clip(prob, 0.0, 1.0))
    return d, asymptotic_pvalue(d, round(n1 * n2 / (n1 + n2)))


# Where scipy's kstwo.sf(d, n) is 2 * smirnov(n, d) (scipy.stats._ksstats._kolmogn, n > 140)
# and the sum below is checked against it (1e-10 relative; tests/detectors/test_stats_ks.py).
_SMIRNOV_N = (141, 20_000)
_SMIRNOV_NDD = (2.2, 370.0)
_LOG_TINY = -700.0  # a tail below ~1e-304 is left to scipy: summed here it would lose its last digits


def asymptotic_pvalue(d: float, n: int) -> float:
    """``scipy.stats.kstwo.sf(d, n)``, clipped to [0, 1]: the p-value of a two-sided KS
    statistic ``d`` for the effective sample size ``n``.

    Where scipy takes twice the one-sided Smirnov tail (the usual case for a drifted
    feature: n*d*d between 2.2 and 370), the tail is summed here as arrays: about 25x
    faster at n = 5,000, and the work runs without the GIL (scipy's scalar call holds it
    for ~3 ms), so the features of a window are tested side by side on several threads."""
    lo, hi = _SMIRNOV_N
    if lo <= n <= hi and 0.0 < d < 0.5 and 1.0 < n * d < n - 1 and _SMIRNOV_NDD[0] <= n * d * d < _SMIRNOV_NDD[1]:
        tail = _smirnov_tail(n, d)
        if tail is not None:
            return min(1.0, 2.0 * tail)
    return float(np.clip(stats.kstwo.sf(d, n), 0.0, 1.0))


def _smirnov_tail(n: int, d: float) -> float | None:
    """P(D+ >= d) for n values (Birnbaum and Tingey's finite sum, in logarithms); None when
    it is too small to sum here without losing precision."""
    j = np.arange(math.floor(n * (1.0 - d)) + 1, dtype=np.float64)
    step = d + j / n
    with np.errstate(divide="ignore"):  # the last term is 0 ** (n - j) when n * (1 - d) is whole
        logs = special.gammaln(n + 1.0) - special.gammaln(j + 1.0) - special.gammaln(n - j + 1.0)
        logs += (n - j) * np.log1p(-step) + (j - 1.0) * np.log(step)
    top = float(logs.max())
    if top < _LOG_TINY:
        return None
    return d * math.exp(top) * float(np.sum(np.exp(logs - top)))


def _exact(d: float, n1: int, n2: int) -> tuple[bool, float, float] | None:
    if _scipy_exact is None:
        return None
    try:
        ok, d_exact, prob = _scipy_exact(n1, n2, math.gcd(n1, n2), d, "two-sided")
    except TypeError:  # pragma: no cover - private signature changed in a new scipy
        return None
    return bool(ok), float(d_exact), float(prob)
