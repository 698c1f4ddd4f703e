"""Detector results as Prometheus gauges: each model's latest evaluated window, published
as windows close and restored from the store at start-up (so a restart does not blank the
drift panels, nor resolve a Prometheus alert whose ``for:`` is longer than the restart)."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from prometheus_client import Gauge

from detectors.estimation.cbpe import EstimatedPerformance
from detectors.estimation.multivariate import MultivariateDrift
from detectors.evaluation import Evaluation
from detectors.performance import PerformanceResult
from detectors.results import Estimate, Result
from detectors.schema import channel_name
from detectors.segments import OTHER
from detectors.versions import VersionDivergence
from monitor.metrics import Metrics
from monitor.version_gauges import VersionGauges, VersionsOf

log = logging.getLogger(__name__)


class LatestResults(Protocol):
    """The store's query of each kind's newest window (monitor.store.results)."""

    def latest_results(self, model: str) -> list[dict[str, Any]]: ...

    def latest_slice_results(self, model: str) -> list[dict[str, Any]]: ...

    def latest_version_results(self, model: str) -> list[dict[str, Any]]: ...


def _value(x: float | None) -> float:
    """Gauges hold NaN for "undefined" (a p-value of a distance, an AUC with one class)."""
    return math.nan if x is None else float(x)


class MetricsSink:
    """Publishes results to the metric families of :class:`monitor.metrics.Metrics`.
    ``versions_of``: each model's active versions (:func:`monitor.version_gauges.pipeline_versions`),
    which bound the version gauges; without it they are not pruned."""

    def __init__(self, metrics: Metrics, versions_of: VersionsOf | None = None):
        self.metrics = metrics
        self.versions = VersionGauges(metrics, versions_of)

    def publish(self, model: str, reference_version: str, result: Result | Estimate) -> None:
        m = self.metrics
        if isinstance(result, VersionDivergence):  # champion vs challenger
            m.windows_evaluated.labels(model, "version_divergence").inc()
            m.version_divergence.labels(model).set(int(result.drift))
            m.version_agreement_ratio.labels(model).set(_value(result.agreement_rate))
            return
        if isinstance(result, EstimatedPerformance | MultivariateDrift):
            self._estimate(model, result)
            return
        if isinstance(result, Evaluation) and result.segment:  # a slice: its own families
            self._segment(model, result)
            return
        if isinstance(result, PerformanceResult) and result.segment:
            m.windows_evaluated.labels(model, "segment_performance").inc()
            for metric, value in result.metrics.items():
                self._guarded(m.segment_performance, _value(value), model, result.segment, metric)
            return
        if isinstance(result, Evaluation) and result.model_version:  # a version's window: its own families
            self.versions.publish(model, result)
            return
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

    def restore(self, store: LatestResults, models: Iterable[str]) -> int:
        """Set the gauges from each model's latest stored rows, as :meth:`publish` set them
        when those windows closed (the window counters start at 0: they count this
        process's windows). Returns the rows read; a store that cannot answer is logged,
        not raised: the gauges then fill as windows close."""
        restored = 0
        for model in models:
            try:
                rows = store.latest_results(model)
                slices = store.latest_slice_results(model)
                versions = store.latest_version_results(model)
            except Exception as exc:
                log.warning("model %s: latest results not restored into the gauges: %s", model, exc)
                continue
            for row in rows:
                self._restore_row(model, row)
            for kind, family in (
                ("performance", self.metrics.performance_degraded),  # degraded when any metric of the window was
                ("estimated_performance", self.metrics.estimated_performance_drop),  # an alert when any metric's was
            ):
                flags = [bool(row["drift"]) for row in rows if row["kind"] == kind]
                if flags:
                    family.labels(model).set(int(any(flags)))
            for row in slices:
                self._restore_slice_row(model, row)
            self.versions.restore(model, versions)
            restored += len(rows) + len(slices) + len(versions)
        return restored

    def _restore_row(self, model: str, row: Mapping[str, Any]) -> None:
        m, kind, feature, method = self.metrics, row["kind"], row["feature"], row["method"]
        detail, drift, statistic = row.get("detail") or {}, int(bool(row["drift"])), row.get("statistic")
        version = row.get("reference_version") or ""
        if version.isdigit():
            m.reference_version.labels(model).set(int(version))
        if kind == "feature_drift":
            self._guarded(m.feature_drift, drift, model, feature)
            if detail.get("role") == "effect":
                self._guarded(m.feature_drift_score, _value(statistic), model, feature, method)
            elif detail.get("role") == "test":
                self._guarded(m.feature_drift_pvalue, _value(detail.get("adjusted_pvalue")), model, feature, method)
        elif kind == "prediction_drift":
            m.prediction_drift.labels(model).set(drift)
            if detail.get("role") == "effect":
                m.prediction_drift_score.labels(model, method).set(_value(statistic))
            elif detail.get("role") == "test":
                m.prediction_drift_pvalue.labels(model, method).set(_value(row.get("pvalue")))
        elif kind == "dataset_drift":
            m.window_records.labels(model).set(row.get("n_current") or 0)
            m.window_end.labels(model).set(_value(row.get("window_end")))
            m.drifted_features.labels(model).set(len(detail.get("drifted") or ()))
            m.dataset_drift_share.labels(model).set(_value(statistic))
            m.dataset_drift.labels(model).set(drift)
        elif kind == "quality":
            self._guarded(m.quality_ratio, _value(statistic), model, feature, method)
            self._guarded(m.quality_breach, drift, model, feature, method)
        elif kind == "latency":
            for quantile, key in (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99")):
                m.latency.labels(model, quantile).set(_value(detail.get(key)) / 1000.0)
            m.latency_slo_breach.labels(model).set(drift)
        elif kind == "performance":
            m.performance.labels(model, method).set(_value(statistic))
        elif kind == "estimated_performance":  # as stored by monitor.store.results.estimate_rows
            for bound, value in (
                ("estimate", statistic),
                ("lower", detail.get("lower")),
                ("upper", detail.get("upper")),
                ("threshold", row.get("threshold")),
            ):
                m.estimated_performance.labels(model, method, bound).set(_value(value))
        elif kind == "multivariate_drift":
            m.multivariate_drift_score.labels(model, method).set(_value(statistic))
            m.multivariate_drift.labels(model, method).set(drift)

    def _restore_slice_row(self, model: str, row: Mapping[str, Any]) -> None:
        """A slice's stored row back into the segment gauges, as :meth:`_segment` (and the
        slices' performance) set them (the pooled-records counter counts this process's)."""
        m, segment, kind, feature, method = self.metrics, row["segment"], row["kind"], row["feature"], row["method"]
        detail, drift, statistic = row.get("detail") or {}, int(bool(row["drift"])), row.get("statistic")
        guarded = self._guarded
        if kind == "feature_drift":
            guarded(m.segment_feature_drift, drift, model, segment, feature)
            if detail.get("role") == "effect":
                guarded(m.segment_feature_drift_score, _value(statistic), model, segment, feature, method)
        elif kind == "dataset_drift":
            m.segment_window_records.labels(model, segment).set(row.get("n_current") or 0)
            m.segment_drifted_features.labels(model, segment).set(len(detail.get("drifted") or ()))
        elif kind == "prediction_drift":
            m.segment_prediction_drift.labels(model, segment).set(drift)
        elif kind == "quality":
            guarded(m.segment_quality_breach, drift, model, segment, feature, method)
        elif kind == "performance":
            guarded(m.segment_performance, _value(statistic), model, segment, method)

    def _segment(self, model: str, result: Evaluation) -> None:
        """A slice's window (detectors.segments); rows of the key's ``__other__`` slice are
        counted in ``monitor_segment_records_pooled_total`` as its windows close."""
        m, segment, guarded = self.metrics, result.segment, self._guarded
        m.windows_evaluated.labels(model, "segment_drift").inc()
        key, _, value = segment.partition(":")
        if value == OTHER:
            m.segment_records_pooled.labels(model, key).inc(result.n)
        m.segment_window_records.labels(model, segment).set(result.n)
        m.segment_drifted_features.labels(model, segment).set(result.drift.n_drifted)
        for feature in result.drift.features:
            guarded(m.segment_feature_drift, int(feature.drift), model, segment, feature.feature)
            if feature.effect is not None:
                score = _value(feature.effect.statistic)
                guarded(m.segment_feature_drift_score, score, model, segment, feature.feature, feature.effect.method)
        if result.prediction is not None:
            m.segment_prediction_drift.labels(model, segment).set(int(result.prediction.drift))
        for check in result.quality.checks:
            guarded(
                m.segment_quality_breach, int(check.breached), model, segment, channel_name(check.channel), check.check
            )

    def _estimate(self, model: str, result: EstimatedPerformance | MultivariateDrift) -> None:
        """Estimated performance (per metric: the estimate, its band and the alert threshold)
        or one multivariate method's statistic and verdict."""
        m = self.metrics
        if isinstance(result, MultivariateDrift):
            m.windows_evaluated.labels(model, result.method).inc()  # each method once per window
            m.multivariate_drift_score.labels(model, result.method).set(_value(result.statistic))
            m.multivariate_drift.labels(model, result.method).set(int(result.drift))
            return
        m.windows_evaluated.labels(model, "estimated_performance").inc()
        for metric, e in result.metrics.items():
            for bound, value in (
                ("estimate", e.value),
                ("lower", e.lower),
                ("upper", e.upper),
                ("threshold", e.threshold),
            ):
                m.estimated_performance.labels(model, metric, bound).set(_value(value))
        m.estimated_performance_drop.labels(model).set(int(result.alert))

    def _guarded(self, family: Gauge, value: float, model: str, *labels: str) -> None:
        child = self.metrics.guard.labels(family, model, *labels)
        if child is not None:
            child.set(value)
