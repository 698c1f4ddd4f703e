"""Distances between two aligned count vectors: PSI, Jensen-Shannon, Hellinger, KL.

Inputs are counts in the same bins (quantile bins of a numeric feature) or the
same categories, reference first. Each side is turned into proportions, so the
distances compare *distributions*; sample sizes only enter the optional
Jensen-Shannon bias correction and the reported ``n_reference``/``n_current``.
None of these has a p-value (``pvalue=None``); ``drift = statistic >= threshold``.

Units and ranges:

* PSI = sum (q - p) ln(q / p), nats, in [0, inf).
* Jensen-Shannon distance = sqrt(JSD) with JSD in bits (base 2), in [0, 1];
  equals ``scipy.spatial.distance.jensenshannon(p, q, base=2)``.
* Hellinger distance = ||sqrt(p) - sqrt(q)||_2 / sqrt(2), in [0, 1] (computed in
  this form rather than sqrt(1 - sum sqrt(pq)) to avoid cancellation for small
  distances).
* KL divergence = KL(current || reference) = sum q ln(q / p), nats, in [0, inf):
  the information lost when the reference is used to describe the current data.

Empty bins: bins empty on both sides are dropped first (they carry no
information). PSI and KL are infinite when a bin is empty on one side only, so
for those two every proportion is floored at ``epsilon`` (default 1e-4, i.e.
0.01 %) and the vector renormalised; with no zero bins this changes nothing, so
the values equal the textbook/scipy ones. Jensen-Shannon and Hellinger are finite
with zeros and are never smoothed. A single remaining bin means both
distributions are the same point mass: every distance is 0.

Scale, for small changes (p -> q, Cohen's w^2 = sum (q - p)^2 / p): PSI ~ w^2,
KL ~ w^2 / 2, Jensen-Shannon distance ~ w / sqrt(8 ln 2) = w / 2.355, Hellinger
~ w / sqrt(8). For a normal feature whose mean moves by delta standard deviations
(binned finely) w ~ delta, which is how the default thresholds below relate to
the 0.1-standard-deviation numeric default; PSI keeps its conventional 0.1
(~ w = 0.32, much coarser).

Jensen-Shannon bias: with finite samples the plug-in JSD is biased upwards; with
no real difference its expectation is about (K - 1) / (8 ln 2) * (1/n_ref + 1/n_cur)
bits for K bins (the chi-square approximation of the divergence). ``debias=True``
subtracts that (floored at 0) so that a minimum-effect threshold means the same
at 1,000 and at 1,000,000 rows; the method is then ``"jensen_shannon_debiased"``.
The approximation is good while expected counts are >= ~5 per bin; with many
sparse categories it under-corrects (e.g. ~30 % of the null bias is left with 500
equally likely categories and 1,000 current rows), i.e. it errs towards larger
distances (on average it never removes more than the noise).

Empty inputs, negative or non-finite counts, mismatched lengths and all-zero
sides raise ``ValueError``.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import rel_entr

from detectors.stats._validation import (
    FloatArray,
    aligned_counts,
    check_positive,
    check_threshold,
    count_total,
)
from detectors.stats.result import TestResult

#: Proportion floor for PSI and KL where a bin is empty on one side.
DEFAULT_EPSILON = 1e-4
#: Conventional PSI rule of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25 major.
DEFAULT_PSI_THRESHOLD = 0.1
#: ~ Cohen's w of 0.1 (see the module docstring); the categorical default of detectors.decision.
DEFAULT_JS_THRESHOLD = 0.045
DEFAULT_HELLINGER_THRESHOLD = 0.035
DEFAULT_KL_THRESHOLD = 0.005


def psi(
    reference_counts: ArrayLike,
    current_counts: ArrayLike,
    *,
    threshold: float = DEFAULT_PSI_THRESHOLD,
    epsilon: float = DEFAULT_EPSILON,
) -> TestResult:
    """Population stability index (nats) with an ``epsilon`` proportion floor."""
    threshold = check_threshold(threshold)
    epsilon = _check_epsilon(epsilon)
    ref, cur = aligned_counts(reference_counts, current_counts)
    p, q = _smooth(ref / ref.sum(), epsilon), _smooth(cur / cur.sum(), epsilon)
    value = float(np.sum((q - p) * np.log(q / p))) if ref.size > 1 else 0.0
    return _distance("psi", value, threshold, ref, cur)


def kl_divergence(
    reference_counts: ArrayLike,
    current_counts: ArrayLike,
    *,
    threshold: float = DEFAULT_KL_THRESHOLD,
    epsilon: float = DEFAULT_EPSILON,
) -> TestResult:
    """KL(current || reference) in nats with an ``epsilon`` proportion floor."""
    threshold = check_threshold(threshold)
    epsilon = _check_epsilon(epsilon)
    ref, cur = aligned_counts(reference_counts, current_counts)
    p, q = _smooth(ref / ref.sum(), epsilon), _smooth(cur / cur.sum(), epsilon)
    value = float(np.sum(rel_entr(q, p))) if ref.size > 1 else 0.0
    return _distance("kl_divergence", max(value, 0.0), threshold, ref, cur)


def jensen_shannon_distance(
    reference_counts: ArrayLike,
    current_counts: ArrayLike,
    *,
    threshold: float = DEFAULT_JS_THRESHOLD,
    debias: bool = False,
) -> TestResult:
    """Jensen-Shannon distance, base 2 (in [0, 1]); optionally bias-corrected."""
    threshold = check_threshold(threshold)
    ref, cur = aligned_counts(reference_counts, current_counts)
    p, q = ref / ref.sum(), cur / cur.sum()
    m = (p + q) / 2.0
    divergence = float(np.sum(rel_entr(p, m)) + np.sum(rel_entr(q, m))) / (2.0 * math.log(2.0))
    if debias:
        divergence -= (ref.size - 1) / (8.0 * math.log(2.0)) * (1.0 / ref.sum() + 1.0 / cur.sum())
    value = math.sqrt(max(divergence, 0.0))
    method = "jensen_shannon_debiased" if debias else "jensen_shannon"
    return _distance(method, value, threshold, ref, cur)


def hellinger_distance(
    reference_counts: ArrayLike,
    current_counts: ArrayLike,
    *,
    threshold: float = DEFAULT_HELLINGER_THRESHOLD,
) -> TestResult:
    """Hellinger distance in [0, 1]."""
    threshold = check_threshold(threshold)
    ref, cur = aligned_counts(reference_counts, current_counts)
    diff = np.sqrt(ref / ref.sum()) - np.sqrt(cur / cur.sum())
    value = min(float(np.sqrt(np.sum(diff * diff) / 2.0)), 1.0)
    return _distance("hellinger", value, threshold, ref, cur)


def _smooth(proportions: FloatArray, epsilon: float) -> FloatArray:
    floored = np.maximum(proportions, epsilon)
    return floored / floored.sum()


def _check_epsilon(epsilon: float) -> float:
    value = check_positive(epsilon, "epsilon")
    if value >= 1.0:
        raise ValueError(f"epsilon must be in (0, 1), got {epsilon!r}")
    return value


def _distance(method: str, value: float, threshold: float, ref: FloatArray, cur: FloatArray) -> TestResult:
    return TestResult(
        method=method,
        statistic=value,
        pvalue=None,
        threshold=threshold,
        drift=value >= threshold,
        n_reference=count_total(ref),
        n_current=count_total(cur),
    )
