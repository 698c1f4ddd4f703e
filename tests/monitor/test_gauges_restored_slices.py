"""A restart restores the gauges of the estimate kinds (estimated performance, multivariate
drift) and of the segments (each slice's latest window, its performance too) from the
store, as it does the whole population's (tests/monitor/test_gauges_restored.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from support import CAR_LOAN_FEATURES, ROOT, changed_gauges, client, gauge_values, settings, wait_for

RESTORED = (
    "monitor_estimated_performance", "monitor_estimated_performance_drop", "monitor_multivariate_drift_score",
    "monitor_multivariate_drift", "monitor_segment_feature_drift", "monitor_segment_feature_drift_score",
    "monitor_segment_drifted_features", "monitor_segment_prediction_drift", "monitor_segment_quality_breach",
    "monitor_segment_window_records", "monitor_segment_performance",
)  # fmt: skip
ANALYSIS = ROOT / "tests" / "data" / "car_loan" / "synthetic_car_loan_analysis.csv.gz"
TARGET = ROOT / "tests" / "data" / "car_loan" / "synthetic_car_loan_analysis_target.csv.gz"
N = 800


def test_a_restart_keeps_the_estimates_and_the_slices_in_the_gauges(tmp_path: Path) -> None:
    model = {
        "features": CAR_LOAN_FEATURES,
        "reference": {"file": str(ROOT / "monitor" / "data" / "car_loan_reference.csv.gz"),
                      "prediction_column": "y_pred", "label_column": "repaid"},
        "window": {"size": N // 2},
        "performance": {"window_size": N // 4, "min_labels": 50},
        # No reference slices (the file has no region): both regions take a slot from traffic.
        "segments": {"keys": ["region"], "max_values": 2, "admit_rows": 10},
    }  # fmt: skip
    config = settings(tmp_path, models={"car_loan": model})
    rows = pd.read_csv(ANALYSIS).tail(N)  # the drifted period
    labels = pd.read_csv(TARGET).set_index("id")["repaid"]
    records = [
        {"model": "car_loan", "id": str(row["id"]), "timestamp": float(1.7e9 + i),
         "inputs": {name: row[name] for name in CAR_LOAN_FEATURES}, "prediction": int(row["y_pred"]),
         "label": int(labels[row["id"]]), "segment": {"region": "north" if i % 2 else "south"}}
        for i, (_, row) in enumerate(rows.iterrows())
    ]  # fmt: skip
    with client(config) as (http, registry):
        assert http.post("/v1/records", json=records).json()["accepted"] == N

        def settled() -> bool:
            kinds = {"segment_drift": 2, "segment_performance": 4, "estimated_performance": 2, "pca_reconstruction": 2}
            return all(
                registry.get_sample_value("monitor_windows_evaluated_total", {"model": "car_loan", "kind": kind}) == n
                for kind, n in kinds.items()
            )

        wait_for(settled, 60, "every whole, estimate and slice window")
        before = gauge_values(registry, RESTORED)
    # Precondition: every family set, for both slices.
    assert {name for name, _ in before} == set(RESTORED)
    shown = {dict(labels)["segment"] for name, labels in before if name == "monitor_segment_performance"}
    assert shown == {"region:north", "region:south"}
    with client(config) as (http, registry):  # no traffic: no window closes after the restart
        after = gauge_values(registry, RESTORED)
    assert after.keys() == before.keys()
    assert changed_gauges(before, after) == []
