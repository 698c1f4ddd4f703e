"""Isotonic calibration of classifier scores, fitted on a labelled reference.

Why isotonic: CBPE needs ``P(label = positive | score)``, and the only thing we may assume
of a score is that a higher one means "more likely positive". Isotonic regression assumes
exactly that (a non-decreasing map) and nothing about its shape; Platt scaling assumes a
sigmoid in the score, which a tree model's or an already calibrated model's scores do not
follow. Isotonic's known weakness is overfitting small references (a step per few rows);
the references here hold thousands of labelled rows, and the map is interpolated linearly
between the fitted steps so that an unseen score between two reference scores gets a
value between theirs. Scores outside the reference's range take the nearest end's value.

The fit is the pool-adjacent-violators algorithm over the reference's distinct scores
(each weighted by its count), in numpy: deterministic, no randomness, no library state,
and the fitted map is two float arrays that pack into a checkpoint.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _pool_adjacent_violators(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The non-decreasing sequence closest to ``y`` in weighted least squares."""
    means: list[float] = []
    weights: list[float] = []
    sizes: list[int] = []
    for value, weight in zip(y.tolist(), w.tolist(), strict=True):
        means.append(value)
        weights.append(weight)
        sizes.append(1)
        # Merge backwards while the last block breaks the order.
        while len(means) > 1 and means[-2] >= means[-1]:
            w2 = weights[-2] + weights[-1]
            means[-2] = (means[-2] * weights[-2] + means[-1] * weights[-1]) / w2
            weights[-2] = w2
            sizes[-2] += sizes[-1]
            del means[-1], weights[-1], sizes[-1]
    return np.repeat(np.array(means), sizes)


class IsotonicCalibrator:
    """A non-decreasing map from a score to the probability of the positive class."""

    def __init__(self, thresholds: np.ndarray, values: np.ndarray) -> None:
        if thresholds.ndim != 1 or thresholds.shape != values.shape or thresholds.size == 0:
            raise ValueError(
                f"thresholds and values must be equal, non-empty 1-D arrays, got {thresholds.shape} and {values.shape}"
            )
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        self.values = np.asarray(values, dtype=np.float64)

    @classmethod
    def fit(cls, scores: Any, positives: Any) -> IsotonicCalibrator:
        """Fit on reference ``scores`` (finite numbers) and ``positives`` (bool or 0/1)."""
        s = np.asarray(scores, dtype=np.float64).reshape(-1)
        y = np.asarray(positives).reshape(-1)
        if s.size != y.size:
            raise ValueError(f"scores and positives must have the same length, got {s.size} and {y.size}")
        if s.size == 0:
            raise ValueError("cannot calibrate on an empty reference")
        if not np.isfinite(s).all():
            raise ValueError(f"scores must be finite: {int(np.count_nonzero(~np.isfinite(s)))} are not")
        if y.dtype != bool and not np.isin(y, (0, 1)).all():
            raise ValueError("positives must be booleans or 0/1")
        y = y.astype(np.float64)
        uniq, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
        sums = np.bincount(inverse, weights=y, minlength=uniq.size)
        fitted = _pool_adjacent_violators(sums / counts, counts.astype(np.float64))
        return cls(uniq, np.clip(fitted, 0.0, 1.0))

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (linear between fitted scores, constant beyond them)."""
        return np.interp(np.asarray(scores, dtype=np.float64), self.thresholds, self.values)

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}.thresholds": self.thresholds, f"{prefix}.values": self.values}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> IsotonicCalibrator:
        return cls(arrays[f"{prefix}.thresholds"], arrays[f"{prefix}.values"])
