"""Evaluating one closed window against its reference: feature drift, dataset drift,
prediction drift, data quality and latency, in one frozen :class:`Evaluation`.

A window is evaluated once, when it closes. The evidence for each test comes from the
window's bounded state (bin counts, category counts, the reservoir sample) and the
reference profile, so the cost does not depend on how many records the window held.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detectors.decision import (
    CategoricalEvidence,
    DatasetDecision,
    DriftSettings,
    FeatureDrift,
    FeatureEvidence,
    NumericEvidence,
    decide,
    decide_prediction,
)
from detectors.histograms import FeatureHistogram, window_histogram
from detectors.latency import LatencyResult, LatencySettings, check_latency
from detectors.profiles import NumericProfile
from detectors.quality import QualityReport, QualitySettings, check_quality
from detectors.schema import PREDICTION
from detectors.stats.result import json_float
from detectors.threads import Workers
from detectors.windows.state import WindowState


@dataclass(frozen=True)
class EvaluationSettings:
    """Everything that decides a verdict; per-feature overrides by feature name."""

    drift: DriftSettings = field(default_factory=DriftSettings)
    drift_overrides: Mapping[str, DriftSettings] = field(default_factory=dict)
    prediction_drift: DriftSettings | None = None  # None: the model-level drift settings
    quality: QualitySettings = field(default_factory=QualitySettings)
    quality_overrides: Mapping[str, QualitySettings] = field(default_factory=dict)
    latency: LatencySettings = field(default_factory=LatencySettings)


@dataclass(frozen=True)
class Evaluation:
    """The verdicts for one window. Times are epoch seconds (event time)."""

    window_seq: int
    window_start: float
    window_end: float
    n: int
    reference_version: str
    drift: DatasetDecision
    prediction: FeatureDrift | None
    quality: QualityReport
    latency: LatencyResult | None
    # Per feature (then the prediction), its counts in the reference's bins or categories:
    # what a page draws of this window (empty when built by hand, e.g. in tests).
    histograms: tuple[FeatureHistogram, ...] = ()
    # Segment analysis (detectors.segments): the slice this window is of ("region:eu"; ''
    # for the whole population) and the reference it was compared with (the slice's own
    # rows, "region:eu", or "whole" when the slice had too few reference rows).
    segment: str = ""
    reference_slice: str = ""
    # Per-version windows (monitor.version_state): the model version this window is of
    # ('' for the whole population, every version together).
    model_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            **({"segment": self.segment, "reference_slice": self.reference_slice} if self.segment else {}),
            **({"model_version": self.model_version} if self.model_version else {}),
            "window_seq": self.window_seq,
            "window_start": json_float(self.window_start),
            "window_end": json_float(self.window_end),
            "n": self.n,
            "reference_version": self.reference_version,
            "drift": self.drift.to_dict(),
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
            "quality": self.quality.to_dict(),
            "latency": None if self.latency is None else self.latency.to_dict(),
        }


def evidence(window: WindowState, channel: str) -> FeatureEvidence:
    """What the decision needs for one channel, from the window and its reference."""
    profile = window.layout.reference.channels[channel]
    if isinstance(profile, NumericProfile):
        return NumericEvidence(
            reference_sample=window.layout.reference_sorted[channel],
            current_sample=window.sample(channel),
            reference_counts=window.reference_counts(channel),
            current_counts=window.counts(channel),
            reference_spread=float(profile.std) if np.isfinite(profile.std) else None,
        )
    return CategoricalEvidence(window.reference_counts(channel), window.counts(channel))


def evaluate_window(
    window: WindowState, settings: EvaluationSettings | None = None, workers: Workers | None = None
) -> Evaluation:
    """All verdicts for a closed window (``workers``: its features tested on several threads)."""
    settings = settings or EvaluationSettings()
    reference = window.layout.reference
    features = {name: evidence(window, name) for name in reference.schema.features}
    decision = decide(features, settings.drift, settings.drift_overrides, workers)
    prediction = None
    if PREDICTION in reference.channels:
        prediction = decide_prediction(
            evidence(window, PREDICTION), settings.prediction_drift or settings.drift, name="prediction"
        )
    quality = check_quality(window, settings.quality, settings.quality_overrides)
    latency = check_latency(window, settings.latency)  # with or without a reference latency channel
    drawn = [*features, *([PREDICTION] if PREDICTION in reference.channels else [])]
    start = window.start if np.isfinite(window.start) else window.min_ts
    end = window.end if np.isfinite(window.end) else window.max_ts
    return Evaluation(
        window_seq=window.seq,
        window_start=float(start),
        window_end=float(end),
        n=window.n,
        reference_version=str(reference.version),
        drift=decision,
        prediction=prediction,
        quality=quality,
        latency=latency,
        histograms=tuple(window_histogram(window, name) for name in drawn),
    )
