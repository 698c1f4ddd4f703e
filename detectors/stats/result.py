"""Result type shared by every two-sample statistic in :mod:`detectors.stats`.

A :class:`TestResult` says which statistic was computed, its value, the p-value
when the method has one, the threshold the drift flag was decided with and the
two sample sizes. It is deliberately generic: hypothesis tests (KS, chi-square,
...) and distances (normed Wasserstein, PSI, Jensen-Shannon, ...) share it, and
the per-feature decision of :mod:`detectors.decision` wraps two of them.

Units: ``statistic`` is in the unit of ``method`` (documented in the module that
computes it); ``pvalue`` is a probability; ``n_reference``/``n_current`` are
numbers of observations (the total of the count vector for count-based methods).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class TestResult:
    """Outcome of one two-sample comparison.

    Attributes:
        method: short name of the statistic, e.g. ``"ks"``, ``"psi"``.
        statistic: value of the statistic (a distance for distance methods).
        pvalue: p-value, or None when the method has no p-value (distances).
        threshold: what ``drift`` was decided with: alpha for p-value methods
            (``drift = pvalue < alpha``), the distance threshold for distances
            (``drift = statistic >= threshold``).
        drift: the method's own verdict (before any multiple-testing correction).
        n_reference: observations on the reference side.
        n_current: observations on the current side.
    """

    # pytest would otherwise try to collect this class from test modules that import it.
    __test__ = False

    method: str
    statistic: float
    pvalue: float | None
    threshold: float
    drift: bool
    n_reference: int
    n_current: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly dict; non-finite floats become None (JSON has no inf/NaN)."""
        return {
            "method": self.method,
            "statistic": json_float(self.statistic),
            "pvalue": None if self.pvalue is None else json_float(self.pvalue),
            "threshold": json_float(self.threshold),
            "drift": self.drift,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
        }


def json_float(value: float) -> float | None:
    """``float(value)``, or None when it is NaN or +-inf (JSON has neither)."""
    value = float(value)
    return value if math.isfinite(value) else None
