"""Detector results as Prometheus gauges: each model's latest evaluated window."""

from __future__ import annotations

import math

from prometheus_client import Gauge

from detectors.performance import PerformanceResult
from detectors.results import Result
from detectors.schema import channel_name
from monitor.metrics import Metrics


def _value(x: float | None) -> float:
    """Gauges hold NaN for "undefined" (a p-value of a distance, an AUC with one class)."""
    return math.nan if x is None else float(x)


class MetricsSink:
    """Publishes results to the metric families of :class:`monitor.metrics.Metrics`."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def publish(self, model: str, reference_version: str, result: Result) -> None:
        m = self.metrics
        if reference_version.isdigit():
            m.reference_version.labels(model).set(int(reference_version))
        if isinstance(result, PerformanceResult):
            m.windows_evaluated.labels(model, "performance").inc()
            for metric, value in result.metrics.items():
                m.performance.labels(model, metric).set(_value(value))
            m.performance_degraded.labels(model).set(int(result.degraded))
            return
        m.windows_evaluated.labels(model, "drift").inc()
        m.window_records.labels(model).set(result.n)
        m.window_end.labels(model).set(_value(result.window_end))
        drift = result.drift
        # Per-feature families go through the series cap (monitor/cardinality.py).
        guarded = self._guarded
        for feature in drift.features:
            guarded(m.feature_drift, int(feature.drift), model, feature.feature)
            if feature.effect is not None:
                guarded(
                    m.feature_drift_score,
                    _value(feature.effect.statistic),
                    model,
                    feature.feature,
                    feature.effect.method,
                )
            if feature.test is not None:
                guarded(
                    m.feature_drift_pvalue, _value(feature.adjusted_pvalue), model, feature.feature, feature.test.method
                )
        m.drifted_features.labels(model).set(drift.n_drifted)
        m.dataset_drift_share.labels(model).set(drift.share)
        m.dataset_drift.labels(model).set(int(drift.dataset_drift))
        prediction = result.prediction
        if prediction is not None:
            m.prediction_drift.labels(model).set(int(prediction.drift))
            if prediction.effect is not None:
                m.prediction_drift_score.labels(model, prediction.effect.method).set(
                    _value(prediction.effect.statistic)
                )
            if prediction.test is not None:
                m.prediction_drift_pvalue.labels(model, prediction.test.method).set(_value(prediction.test.pvalue))
        for check in result.quality.checks:
            channel = channel_name(check.channel)
            guarded(m.quality_ratio, _value(check.rate), model, channel, check.check)
            guarded(m.quality_breach, int(check.breached), model, channel, check.check)
        if result.latency is not None:
            for quantile, value in (
                ("0.5", result.latency.p50),
                ("0.95", result.latency.p95),
                ("0.99", result.latency.p99),
            ):
                m.latency.labels(model, quantile).set(_value(value) / 1000.0)
            m.latency_slo_breach.labels(model).set(int(result.latency.breached))

    def _guarded(self, family: Gauge, value: float, model: str, *labels: str) -> None:
        child = self.metrics.guard.labels(family, model, *labels)
        if child is not None:
            child.set(value)
