"""Two-sample statistics for drift detection: plain numpy arrays in, :class:`TestResult` out.

Sample-based (numeric samples, NaN rejected):
    :func:`ks_test`, :func:`wasserstein_normed`, :func:`anderson_darling_test`,
    :func:`cramer_von_mises_test`.
Count-based (two aligned count vectors: numeric bins or categories):
    :func:`chi_square_test`, :func:`psi`, :func:`jensen_shannon_distance`,
    :func:`hellinger_distance`, :func:`kl_divergence`.
Rates: :func:`proportions_ztest`.
Across features: :func:`adjust_pvalues`.

Every function validates its arguments and raises ``ValueError`` naming the
argument (including for empty inputs); none does I/O or keeps state.
"""

from detectors.stats.anderson import anderson_darling_test
from detectors.stats.binned import hellinger_distance, jensen_shannon_distance, kl_divergence, psi
from detectors.stats.chi_square import chi_square_test
from detectors.stats.cramer import cramer_von_mises_test
from detectors.stats.ecdf import ecdf_statistics, ks_and_wasserstein
from detectors.stats.ks import ks_test
from detectors.stats.multiple_testing import Correction, adjust_pvalues
from detectors.stats.proportions import proportions_ztest
from detectors.stats.result import TestResult
from detectors.stats.wasserstein import reference_spread, wasserstein_normed

__all__ = [
    "Correction",
    "TestResult",
    "adjust_pvalues",
    "anderson_darling_test",
    "chi_square_test",
    "cramer_von_mises_test",
    "ecdf_statistics",
    "hellinger_distance",
    "jensen_shannon_distance",
    "kl_divergence",
    "ks_and_wasserstein",
    "ks_test",
    "proportions_ztest",
    "psi",
    "reference_spread",
    "wasserstein_normed",
]
