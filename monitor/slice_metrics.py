"""The metric families of the slices of a model's traffic: segments (``segment="region:eu"``,
detectors.segments) and model versions (``version="2"``, monitor/version_state.py), each
with families of their own so the whole-population ones are unchanged.

Labels stay bounded: at most keys x (segments.max_values + 1) segments a model, and at most
``versions.max_active`` versions a model: :class:`VersionSeries` remembers each version's
series so that those of a version that no longer has windows are removed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from prometheus_client import CollectorRegistry, Counter, Gauge

# One series: its family and label values (the model first).
Series = tuple[Gauge, tuple[str, ...]]


class SliceMetrics:
    """The segment and version families: a base of :class:`monitor.metrics.Metrics`, so that
    every family of the process stays an attribute of one object."""

    def _slices(self, registry: CollectorRegistry) -> None:
        """Register the families in ``registry``."""
        self._segments(registry)
        self._versions(registry)
        self.version_series = VersionSeries()

    def _segments(self, r: CollectorRegistry) -> None:
        """Segment analysis (detectors.segments): the latest window of each slice."""
        for attribute, family in _window_families("segment", "the slice's", "its own rows, or the whole reference", r):
            setattr(self, attribute, family)
        self.segment_performance = Gauge(
            "monitor_segment_performance",
            "Model performance in the slice's latest labelled window (accuracy, roc_auc, f1, mae, ...).",
            ["model", "segment", "metric"], registry=r,
        )  # fmt: skip
        self.segment_records_pooled = Counter(
            "monitor_segment_records_pooled_total",
            "Records of tag values beyond segments.max_values, counted into the key's __other__ slice.",
            ["model", "key"], registry=r,
        )  # fmt: skip

    def _versions(self, r: CollectorRegistry) -> None:
        """Per-version windows (monitor/version_state.py): the latest window of each active
        version against its own reference (or the model's); the segments' families without
        performance (labels stay whole-population for versions)."""
        families = _window_families("version", "the model version's", "the version's, or the model's", r)
        for attribute, family in families:
            setattr(self, attribute, family)

    # The families _window_families registers, for type checkers (set there by name).
    segment_feature_drift: Gauge
    segment_feature_drift_score: Gauge
    segment_drifted_features: Gauge
    segment_prediction_drift: Gauge
    segment_quality_breach: Gauge
    segment_window_records: Gauge
    version_feature_drift: Gauge
    version_feature_drift_score: Gauge
    version_drifted_features: Gauge
    version_prediction_drift: Gauge
    version_quality_breach: Gauge
    version_window_records: Gauge


# Each slice kind's families of its latest window: (name after ``monitor_<kind>_``, help with
# ``{of}`` (whose window) and ``{reference}`` (which reference), labels after model and kind).
_WINDOW_FAMILIES = (
    ("feature_drift", "1 when the feature drifted in {of} latest window.", ("feature",)),
    ("feature_drift_score", "Effect size of {of} latest window against its reference ({reference}).",
     ("feature", "method")),
    ("drifted_features", "Features that drifted in {of} latest window.", ()),
    ("prediction_drift", "1 when the predictions drifted in {of} latest window.", ()),
    ("quality_breach", "1 when {of} latest window breached a data-quality threshold.", ("feature", "check")),
    ("window_records", "Records in {of} latest evaluated window.", ()),
)  # fmt: skip


def _window_families(kind: str, of: str, reference: str, registry: CollectorRegistry) -> list[tuple[str, Gauge]]:
    """(attribute, gauge) of ``kind``'s (segment, version) window families."""
    return [
        (
            f"{kind}_{name}",
            Gauge(
                f"monitor_{kind}_{name}",
                text.format(of=of, reference=reference),
                ["model", kind, *labels],
                registry=registry,
            ),
        )  # fmt: skip
        for name, text, labels in _WINDOW_FAMILIES
    ]


class VersionSeries:
    """Which series each (model, version) has, most recently set last, so that a version's
    series can all be removed (its label values go with them: a version that is retired for
    good leaves nothing behind in the exposition). Thread-safe: windows are published from
    the evaluator's thread, pruned from the pipeline's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[str, OrderedDict[str, set[Series]]] = {}

    def add(self, model: str, version: str, family: Gauge, labels: tuple[str, ...]) -> None:
        """Remember that ``family`` has the series ``labels`` (model, version, ...)."""
        with self._lock:
            versions = self._series.setdefault(model, OrderedDict())
            versions.setdefault(version, set()).add((family, labels))
            versions.move_to_end(version)

    def versions(self, model: str) -> list[str]:
        """The model's versions with series, least recently set first."""
        with self._lock:
            return list(self._series.get(model, ()))

    def take(self, model: str, version: str) -> set[Series]:
        """Forget ``version``'s series and return them (for the caller to remove)."""
        with self._lock:
            versions = self._series.get(model)
            return set() if versions is None else versions.pop(version, set())
