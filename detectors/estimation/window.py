"""Estimates of one closed window: CBPE on its prediction scores and multivariate drift on
its joint rows, both read from the window's row reservoir.

The reservoir (:class:`~detectors.windows.state.WindowState`) already keeps one uniform
sample of whole rows over every numeric channel (one RNG draw per row), the prediction
score included: nothing is added to the ingestion path, the sample is bounded by the
window's ``sample_size`` and it is in every checkpoint, so a restored window gives the
same estimates. With a window no larger than ``sample_size`` the sample is the window
itself and CBPE's estimate is exact; beyond it CBPE works on a uniform sample (its
expected confusion matrix is then an unbiased estimate of the window's, with sampling
error ``~ sqrt(p (1 - p) / sample_size)`` for accuracy). Categorical features are not in
the reservoir and so not in the multivariate methods. A multiclass model's window keeps
its arg-max class, not the class probabilities, so multiclass CBPE runs on probability
arrays (:meth:`~detectors.estimation.cbpe.CBPE.estimate`), not yet on windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from detectors.estimation.cbpe import CBPE, EstimatedPerformance
from detectors.estimation.loss import DirectLossEstimator
from detectors.estimation.multivariate import DomainClassifier, MultivariateDrift, PCAReconstruction
from detectors.schema import PREDICTION
from detectors.sketches import pack, unpack
from detectors.windows.state import WindowState

FORMAT_VERSION = 1
Estimate = EstimatedPerformance | MultivariateDrift


@dataclass(frozen=True)
class Estimators:
    """What was fitted on a model's reference; each part optional. ``columns`` names the
    numeric features the multivariate methods and the loss model were fitted on, in their
    column order (the loss model takes the prediction as one more, last, column)."""

    cbpe: CBPE | None = None
    pca: PCAReconstruction | None = None
    domain: DomainClassifier | None = None
    columns: Sequence[str] = field(default_factory=tuple)
    loss: DirectLossEstimator | None = None

    # Each part packed on its own, so a restore needs nothing else (no reference file).
    _PARTS = ("cbpe", "pca", "domain", "loss")

    def to_bytes(self) -> bytes:
        """Every fitted part: CBPE and PCA as fitted, the domain classifier with its bounded
        reference rows, the loss model with its bounded training rows (refitted on restore,
        identically: :mod:`detectors.estimation.loss`)."""
        arrays = {}
        for name in self._PARTS:
            part = getattr(self, name)
            if part is not None:
                arrays[name] = np.frombuffer(part.to_bytes(), np.uint8)
        return pack({"kind": "estimators", "format_version": FORMAT_VERSION, "columns": list(self.columns)}, arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> Estimators:
        h, a = unpack(data)
        if h.get("kind") != "estimators" or h.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"not estimators of format {FORMAT_VERSION}: kind={h.get('kind')!r}")
        return cls(
            cbpe=CBPE.from_bytes(a["cbpe"].tobytes()) if "cbpe" in a else None,
            pca=PCAReconstruction.from_bytes(a["pca"].tobytes()) if "pca" in a else None,
            domain=DomainClassifier.from_bytes(a["domain"].tobytes()) if "domain" in a else None,
            columns=tuple(h["columns"]),
            loss=DirectLossEstimator.from_bytes(a["loss"].tobytes()) if "loss" in a else None,
        )

    @property
    def methods(self) -> list[str]:
        """The names of the fitted methods, as results name them: ``cbpe`` or
        ``direct_loss`` (kind ``estimated_performance``), ``pca_reconstruction`` and
        ``domain_classifier`` (kind ``multivariate_drift``)."""
        names = {"cbpe": "cbpe", "loss": "direct_loss", "pca": "pca_reconstruction", "domain": "domain_classifier"}
        return [label for part, label in names.items() if getattr(self, part) is not None]


def window_rows(window: WindowState, columns: Sequence[str]) -> np.ndarray:
    """The window's sampled rows of ``columns`` (NaN where a value was missing)."""
    index = window.layout.num_index
    missing = [c for c in columns if c not in index]
    if missing:
        raise ValueError(
            f"the window has no numeric channel for {missing}: the estimators were fitted on other features"
        )
    sample = window.reservoir.sample
    return sample[:, [index[c] for c in columns]]


def estimate_window(window: WindowState, estimators: Estimators) -> list[Estimate]:
    """Every estimate the estimators can give for the window (none under their minimum rows)."""
    start = window.start if np.isfinite(window.start) else window.min_ts
    end = window.end if np.isfinite(window.end) else window.max_ts
    meta = {
        "window_seq": window.seq,
        "window_start": float(start) if np.isfinite(start) else None,
        "window_end": float(end) if np.isfinite(end) else None,
        "reference_version": str(window.layout.reference.version),
    }
    out: list[Estimate] = []
    if estimators.cbpe is not None and PREDICTION in window.layout.num_index:
        scores = window.sample(PREDICTION)
        scores = scores[(scores >= 0.0) & (scores <= 1.0)]  # out-of-range scores are a quality finding
        estimate = estimators.cbpe.estimate(scores, **meta)  # type: ignore[arg-type]
        if estimate is not None:
            out.append(estimate)
    if estimators.pca is not None or estimators.domain is not None:
        rows = window_rows(window, estimators.columns)
        rows = rows[~np.isnan(rows).all(axis=1)]
        for method in (estimators.pca, estimators.domain):
            if method is not None and rows.shape[0]:
                verdict = method.evaluate(rows, **meta)  # type: ignore[arg-type]
                if verdict is not None:
                    out.append(verdict)
    if estimators.loss is not None and PREDICTION in window.layout.num_index:
        rows = window_rows(window, [*estimators.columns, PREDICTION])
        rows = rows[np.isfinite(rows[:, -1])]  # a row without a prediction has no error to estimate
        estimate = estimators.loss.estimate(rows, **meta)  # type: ignore[arg-type]
        if estimate is not None:
            out.append(estimate)
    return out
