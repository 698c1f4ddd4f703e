"""Regression performance without labels: direct loss estimation (DLE).

A regression model states no confidence, so CBPE has nothing to calibrate. What can be
learned on a labelled reference is how large the model's error tends to be *where* a row
lies: a gradient-boosted tree regressor (scikit-learn's ``HistGradientBoostingRegressor``)
is fitted on the reference's numeric features and the model's prediction, once to
``|prediction - label|`` and once to ``(prediction - label)^2``. A window's estimated MAE
is the mean predicted absolute error of its rows, its RMSE the root of the mean predicted
squared error. When inputs move to regions where the model errs more (covariate shift)
the estimate rises with the realized error.

The band and the alert follow :mod:`detectors.estimation.cbpe`: the realized MAE / RMSE
of seeded random reference chunks give their standard deviation at ``chunk_size`` rows,
scaled to the window's size; an alert fires when an estimate rises above ``reference +
band * sigma_n`` (lower is better here).

Assumptions: no concept shift (the same inputs give the same error distribution); the
loss depends on what the loss model sees (numeric features and the prediction: not the
categorical features, which the windows do not sample as rows); the reference covers the
regions the window reaches (trees extrapolate flat). Unlike CBPE the fitted trees cannot
be packed as arrays (and pickle is no storage format), so :meth:`DirectLossEstimator.to_bytes`
keeps what the fit was made from: the training rows (at most ``max_rows``, a seeded
sample of a larger reference), their errors and the parameters; :meth:`from_bytes` fits
again on them, which gives the same trees (the fit is deterministic for a seed).
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any

import numpy as np

from detectors.estimation.cbpe import EstimatedMetric, EstimatedPerformance, _band, _finite
from detectors.sketches import check_positive_int, pack, unpack

FORMAT_VERSION = 1
METRICS = ("mae", "rmse")


def _realized(errors: np.ndarray) -> dict[str, float]:
    return {"mae": float(np.abs(errors).mean()), "rmse": float(np.sqrt(np.mean(errors**2)))}


class DirectLossEstimator:
    """Fitted on reference rows (numeric features and the prediction, NaN = missing) and labels."""

    def __init__(
        self, rows: Any, labels: Any, *, prediction_column: int = -1, chunk_size: int = 5_000, resamples: int = 100,
        band: float = 3.0, min_rows: int = 100, max_iter: int = 100, max_rows: int = 50_000, seed: int = 0,
    ) -> None:  # fmt: skip
        x = np.asarray(rows, dtype=np.float64)
        y = np.asarray(labels, dtype=np.float64).reshape(-1)
        if x.ndim != 2 or x.shape[0] != y.size:
            raise ValueError(f"rows must be an n x d array with one label per row, got {x.shape} and {y.size} labels")
        if not -x.shape[1] <= prediction_column < x.shape[1]:
            raise ValueError(f"prediction_column {prediction_column} is not a column of {x.shape[1]}")
        prediction = x[:, prediction_column]
        usable = np.isfinite(y) & np.isfinite(prediction)
        if np.count_nonzero(usable) < 2 * min_rows:
            raise ValueError(
                f"direct loss estimation needs at least {2 * min_rows} labelled rows, got {int(usable.sum())}"
            )
        x, errors = x[usable], prediction[usable] - y[usable]
        if x.shape[0] > check_positive_int("max_rows", max_rows):  # bounded: these rows are stored (to_bytes)
            keep = np.sort(np.random.default_rng(seed).choice(x.shape[0], size=max_rows, replace=False))
            x, errors = x[keep], errors[keep]
        self._fit(x, errors, chunk_size, resamples, band, min_rows, max_iter, seed)

    def _fit(
        self, x: np.ndarray, errors: np.ndarray, chunk_size: int, resamples: int, band: float, min_rows: int,
        max_iter: int, seed: int,
    ) -> None:  # fmt: skip
        from sklearn.ensemble import HistGradientBoostingRegressor  # lazily: never on the ingestion path
        from threadpoolctl import threadpool_limits

        self.rows, self.errors = x, errors
        self.params = {"chunk_size": int(chunk_size), "resamples": int(resamples), "band": float(band),
                       "min_rows": int(min_rows), "max_iter": int(max_iter), "seed": int(seed)}  # fmt: skip
        self.width, self.band, self.min_rows = x.shape[1], _band(band), check_positive_int("min_rows", min_rows)
        self.models = []
        with threadpool_limits(limits=1):  # one thread: the service's cores are for ingestion
            for target in (np.abs(errors), errors**2):
                # Leaves of >= 200 rows: a leaf's mean error is then not a handful of outliers
                # (with 20 rows, sparse tail regions overestimated a shifted window's MAE by 5 %).
                model = HistGradientBoostingRegressor(
                    max_iter=max_iter, min_samples_leaf=200, random_state=seed, early_stopping=False
                )
                self.models.append(model.fit(x, target))
        self.reference = _realized(errors)
        chunk = min(check_positive_int("chunk_size", chunk_size), errors.size // 2)
        rng = np.random.default_rng(seed)
        draws = [_realized(errors[rng.choice(errors.size, size=chunk, replace=False)]) for _ in range(resamples)]
        correction = 1.0 / math.sqrt(1.0 - chunk / errors.size)  # as in cbpe: chunks of a finite reference
        self.chunk_error = {m: float(np.std([d[m] for d in draws], ddof=1) * correction) for m in METRICS}
        self.chunk_size = chunk

    def to_bytes(self) -> bytes:
        """The training rows, their errors and the parameters (the trees are fitted again)."""
        header = {"kind": "direct_loss", "format_version": FORMAT_VERSION, **self.params}
        return pack(header, {"rows": self.rows, "errors": self.errors})

    @classmethod
    def from_bytes(cls, data: bytes) -> DirectLossEstimator:
        """The estimator :meth:`to_bytes` was taken from, fitted again on the same rows."""
        h, a = unpack(data)
        if h.get("kind") != "direct_loss" or h.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"not a direct loss estimator of format {FORMAT_VERSION}: kind={h.get('kind')!r}")
        out = cls.__new__(cls)
        out._fit(a["rows"], a["errors"], h["chunk_size"], h["resamples"], h["band"], h["min_rows"], h["max_iter"],
                 h["seed"])  # fmt: skip
        return out

    def estimate(
        self, rows: Any, *, window_seq: int = 0, window_start: float | None = None, window_end: float | None = None,
        reference_version: str = "",
    ) -> EstimatedPerformance | None:  # fmt: skip
        """Estimated MAE and RMSE of the window's rows; None under ``min_rows``."""
        from threadpoolctl import threadpool_limits

        x = np.asarray(rows, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.width:
            raise ValueError(f"rows must be an n x {self.width} array, got shape {x.shape}")
        n = x.shape[0]
        if n < self.min_rows:
            return None
        with threadpool_limits(limits=1):
            absolute, squared = (np.clip(m.predict(x), 0.0, None) for m in self.models)
        values = {"mae": float(absolute.mean()), "rmse": float(np.sqrt(squared.mean()))}
        metrics = {}
        for name, value in values.items():
            sigma = self.chunk_error[name] * math.sqrt(self.chunk_size / n)
            threshold = self.reference[name] + self.band * sigma  # errors: higher is worse
            metrics[name] = EstimatedMetric(
                value=value, lower=_finite(value - self.band * sigma), upper=_finite(value + self.band * sigma),
                sampling_error=_finite(sigma), reference=self.reference[name], threshold=threshold,
                alert=value > threshold,
            )  # fmt: skip
        return EstimatedPerformance(
            kind="regression", window_seq=int(window_seq), window_start=window_start, window_end=window_end, n=n,
            reference_version=str(reference_version), metrics=MappingProxyType(metrics),
            confusion=MappingProxyType({}), alert_metrics=tuple(k for k, m in metrics.items() if m.alert),
        )  # fmt: skip
