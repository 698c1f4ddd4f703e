"""The store's reads of each model version's newest window (SQLite and PostgreSQL): what
the version gauges restore and what the versions view draws; the whole population's and
the slices' rows never mix in."""

from __future__ import annotations

from dataclasses import replace

from prometheus_client import CollectorRegistry
from window_results import drift_evaluation

from monitor.detection import evaluation_rows
from monitor.metrics import Metrics
from monitor.report.links import Links
from monitor.report.versions import latest_version_rows, versions_page
from monitor.result_gauges import MetricsSink
from monitor.store.database import Store
from monitor.version_gauges import ActiveVersions


def _rows(seq: int, stored_at: float, drifted: bool, **slice_: str) -> list[dict]:
    window = replace(drift_evaluation(seq, {"f0": drifted, "f1": False}), **slice_)
    return [{**row, "created_at": stored_at} for row in evaluation_rows("m", window)]


def test_each_versions_newest_window_and_nothing_else(store: Store) -> None:
    store.add_results(
        _rows(0, 100.0, False, model_version="1") + _rows(1, 110.0, True, model_version="1")
        + _rows(0, 300.0, True, model_version="2") + _rows(0, 200.0, False, model_version="3")
        + _rows(5, 400.0, True) + _rows(7, 500.0, True, segment="region:eu")
    )  # fmt: skip
    newest = store.latest_version_results("m")
    assert sorted({(r["model_version"], r["window_seq"]) for r in newest}) == [("1", 1), ("2", 0), ("3", 0)]
    assert {r["segment"] for r in newest} == {""}
    # The view: the version stored last first, the effect rows and the dataset row of each.
    drawn = latest_version_rows(store, "m")
    order = list(dict.fromkeys(r["model_version"] for r in drawn))
    assert order == ["2", "3", "1"]
    assert sorted((r["model_version"], r["kind"], r["feature"]) for r in drawn if r["model_version"] == "1") == [
        ("1", "dataset_drift", ""), ("1", "feature_drift", "f0"), ("1", "feature_drift", "f1"),
    ]  # fmt: skip
    assert [r["drift"] for r in drawn if r["model_version"] == "1" and r["feature"] == "f0"] == [True]
    page = versions_page("m", drawn, ["f1", "f0"], Links())
    assert page.index(">f1</th>") < page.index(">f0</th>")  # the config's order
    assert page.count('<span class="version">') == 3
    # The gauges restored: the two versions stored last (max_active 2).
    registry = CollectorRegistry()
    sink = MetricsSink(Metrics(registry), {"m": ActiveVersions(2, frozenset())}.get)
    sink.restore(store, ["m"])
    shown = {
        (s.labels["version"], s.value)
        for family in registry.collect()
        if family.name == "monitor_version_drifted_features"
        for s in family.samples
    }
    assert shown == {("2", 1.0), ("3", 0.0)}
