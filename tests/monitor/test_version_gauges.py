"""The version gauges' bound against a fresh registry: past ``max_active`` versions with
series, the retired version's series go (and their series-cap slots come back); a window of
a version retired meanwhile sets nothing; a restore keeps the ``max_active`` versions stored
last."""

from __future__ import annotations

from dataclasses import replace

from prometheus_client import CollectorRegistry
from window_results import drift_evaluation

from monitor.metrics import Metrics
from monitor.result_gauges import MetricsSink
from monitor.version_gauges import ActiveVersions

FAMILIES = ("monitor_version_feature_drift", "monitor_version_feature_drift_score", "monitor_version_drifted_features",
            "monitor_version_window_records")  # fmt: skip


def _shown(registry: CollectorRegistry) -> dict[str, set[str]]:
    """Family -> the versions it has series of."""
    return {
        family.name: {sample.labels["version"] for sample in family.samples}
        for family in registry.collect()
        if family.name in FAMILIES
    }


def test_a_retired_versions_series_go_when_the_newcomer_is_shown() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    active = {"m": ActiveVersions(2, frozenset({"1", "2"}))}
    sink = MetricsSink(metrics, active.get)
    window = drift_evaluation(0, {"f0": True, "f1": False})
    for version in ("1", "2"):
        sink.publish("m", "1", replace(window, model_version=version))
    assert _shown(registry) == dict.fromkeys(FAMILIES, {"1", "2"})
    assert registry.get_sample_value("monitor_version_feature_drift_score",
                                     {"model": "m", "version": "2", "feature": "f0", "method": "wasserstein"}) == 0.4  # fmt: skip
    assert registry.get_sample_value("monitor_version_drifted_features", {"model": "m", "version": "1"}) == 1.0
    used = metrics.guard.series("m")
    assert used == 2 * (2 + 2)  # per version: drift of f0, f1; score of f0, f1
    # Version 3 comes: the state retires version 1 (least recently seen).
    active["m"] = ActiveVersions(2, frozenset({"2", "3"}))
    sink.publish("m", "1", replace(window, model_version="1", window_seq=1))  # evaluated after its retirement
    assert _shown(registry) == dict.fromkeys(FAMILIES, {"1", "2"})  # nothing set, nothing removed yet
    sink.publish("m", "1", replace(window, model_version="3"))
    assert _shown(registry) == dict.fromkeys(FAMILIES, {"2", "3"})
    assert metrics.guard.series("m") == used
    assert registry.get_sample_value("monitor_windows_evaluated_total", {"model": "m", "kind": "version_drift"}) == 4


def test_a_restore_keeps_the_versions_stored_last() -> None:
    rows = []
    for version, stored_at in (("1", 100.0), ("2", 300.0), ("3", 200.0)):
        for feature, drift in (("f0", version == "2"), ("f1", False)):
            rows.append({"model_version": version, "kind": "feature_drift", "feature": feature, "method": "wasserstein",
                         "statistic": 0.4 if drift else 0.02, "drift": drift, "detail": {"role": "effect"},
                         "created_at": stored_at, "window_end": 1.0})  # fmt: skip
        rows.append({"model_version": version, "kind": "dataset_drift", "feature": "", "method": "share",
                     "statistic": 0.5, "drift": False, "n_current": 700, "detail": {"drifted": ["f0"]},
                     "created_at": stored_at, "window_end": 1.0})  # fmt: skip

    class Stored:
        def latest_results(self, model: str) -> list[dict]:
            return []

        def latest_slice_results(self, model: str) -> list[dict]:
            return []

        def latest_version_results(self, model: str) -> list[dict]:
            return rows

    registry = CollectorRegistry()
    sink = MetricsSink(Metrics(registry), {"m": ActiveVersions(2, frozenset())}.get)
    assert sink.restore(Stored(), ["m"]) == len(rows)
    assert _shown(registry) == dict.fromkeys(FAMILIES, {"2", "3"})
    assert (
        registry.get_sample_value("monitor_version_feature_drift", {"model": "m", "version": "2", "feature": "f0"}) == 1
    )
    assert registry.get_sample_value("monitor_version_window_records", {"model": "m", "version": "3"}) == 700
