"""Multivariate drift: a change in how features move together, which per-feature tests
cannot see (each marginal may stay the same).

* :class:`PCAReconstruction` -- fitted on reference rows: standardise each column (mean,
  standard deviation; a missing value becomes the mean), keep the principal components
  that explain ``variance`` of the reference's variance (65 % by default, as NannyML),
  and measure a row's *reconstruction error*, the Euclidean distance between the row and
  its projection on those components. A window's statistic is the mean error over its
  rows. When correlations change, rows leave the reference's principal subspace and the
  error moves (up when a correlation weakens, down when one strengthens): both directions
  alert. Threshold: the reference's row errors have mean ``mu`` and standard deviation
  ``sigma``; the mean over a chunk of ``n`` independent rows varies by ``sigma /
  sqrt(n)``, so a window of ``n`` rows drifts outside ``mu +- z sigma / sqrt(n)`` (``z`` =
  3 by default: 0.27 % of windows of the reference's own distribution would cross it).
* :class:`DomainClassifier` -- can a classifier tell the window's rows from the
  reference's? A gradient-boosted tree classifier (scikit-learn's
  ``HistGradientBoostingClassifier``: handles missing values, non-linear, fast) is
  cross-validated on reference rows (label 0) against window rows (label 1); the
  statistic is the ROC AUC of its out-of-fold scores. With no change the AUC is 0.5 up
  to noise of standard deviation ``sqrt((n0 + n1 + 1) / (12 n0 n1))`` (the Mann-Whitney
  statistic's under the null); drift is an AUC above ``0.5 + z`` times that *and* above
  ``min_auc`` (an effect size: at large samples a negligible difference is significant).

Both work on bounded samples of joint rows (a window's row reservoir), so their cost does
not depend on traffic. scikit-learn is imported when a domain classifier is evaluated,
never on the ingestion path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors.sketches import check_positive_int, pack, unpack

FORMAT_VERSION = 1


@dataclass(frozen=True)
class MultivariateDrift:
    """The verdict of one multivariate method on one window (kind ``multivariate_drift``)."""

    method: str  # "pca_reconstruction" or "domain_classifier"
    statistic: float
    lower: float | None  # drift below it (PCA only)
    upper: float
    reference: float  # the statistic's value with no change
    drift: bool
    n: int  # window rows used
    n_reference: int
    window_seq: int = 0
    window_start: float | None = None
    window_end: float | None = None
    reference_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["result"] = "multivariate_drift"
        return out


def _matrix(rows: Any, width: int | None, name: str) -> np.ndarray:
    x = np.asarray(rows, dtype=np.float64)
    if x.ndim != 2 or (width is not None and x.shape[1] != width):
        want = "n x d" if width is None else f"n x {width}"
        raise ValueError(f"{name} must be an {want} array of numbers (one column per feature), got shape {x.shape}")
    if np.isinf(x).any():
        raise ValueError(f"{name} holds infinite values; give missing values as NaN")
    return x


def _check_z(z: Any) -> float:
    if isinstance(z, bool) or not isinstance(z, (int, float)) or not 0 < z < math.inf:
        raise ValueError(f"z must be a positive number of standard deviations, got {z!r}")
    return float(z)


class PCAReconstruction:
    """PCA reconstruction error of rows against a reference (module docstring)."""

    def __init__(
        self, mean: np.ndarray, scale: np.ndarray, components: np.ndarray, error_mean: float, error_std: float,
        n_reference: int, z: float = 3.0, columns: Sequence[str] | None = None,
    ) -> None:  # fmt: skip
        self.mean, self.scale, self.components = mean, scale, components
        self.error_mean, self.error_std = float(error_mean), float(error_std)
        self.n_reference = int(n_reference)
        self.z = _check_z(z)
        self.columns = None if columns is None else [str(c) for c in columns]

    @classmethod
    def fit(
        cls, rows: Any, *, variance: float = 0.65, z: float = 3.0, columns: Sequence[str] | None = None
    ) -> PCAReconstruction:
        """Fit on reference rows (n x d numbers, NaN = missing)."""
        x = _matrix(rows, None, "reference rows")
        if x.shape[0] < 10 or x.shape[1] < 2:
            raise ValueError(f"PCA needs at least 10 reference rows and 2 columns, got shape {x.shape}")
        if not (isinstance(variance, (int, float)) and 0 < variance <= 1):
            raise ValueError(f"variance must be a share in (0, 1], got {variance!r}")
        if columns is not None and len(columns) != x.shape[1]:
            raise ValueError(f"columns names {len(columns)} columns, the rows have {x.shape[1]}")
        with np.errstate(all="ignore"):
            mean = np.nanmean(x, axis=0)
            scale = np.nanstd(x, axis=0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)  # a constant column stays 0 after centring
        std = _standardise(x, mean, scale)
        _, singular, vt = np.linalg.svd(std, full_matrices=False)
        share = np.cumsum(singular**2) / max(float(np.sum(singular**2)), 1e-300)
        k = int(np.searchsorted(share, variance - 1e-12) + 1)
        components = vt[: min(k, vt.shape[0])]
        # SVD signs are arbitrary; fix them so that the fitted state is the same everywhere.
        components = (
            components
            * np.where(components[np.arange(len(components)), np.argmax(np.abs(components), axis=1)] < 0, -1.0, 1.0)[
                :, None
            ]
        )
        errors = _errors(std, components)
        return cls(mean, scale, components, float(errors.mean()), float(errors.std(ddof=1)), x.shape[0], z, columns)

    def errors(self, rows: Any) -> np.ndarray:
        """Each row's reconstruction error (in standardised units)."""
        return _errors(_standardise(_matrix(rows, self.mean.size, "rows"), self.mean, self.scale), self.components)

    def evaluate(self, rows: Any, *, window_seq: int = 0, window_start: float | None = None,
                 window_end: float | None = None, reference_version: str = "") -> MultivariateDrift | None:  # fmt: skip
        """The window's verdict; None without rows."""
        e = self.errors(rows)
        if e.size == 0:
            return None
        statistic = float(e.mean())
        half = self.z * self.error_std / math.sqrt(e.size)
        lower, upper = self.error_mean - half, self.error_mean + half
        return MultivariateDrift(
            "pca_reconstruction", statistic, lower, upper, self.error_mean, not lower <= statistic <= upper,
            int(e.size), self.n_reference, window_seq, window_start, window_end, reference_version,
        )  # fmt: skip

    @property
    def n_components(self) -> int:
        return int(self.components.shape[0])

    def to_bytes(self) -> bytes:
        header = {
            "kind": "pca_reconstruction", "format_version": FORMAT_VERSION, "error_mean": self.error_mean,
            "error_std": self.error_std, "n_reference": self.n_reference, "z": self.z, "columns": self.columns,
        }  # fmt: skip
        return pack(header, {"mean": self.mean, "scale": self.scale, "components": self.components})

    @classmethod
    def from_bytes(cls, data: bytes) -> PCAReconstruction:
        h, a = unpack(data)
        if h.get("kind") != "pca_reconstruction" or h.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"not a PCA reconstruction model of format {FORMAT_VERSION}: kind={h.get('kind')!r}")
        return cls(a["mean"], a["scale"], a["components"], h["error_mean"], h["error_std"], h["n_reference"],
                   h["z"], h["columns"])  # fmt: skip


def _standardise(x: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    z = (x - mean) / scale
    z[np.isnan(z)] = 0.0  # a missing value is imputed with the reference mean
    return z


def _errors(std: np.ndarray, components: np.ndarray) -> np.ndarray:
    residual = std - (std @ components.T) @ components
    return np.sqrt(np.einsum("ij,ij->i", residual, residual))


class DomainClassifier:
    """Reference-vs-window classifier drift (module docstring); holds reference rows."""

    def __init__(
        self, reference_rows: Any, *, folds: int = 3, max_rows: int = 5_000, z: float = 3.0, min_auc: float = 0.55,
        max_iter: int = 50, seed: int = 0,
    ) -> None:  # fmt: skip
        x = _matrix(reference_rows, None, "reference rows")
        self.max_rows = check_positive_int("max_rows", max_rows)
        self.folds = check_positive_int("folds", folds)
        if self.folds < 2:
            raise ValueError(f"folds must be >= 2, got {folds!r}")
        self.max_iter = check_positive_int("max_iter", max_iter)
        self.z = _check_z(z)
        if not (isinstance(min_auc, (int, float)) and 0.5 <= min_auc < 1):
            raise ValueError(f"min_auc must be in [0.5, 1), got {min_auc!r}")
        self.min_auc, self.seed = float(min_auc), int(seed)
        self.reference = _subsample(x, self.max_rows, self.seed)
        if self.reference.shape[0] < 2 * self.folds:
            raise ValueError(f"the domain classifier needs at least {2 * self.folds} reference rows, got {x.shape[0]}")

    def to_bytes(self) -> bytes:
        """Its reference rows (at most ``max_rows``) and parameters: all it is."""
        header = {
            "kind": "domain_classifier", "format_version": FORMAT_VERSION, "folds": self.folds,
            "max_rows": self.max_rows, "z": self.z, "min_auc": self.min_auc, "max_iter": self.max_iter,
            "seed": self.seed,
        }  # fmt: skip
        return pack(header, {"reference": self.reference})

    @classmethod
    def from_bytes(cls, data: bytes) -> DomainClassifier:
        h, a = unpack(data)
        if h.get("kind") != "domain_classifier" or h.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"not a domain classifier of format {FORMAT_VERSION}: kind={h.get('kind')!r}")
        # The rows were subsampled to max_rows already: the constructor keeps them as they are.
        return cls(a["reference"], folds=h["folds"], max_rows=h["max_rows"], z=h["z"], min_auc=h["min_auc"],
                   max_iter=h["max_iter"], seed=h["seed"])  # fmt: skip

    def evaluate(self, rows: Any, *, window_seq: int = 0, window_start: float | None = None,
                 window_end: float | None = None, reference_version: str = "") -> MultivariateDrift | None:  # fmt: skip
        """The window's verdict; None with fewer rows than folds x 2."""
        from sklearn.ensemble import HistGradientBoostingClassifier  # lazily: never on the ingestion path
        from sklearn.model_selection import StratifiedKFold
        from threadpoolctl import threadpool_limits

        from detectors.estimation.metrics import weighted_auc

        current = _subsample(_matrix(rows, self.reference.shape[1], "rows"), self.max_rows, self.seed + 1)
        if current.shape[0] < 2 * self.folds:
            return None
        x = np.vstack([self.reference, current])
        y = np.r_[np.zeros(self.reference.shape[0]), np.ones(current.shape[0])]
        scores = np.empty(y.size)
        folds = StratifiedKFold(self.folds, shuffle=True, random_state=self.seed)
        # One OpenMP thread: the trees of a few thousand rows gain little from more, and the
        # service shares its cores with ingestion (on a busy machine, several threads per fit
        # were 20x slower than one).
        with threadpool_limits(limits=1):
            for train, test in folds.split(x, y):
                model = HistGradientBoostingClassifier(
                    max_iter=self.max_iter, random_state=self.seed, early_stopping=False
                )
                model.fit(x[train], y[train])
                scores[test] = model.predict_proba(x[test])[:, 1]
        auc = weighted_auc(scores, y)
        n0, n1 = self.reference.shape[0], current.shape[0]
        upper = max(0.5 + self.z * math.sqrt((n0 + n1 + 1) / (12.0 * n0 * n1)), self.min_auc)
        return MultivariateDrift(
            "domain_classifier", auc, None, upper, 0.5, auc > upper, n1, n0, window_seq, window_start, window_end,
            reference_version,
        )  # fmt: skip


def _subsample(x: np.ndarray, limit: int, seed: int) -> np.ndarray:
    if x.shape[0] <= limit:
        return x
    return x[np.sort(np.random.default_rng(seed).choice(x.shape[0], size=limit, replace=False))]
