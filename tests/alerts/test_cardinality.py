"""The per-model series cap, on a fresh real registry."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from monitor.metrics import Metrics


def test_series_past_the_cap_are_not_created_and_are_counted() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry, max_series_per_model=3)
    guard = metrics.guard
    for feature in ("a", "b", "c", "d", "e"):
        child = guard.labels(metrics.feature_drift, "m", feature)
        if child is not None:
            child.set(1)
    assert guard.series("m") == 3
    assert [registry.get_sample_value("monitor_feature_drift", {"model": "m", "feature": f}) for f in "abcde"] == [
        1.0, 1.0, 1.0, None, None,
    ]  # fmt: skip
    assert registry.get_sample_value("monitor_metric_series_dropped_total", {"model": "m"}) == 2
    # existing series keep updating; another model has its own budget
    assert guard.labels(metrics.feature_drift, "m", "a") is not None
    assert guard.labels(metrics.quality_ratio, "other", "a", "null_increase") is not None
    assert registry.get_sample_value("monitor_metric_series_dropped_total", {"model": "m"}) == 2


def test_the_cap_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_series must be at least 1, got 0"):
        Metrics(CollectorRegistry(), max_series_per_model=0)
