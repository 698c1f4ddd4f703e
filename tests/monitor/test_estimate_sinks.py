"""Estimates made before labels come (issue 21) through the service's sinks: rows in a real
store (SQLite and PostgreSQL), gauges in a fresh registry, and the two alert kinds in the
alert engine, on car-loan windows 0 (before the drop) and 5 (after it)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from prometheus_client import CollectorRegistry

from alerts.engine import AlertEngine
from detectors.columns import Batch
from detectors.estimation.cbpe import EstimatedPerformance
from detectors.estimation.fitting import fit_estimators
from detectors.estimation.multivariate import MultivariateDrift
from detectors.model import DetectorSettings, ModelDetector
from detectors.profiles import ReferenceProfile
from detectors.schema import Schema
from detectors.windows.policies import WindowPolicy
from monitor.metrics import Metrics
from monitor.result_gauges import MetricsSink
from monitor.store.results import estimate_rows

DATA = Path(__file__).resolve().parents[1] / "data" / "car_loan"
SCHEMA = Schema(
    {
        "car_value": "numeric", "salary_range": "categorical", "debt_to_income_ratio": "numeric",
        "loan_length": "numeric", "repaid_loan_on_prev_car": "categorical", "size_of_downpayment": "categorical",
        "driver_tenure": "numeric",
    },
    prediction_kind="binary",
    prediction_column="y_pred_proba",
)  # fmt: skip


@pytest.fixture(scope="module")
def estimates() -> dict[int, list[EstimatedPerformance | MultivariateDrift]]:
    """The estimates of car-loan analysis windows 0 and 5 (5,000 rows each)."""
    reference = pd.read_csv(DATA / "synthetic_car_loan_reference.csv.gz")
    analysis = pd.read_csv(DATA / "synthetic_car_loan_analysis.csv.gz")
    profile = ReferenceProfile.from_frame(reference, SCHEMA, version="1")
    estimators = fit_estimators(reference, SCHEMA, label_column="repaid", threshold=0.65)
    settings = DetectorSettings(policy=WindowPolicy("count", size=5_000), sample_size=5_000, estimators=estimators)
    detector = ModelDetector(profile, settings)
    windows = detector.close(Batch.from_frame(analysis.iloc[:30_000], SCHEMA, default_timestamp=0.0))
    assert [w.seq for w in windows] == [0, 1, 2, 3, 4, 5]
    return {w.seq: detector.estimate(w) for w in windows if w.seq in (0, 5)}


def test_estimates_become_rows_of_the_results_table(store, estimates) -> None:
    for found in estimates.values():
        for estimate in found:
            store.add_results(estimate_rows("car_loan", estimate))
    rows = store.results("car_loan", kind="estimated_performance")
    assert [(r["window_seq"], r["method"]) for r in rows] == [
        (seq, m) for seq in (0, 5) for m in ("roc_auc", "accuracy", "precision", "recall", "f1")
    ]
    cbpe = {seq: next(e for e in found if isinstance(e, EstimatedPerformance)) for seq, found in estimates.items()}
    for row in rows:
        metric = cbpe[row["window_seq"]].metrics[row["method"]]
        assert (row["statistic"], row["threshold"], row["drift"]) == (metric.value, metric.threshold, metric.alert)
        assert row["n_current"] == 5_000 and row["detail"]["lower"] == metric.lower
    assert [r["drift"] for r in rows if r["method"] == "accuracy"] == [False, True]
    [pca0, pca5] = store.results("car_loan", kind="multivariate_drift")
    assert (pca0["method"], pca0["n_current"], pca0["n_reference"]) == ("pca_reconstruction", 5_000, 50_000)
    # Adding the same window's rows again stores nothing twice.
    store.add_results(estimate_rows("car_loan", estimates[0][0]))
    assert len(store.results("car_loan", kind="estimated_performance")) == 10


def test_estimates_set_the_gauges_and_fire_the_alert_kinds(estimates) -> None:
    registry = CollectorRegistry()
    sink = MetricsSink(Metrics(registry))
    engine = AlertEngine(
        [
            {"name": "estimated-accuracy", "kind": "estimated_performance_drop", "metrics": ["accuracy"]},
            {"name": "joint", "kind": "multivariate_drift"},
        ]
    )
    fired: dict[int, list[tuple[str, str, str]]] = {}
    for seq, found in estimates.items():
        for estimate in found:
            sink.publish("car_loan", "1", estimate)
            for t in engine.observe("car_loan", "1", estimate, now=1_000.0 + seq):
                fired.setdefault(seq, []).append((t.rule, t.feature, t.to_state))
    cbpe5 = next(e for e in estimates[5] if isinstance(e, EstimatedPerformance))
    pca5 = next(e for e in estimates[5] if isinstance(e, MultivariateDrift))
    get = registry.get_sample_value
    accuracy = cbpe5.metrics["accuracy"]
    assert (
        get("monitor_estimated_performance", {"model": "car_loan", "metric": "accuracy", "bound": "estimate"})
        == accuracy.value
    )
    assert (
        get("monitor_estimated_performance", {"model": "car_loan", "metric": "accuracy", "bound": "threshold"})
        == accuracy.threshold
    )
    assert get("monitor_estimated_performance_drop", {"model": "car_loan"}) == 1.0
    assert (
        get("monitor_multivariate_drift_score", {"model": "car_loan", "method": "pca_reconstruction"}) == pca5.statistic
    )
    assert get("monitor_multivariate_drift", {"model": "car_loan", "method": "pca_reconstruction"}) == float(pca5.drift)
    assert get("monitor_windows_evaluated_total", {"model": "car_loan", "kind": "estimated_performance"}) == 2.0
    # Window 0 is clean; window 5's estimated accuracy is under the threshold: the alert fires.
    assert ("estimated-accuracy", "", "firing") not in fired.get(0, [])
    assert ("estimated-accuracy", "", "firing") in fired[5]
    assert [(f, s) for r, f, s in fired.get(5, []) if r == "joint"] == (
        [("pca_reconstruction", "firing")] if pca5.drift else []
    )
