"""Multiple-testing adjustment of the per-feature p-values of one model.

A model with 50 features tested at alpha = 0.05 each would flag ~2.5 features
per evaluation by chance; adjusting the p-values across the model's features
controls that. Methods:

* ``"bh"`` (default): Benjamini-Hochberg, controls the false discovery rate -
  the expected share of flagged features that did not really change. Adjusted
  p_(i) = min over j >= i of p_(j) * m / j for the ascending p-values, capped
  at 1 (equals ``scipy.stats.false_discovery_control(p, method="bh")``).
* ``"bonferroni"``: p * m capped at 1; controls the probability of any false
  flag (family-wise error), stricter than BH.
* ``"none"``: unchanged.

Compare adjusted p-values with the same alpha as unadjusted ones.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

Correction = Literal["bh", "bonferroni", "none"]
CORRECTIONS: tuple[str, ...] = ("bh", "bonferroni", "none")


def adjust_pvalues(pvalues: ArrayLike, method: Correction = "bh") -> NDArray[np.float64]:
    """Adjusted p-values in the input order. An empty input gives an empty output."""
    if method not in CORRECTIONS:
        raise ValueError(f"method must be one of {CORRECTIONS}, got {method!r}")
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"pvalues must be 1-D, got shape {p.shape}")
    if p.size and not (np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()):
        raise ValueError(f"pvalues must be in [0, 1], got {float(p[~((p >= 0) & (p <= 1))][0])!r}")
    m = p.size
    if method == "none" or m == 0:
        return p.copy()
    if method == "bonferroni":
        return np.minimum(p * m, 1.0)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    # Step-up: each adjusted value is the smallest scaled value at its rank or above.
    monotone = np.minimum.accumulate(scaled[::-1])[::-1]
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(monotone, 1.0)
    return adjusted
