"""Issue 17, item 4: a restart restores each model's latest results into the gauges, so the
drift panels (and a Prometheus ``for:``) do not blank until the next window closes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from support import CAR_LOAN_FEATURES, ROOT, changed_gauges, client, gauge_values, settings, wait_for

RESTORED = (
    "monitor_window_records", "monitor_window_end_timestamp_seconds", "monitor_reference_version",
    "monitor_feature_drift_score", "monitor_feature_drift_pvalue", "monitor_feature_drift", "monitor_drifted_features",
    "monitor_dataset_drift_share", "monitor_dataset_drift", "monitor_prediction_drift_score",
    "monitor_prediction_drift_pvalue", "monitor_prediction_drift", "monitor_quality_ratio", "monitor_quality_breach",
    "monitor_model_latency_seconds", "monitor_latency_slo_breach", "monitor_performance", "monitor_performance_degraded",
)  # fmt: skip
ANALYSIS = ROOT / "tests" / "data" / "car_loan" / "synthetic_car_loan_analysis.csv.gz"
TARGET = ROOT / "tests" / "data" / "car_loan" / "synthetic_car_loan_analysis_target.csv.gz"
N = 400


def test_a_restart_keeps_the_latest_window_in_the_gauges(tmp_path: Path) -> None:
    model = {
        "features": CAR_LOAN_FEATURES,
        "reference": {"file": str(ROOT / "monitor" / "data" / "car_loan_reference.csv.gz"),
                      "prediction_column": "y_pred", "label_column": "repaid"},
        "window": {"size": N // 2},
        "performance": {"window_size": N // 2, "min_labels": 50},
        "latency": {"slo_ms": 5.0},
    }  # fmt: skip
    config = settings(tmp_path, models={"car_loan": model})
    rows = pd.read_csv(ANALYSIS).tail(N)  # the drifted period
    labels = pd.read_csv(TARGET).set_index("id")["repaid"]
    records = [
        {"model": "car_loan", "id": str(row["id"]), "timestamp": float(1.7e9 + i),
         "inputs": {name: row[name] for name in CAR_LOAN_FEATURES}, "prediction": int(row["y_pred"]),
         "latency_ms": float(1 + i % 9), "label": int(labels[row["id"]])}
        for i, (_, row) in enumerate(rows.iterrows())
    ]  # fmt: skip
    with client(config) as (http, registry):
        assert http.post("/v1/records", json=records).json()["accepted"] == N
        wait_for(lambda: registry.get_sample_value("monitor_performance", {"model": "car_loan", "metric": "accuracy"})
                 is not None and registry.get_sample_value("monitor_window_records", {"model": "car_loan"}) == N // 2
                 and http.get("/v1/models").json()["models"][0]["windows_evaluated"] == 2, 60, "two windows")  # fmt: skip
        before = gauge_values(registry, RESTORED)
    # Precondition: the windows drifted and set every kind of gauge.
    assert before[("monitor_dataset_drift", (("model", "car_loan"),))] == 1.0
    assert {name for name, _ in before} == set(RESTORED)
    with client(config) as (http, registry):  # no traffic: no window closes after the restart
        after = gauge_values(registry, RESTORED)
    assert after.keys() == before.keys()
    assert changed_gauges(before, after) == []
