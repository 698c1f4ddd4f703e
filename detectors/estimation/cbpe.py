"""Confidence-based performance estimation (CBPE): a classifier's performance on a window
without its labels, from the scores it gave.

Fitted on a labelled reference (:meth:`CBPE.fit_binary`, :meth:`CBPE.fit_multiclass`):

1. **Calibration.** Each score column is mapped to ``P(class | score)`` by isotonic
   regression on the reference (:mod:`detectors.estimation.calibration`: why isotonic).
   Multiclass models are calibrated one class against the rest and each row's calibrated
   probabilities are rescaled to sum to 1.
2. **Expected confusion matrix.** A window row predicted positive (score >= threshold;
   multiclass: the arg-max class) is a true positive with probability ``p`` and a false
   positive with ``1 - p``; summing over the window gives the expected counts, and from
   them accuracy, precision, recall and F1. ROC AUC is the expected Mann-Whitney
   statistic: every (row i, row j) pair counts ``p_i (1 - p_j)`` when ``s_i > s_j``.
   Multiclass: macro averages and the one-vs-rest AUC averaged over classes.
3. **Sampling error.** Even a perfect estimate differs from the realized metric of a
   window, which is a sample. Its standard deviation at ``chunk_size`` rows is measured on
   the reference itself: the realized metric of ``resamples`` seeded random chunks
   (without replacement, corrected by ``1 / sqrt(1 - chunk/N)`` for it), scaled by
   ``sqrt(chunk_size / n)`` to a window of ``n`` rows. The band is ``estimate +- band *
   sigma_n``; an alert (``estimated_performance_drop``) fires when the estimate falls below
   ``reference - band * sigma_n``: the reference's own variation sets the threshold.

Assumptions, and when not to trust the estimate:

* **No concept shift.** ``P(label | score)`` must be the same in the window as in the
  reference. Covariate shift (inputs move, the model's calibration holds) is what CBPE
  is for; a change in how inputs relate to labels (fraud patterns change, a policy
  changes defaults) is invisible to it: the estimate stays flat while the realized metric
  falls. Compare with realized performance as soon as labels come.
* **Calibrated on the reference.** The reference must be labelled, large enough (a few
  thousand rows; more for rare classes) and representative of the scores the window
  shows. Scores beyond the reference's range take the calibration's end values.
* The estimate is of the *expected* metric: at a few hundred rows the realized value
  scatters around it by the band's width.

Deterministic: the calibration has no randomness and the resamples draw from a
``numpy`` generator seeded by ``seed``. :meth:`CBPE.to_bytes` packs the fitted state
(arrays and a JSON header, no pickle).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from detectors.estimation.calibration import IsotonicCalibrator
from detectors.estimation.metrics import BINARY_METRICS, MULTICLASS_METRICS, binary_metrics, multiclass_metrics
from detectors.sketches import check_positive_int, pack, unpack

FORMAT_VERSION = 1


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


@dataclass(frozen=True)
class EstimatedMetric:
    """One estimated metric of a window: the estimate, its band, the reference's realized
    value and the alert threshold for this window's size (None where undefined)."""

    value: float | None
    lower: float | None
    upper: float | None
    sampling_error: float | None
    reference: float | None
    threshold: float | None
    alert: bool

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class EstimatedPerformance:
    """Estimated performance of one window (kind ``estimated_performance``). Times are
    epoch seconds; ``confusion`` holds expected counts (floats)."""

    kind: str
    window_seq: int
    window_start: float | None
    window_end: float | None
    n: int
    reference_version: str
    metrics: Mapping[str, EstimatedMetric]
    confusion: Mapping[str, Any]
    alert_metrics: tuple[str, ...]

    @property
    def alert(self) -> bool:
        return bool(self.alert_metrics)

    def to_dict(self) -> dict[str, Any]:
        return {
            "result": "estimated_performance",
            "kind": self.kind,
            "window_seq": self.window_seq,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "n": self.n,
            "reference_version": self.reference_version,
            "metrics": {k: m.to_dict() for k, m in self.metrics.items()},
            "confusion": dict(self.confusion),
            "alert": self.alert,
            "alert_metrics": list(self.alert_metrics),
        }


class CBPE:
    """A fitted estimator; build it with :meth:`fit_binary` or :meth:`fit_multiclass`."""

    def __init__(
        self,
        kind: str,
        calibrators: Sequence[IsotonicCalibrator],
        *,
        classes: Sequence[str] | None,
        threshold: float,
        reference: Mapping[str, float],
        chunk_error: Mapping[str, float],
        chunk_size: int,
        band: float,
        min_rows: int,
    ) -> None:
        self.kind = kind
        self.calibrators = list(calibrators)
        self.classes = None if classes is None else [str(c) for c in classes]
        self.threshold = float(threshold)
        self.reference = dict(reference)
        self.chunk_error = dict(chunk_error)
        self.chunk_size = int(chunk_size)
        self.band = float(band)
        self.min_rows = int(min_rows)

    # ---- fitting ---------------------------------------------------------------------------------
    @classmethod
    def fit_binary(
        cls,
        scores: Any,
        positives: Any,
        *,
        threshold: float = 0.5,
        chunk_size: int = 5_000,
        resamples: int = 100,
        band: float = 3.0,
        min_rows: int = 100,
        seed: int = 0,
    ) -> CBPE:
        """Fit on reference scores (probability of the positive class, in [0, 1]) and labels
        (True / 1 = positive)."""
        s = _scores(scores, "scores")
        y = np.asarray(positives).reshape(-1)
        if y.size != s.size:
            raise ValueError(f"scores and positives must have the same length, got {s.size} and {y.size}")
        if not (isinstance(threshold, (int, float)) and 0.0 <= threshold <= 1.0):
            raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")
        calibrator = IsotonicCalibrator.fit(s, y)
        y = y.astype(np.float64)

        def realized(rows: np.ndarray) -> dict[str, float]:
            return binary_metrics(s[rows], y[rows], threshold)[0]

        reference, error, size = _reference_variation(realized, s.size, chunk_size, resamples, seed)
        return cls(
            "binary", [calibrator], classes=None, threshold=threshold, reference=reference,
            chunk_error=error, chunk_size=size, band=_band(band), min_rows=check_positive_int("min_rows", min_rows),
        )  # fmt: skip

    @classmethod
    def fit_multiclass(
        cls,
        probas: Any,
        labels: Any,
        classes: Sequence[str],
        *,
        chunk_size: int = 5_000,
        resamples: int = 100,
        band: float = 3.0,
        min_rows: int = 100,
        seed: int = 0,
    ) -> CBPE:
        """Fit on reference class probabilities (n x K, columns in ``classes`` order) and
        labels (class names; a label outside ``classes`` is an error)."""
        names = [str(c) for c in classes]
        if len(names) < 2 or len(set(names)) != len(names):
            raise ValueError(f"classes must be at least 2 distinct names, got {list(classes)!r}")
        p = _probas(probas, len(names))
        index = {c: i for i, c in enumerate(names)}
        raw = [str(v) for v in np.asarray(labels, dtype=object).reshape(-1).tolist()]
        unknown = sorted(set(raw) - set(index))
        if unknown:
            raise ValueError(f"labels hold classes not in classes: {unknown[:10]}")
        if len(raw) != p.shape[0]:
            raise ValueError(f"probas and labels must have the same length, got {p.shape[0]} and {len(raw)}")
        membership = np.eye(len(names))[[index[v] for v in raw]]
        calibrators = [IsotonicCalibrator.fit(p[:, c], membership[:, c]) for c in range(len(names))]

        def realized(rows: np.ndarray) -> dict[str, float]:
            return multiclass_metrics(p[rows], membership[rows])[0]

        reference, error, size = _reference_variation(realized, p.shape[0], chunk_size, resamples, seed)
        return cls(
            "multiclass", calibrators, classes=names, threshold=0.5, reference=reference, chunk_error=error,
            chunk_size=size, band=_band(band), min_rows=check_positive_int("min_rows", min_rows),
        )  # fmt: skip

    # ---- estimating ------------------------------------------------------------------------------
    def calibrated(self, scores: Any) -> np.ndarray:
        """Calibrated probabilities: of the positive class (binary), or n x K rows summing to 1."""
        if self.kind == "binary":
            return self.calibrators[0](_scores(scores, "scores"))
        p = _probas(scores, len(self.calibrators))
        cal = np.column_stack([c(p[:, k]) for k, c in enumerate(self.calibrators)])
        total = cal.sum(axis=1, keepdims=True)
        # A row every calibrator called impossible keeps its raw scores' proportions.
        return np.where(total > 0, cal / np.where(total > 0, total, 1.0), p / p.sum(axis=1, keepdims=True).clip(1e-300))

    def estimate(
        self,
        scores: Any,
        *,
        window_seq: int = 0,
        window_start: float | None = None,
        window_end: float | None = None,
        reference_version: str = "",
    ) -> EstimatedPerformance | None:
        """The window's estimated performance; None under ``min_rows`` rows."""
        cal = self.calibrated(scores)
        n = int(cal.shape[0])
        if n < self.min_rows:
            return None
        if self.kind == "binary":
            s = _scores(scores, "scores")
            values, counts = binary_metrics(s, cal, self.threshold)
            confusion: dict[str, Any] = counts
        else:
            values, matrix = multiclass_metrics(_probas(scores, len(self.calibrators)), cal)
            confusion = {"classes": list(self.classes or ()), "matrix": matrix.tolist()}
        metrics: dict[str, EstimatedMetric] = {}
        for name, value in values.items():
            sigma = self.chunk_error.get(name, math.nan) * math.sqrt(self.chunk_size / n)
            ref = self.reference.get(name, math.nan)
            threshold = ref - self.band * sigma
            ok = math.isfinite(value) and math.isfinite(sigma)
            metrics[name] = EstimatedMetric(
                value=_finite(value),
                lower=_finite(value - self.band * sigma) if ok else None,
                upper=_finite(value + self.band * sigma) if ok else None,
                sampling_error=_finite(sigma),
                reference=_finite(ref),
                threshold=_finite(threshold),
                alert=bool(ok and math.isfinite(threshold) and value < threshold),
            )
        return EstimatedPerformance(
            kind=self.kind,
            window_seq=int(window_seq),
            window_start=window_start,
            window_end=window_end,
            n=n,
            reference_version=str(reference_version),
            metrics=MappingProxyType(metrics),
            confusion=MappingProxyType(confusion),
            alert_metrics=tuple(k for k, m in metrics.items() if m.alert),
        )

    # ---- storage ---------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        header = {
            "kind": "cbpe", "format_version": FORMAT_VERSION, "model_kind": self.kind, "classes": self.classes,
            "threshold": self.threshold, "reference": self.reference, "chunk_error": self.chunk_error,
            "chunk_size": self.chunk_size, "band": self.band, "min_rows": self.min_rows,
            "calibrators": len(self.calibrators),
        }  # fmt: skip
        arrays: dict[str, np.ndarray] = {}
        for i, c in enumerate(self.calibrators):
            arrays.update(c.arrays(str(i)))
        return pack(header, arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> CBPE:
        h, a = unpack(data)
        if h.get("kind") != "cbpe" or h.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"not a CBPE estimator of format {FORMAT_VERSION}: kind={h.get('kind')!r}")
        calibrators = [IsotonicCalibrator.from_arrays(a, str(i)) for i in range(int(h["calibrators"]))]
        return cls(
            h["model_kind"], calibrators, classes=h["classes"], threshold=h["threshold"], reference=h["reference"],
            chunk_error=h["chunk_error"], chunk_size=h["chunk_size"], band=h["band"], min_rows=h["min_rows"],
        )  # fmt: skip

    @property
    def metric_names(self) -> tuple[str, ...]:
        return BINARY_METRICS if self.kind == "binary" else MULTICLASS_METRICS


def _band(band: Any) -> float:
    if isinstance(band, bool) or not isinstance(band, (int, float)) or not 0 < band < math.inf:
        raise ValueError(f"band must be a positive number of standard deviations, got {band!r}")
    return float(band)


def _scores(values: Any, name: str) -> np.ndarray:
    s = np.asarray(values, dtype=np.float64).reshape(-1)
    bad = ~((s >= 0.0) & (s <= 1.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name} must be probabilities in [0, 1]: {int(bad.sum())} are not, the first at row {i}: {s[i]!r}"
        )
    return s


def _probas(values: Any, k: int) -> np.ndarray:
    p = np.asarray(values, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != k:
        raise ValueError(f"probas must be an n x {k} array (one column per class), got shape {p.shape}")
    _scores(p.reshape(-1), "probas")
    return p


def _reference_variation(
    realized: Any, n: int, chunk_size: int, resamples: int, seed: int
) -> tuple[dict[str, float], dict[str, float], int]:
    """(the reference's realized metrics, their standard deviation over random chunks of
    ``chunk`` rows, ``chunk``), ``chunk`` being ``chunk_size`` or half the reference if smaller."""
    check_positive_int("chunk_size", chunk_size)
    check_positive_int("resamples", resamples)
    if n < 4:
        raise ValueError(f"the reference needs at least 4 labelled rows, got {n}")
    reference = realized(np.arange(n))
    chunk = min(int(chunk_size), n // 2)
    rng = np.random.default_rng(seed)
    draws = [realized(np.sort(rng.choice(n, size=chunk, replace=False))) for _ in range(int(resamples))]
    # Chunks drawn without replacement from a finite reference vary less than samples of an
    # endless stream by sqrt(1 - chunk / n): undo that.
    correction = 1.0 / math.sqrt(1.0 - chunk / n)
    error = {}
    for name in reference:
        values = np.array([d[name] for d in draws])
        values = values[np.isfinite(values)]
        error[name] = float(values.std(ddof=1) * correction) if values.size > 1 else math.nan
    return reference, error, chunk
