"""The labelled car-loan drift case through the real pipeline, store and metrics.

Reference = the reference period; the analysis period streamed in time order in 10
windows of 5,000 records; then the delayed labels. The known truth (shared data README,
measured with scipy): car_value, salary_range, loan_length, repaid_loan_on_prev_car
drift in windows 5-9 and not in 0-4; debt_to_income_ratio, size_of_downpayment,
driver_tenure never drift.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry
from scipy import stats
from support import CAR_LOAN_FEATURES, ROOT

from collectors.files import TableColumns, table_chunks
from monitor.metrics import Metrics
from monitor.pipeline import Pipeline
from monitor.records import Record
from monitor.reference_startup import load_references
from monitor.result_gauges import MetricsSink
from monitor.settings import settings_from_mapping
from monitor.store.database import Store
from monitor.store.result_sink import StoreSink
from monitor.validation import Validator

DATA = ROOT / "tests" / "data" / "car_loan"
DRIFTING = {"car_value", "salary_range", "loan_length", "repaid_loan_on_prev_car"}
STABLE = {"debt_to_income_ratio", "size_of_downpayment", "driver_tenure"}


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("car_loan")
    settings = settings_from_mapping(
        {
            "storage": {"url": f"sqlite:///{tmp / 'monitor.db'}"},
            "models": {
                "car_loan": {
                    "features": CAR_LOAN_FEATURES,
                    "prediction": {"kind": "binary"},
                    "reference": {
                        "file": str(DATA / "synthetic_car_loan_reference.csv.gz"),
                        "prediction_column": "y_pred_proba",
                        "label_column": "repaid",
                    },
                    "window": {"kind": "count", "size": 5000},
                    "performance": {"window_size": 5000},
                }
            },
        }
    )
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    store = Store(settings.storage.url)
    pipeline = Pipeline(settings, metrics, sinks=[StoreSink(store), MetricsSink(metrics)])
    load_references(pipeline, store)
    validator = Validator(settings.limits, pipeline.configs, check_event_time=False)  # a file: history
    analysis = pd.read_csv(DATA / "synthetic_car_loan_analysis.csv.gz")
    columns = TableColumns(prediction="y_pred_proba")
    for records, rejections in table_chunks(analysis, "car_loan", settings.models["car_loan"], validator, columns):
        assert not rejections
        pipeline.ingest(records, [], "file")
    targets = pd.read_csv(DATA / "synthetic_car_loan_analysis_target.csv.gz")
    labels = [
        Record(model="car_loan", id=str(i), label=int(y), has_label=True)
        for i, y in zip(targets.id, targets.repaid, strict=True)
    ]
    for start in range(0, len(labels), 1000):
        pipeline.ingest(labels[start : start + 1000], [], "file")
    pipeline.settle()
    yield pipeline, store, registry, analysis, targets
    store.close()


def test_drift_flags_match_the_known_truth(replayed) -> None:
    pipeline, store, _, _, _ = replayed
    assert pipeline.models["car_loan"].windows_evaluated == 10
    rows = store.results("car_loan", kind="feature_drift", limit=10_000)
    flagged = {(r["window_seq"], r["feature"]) for r in rows if r["drift"]}
    for window in range(10):
        drifted = {feature for seq, feature in flagged if seq == window}
        assert drifted == (DRIFTING if window >= 5 else set()), window
    assert not {feature for _, feature in flagged} & STABLE
    dataset = {r["window_seq"]: r for r in store.results("car_loan", kind="dataset_drift")}
    assert [dataset[w]["drift"] for w in range(10)] == [False] * 5 + [True] * 5
    assert dataset[7]["statistic"] == pytest.approx(4 / 7)


def test_statistics_match_scipy_on_the_same_samples(replayed) -> None:
    """The p-values are computed on the bounded samples; against scipy on the raw window
    they agree in verdict, and the KS statistic is close (the sample holds the whole window)."""
    _, store, _, analysis, _ = replayed
    rows = store.results("car_loan", kind="feature_drift", feature="car_value", method="ks")
    reference = pd.read_csv(DATA / "synthetic_car_loan_reference.csv.gz")
    for row in rows:
        window = analysis.car_value.to_numpy()[row["window_seq"] * 5000 : (row["window_seq"] + 1) * 5000]
        expected = stats.ks_2samp(reference.car_value.to_numpy(), window)
        # reference side is a 10,000-value seeded sample of the 50,000 rows
        assert row["statistic"] == pytest.approx(expected.statistic, abs=0.02)
        assert (row["pvalue"] < 0.001) == (expected.pvalue < 0.001)
        assert row["n_current"] == 5000 and row["n_reference"] == 10_000


def test_delayed_labels_give_per_window_performance(replayed) -> None:
    _, store, registry, analysis, targets = replayed
    rows = store.results("car_loan", kind="performance", limit=1000)
    by_metric = {(r["window_seq"], r["method"]): r for r in rows}
    merged = analysis.merge(targets, on="id")
    for window in range(10):
        part = merged.iloc[window * 5000 : (window + 1) * 5000]
        accuracy = float(np.mean((part.y_pred_proba >= 0.5).astype(int) == part.repaid))
        positives, negatives = part.y_pred_proba[part.repaid == 1], part.y_pred_proba[part.repaid == 0]
        auc = stats.mannwhitneyu(positives, negatives).statistic / (len(positives) * len(negatives))
        assert by_metric[(window, "accuracy")]["statistic"] == pytest.approx(accuracy, abs=1e-12)
        assert by_metric[(window, "roc_auc")]["statistic"] == pytest.approx(auc, abs=1e-9)
        assert by_metric[(window, "accuracy")]["n_current"] == 5000
    last = by_metric[(9, "roc_auc")]["statistic"]
    assert registry.get_sample_value(
        "monitor_performance", {"model": "car_loan", "metric": "roc_auc"}
    ) == pytest.approx(last)


def test_metrics_show_the_latest_window(replayed) -> None:
    _, _, registry, _, _ = replayed

    def gauge(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"model": "car_loan", **labels})

    for feature in DRIFTING:
        assert gauge("monitor_feature_drift", feature=feature) == 1.0
    for feature in STABLE:
        assert gauge("monitor_feature_drift", feature=feature) == 0.0
    assert gauge("monitor_drifted_features") == 4.0
    assert gauge("monitor_dataset_drift_share") == pytest.approx(4 / 7)
    assert gauge("monitor_windows_evaluated_total", kind="drift") == 10.0
    assert gauge("monitor_windows_evaluated_total", kind="performance") == 10.0
    assert gauge("monitor_reference_version") == 1.0
    assert gauge("monitor_feature_drift_score", feature="car_value", method="wasserstein_normed") > 0.1
