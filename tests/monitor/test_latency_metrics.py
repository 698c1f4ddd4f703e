"""Latency is monitored from the records' ``latency_ms`` even when the model's reference
has no latency channel: the real app, from ingestion to the results API and /metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from support import car_loan_record, client, metric, settings, wait_for

from detectors.schema import LATENCY

# The numpy lower quantiles of 1..1000 ms, and the sketch's documented relative error.
EXACT_MS = {"0.5": 500.0, "0.95": 950.0, "0.99": 990.0}
RELATIVE_ERROR = 0.01


def test_latency_quantiles_slo_and_gauges_without_a_reference_latency_column(tmp_path: Path) -> None:
    car_loan = {
        "features": {"car_value": {"type": "numeric"}, "salary_range": {"type": "categorical"}},
        "prediction": {"kind": "binary"},
        # The reference comes from the first 1,000 records; the config names no latency column,
        # so it is profiled without latency even though those records carry latency_ms.
        "reference": {"from_first_records": 1000},
        "window": {"kind": "count", "size": 1000},
        "latency": {"slo_ms": 950, "quantile": 0.99},
    }
    latencies = np.random.default_rng(4).permutation(np.arange(1.0, 1001.0))
    assert np.quantile(latencies, [0.5, 0.95, 0.99], method="lower").tolist() == list(EXACT_MS.values())
    with client(settings(tmp_path, models={"car_loan": car_loan})) as (http, registry):
        warm_up = [car_loan_record(i, timestamp=1_700_000_000 + i) for i in range(1000)]
        assert http.post("/v1/records", json=warm_up).json()["accepted"] == 1000
        window = [
            car_loan_record(1000 + i, timestamp=1_700_001_000 + i, latency_ms=float(v)) for i, v in enumerate(latencies)
        ]
        assert http.post("/v1/records", json=window).json()["accepted"] == 1000

        def latency_rows() -> list[dict]:
            return http.get("/v1/models/car_loan/results", params={"kind": "latency"}).json()["results"]

        (row,) = wait_for(latency_rows, 20, "the latency result of window 0")
        (reference,) = http.get("/v1/models/car_loan/references").json()["references"]
        channels = reference["summary"]["channels"]
        assert "car_value" in channels and LATENCY not in channels  # no latency in the reference
        metrics_text = http.get("/metrics").text

    assert (row["window_seq"], row["method"], row["threshold"], row["drift"], row["n_current"]) == (
        0, "p99", 950.0, True, 1000,
    )  # fmt: skip
    estimates = {"0.5": row["detail"]["p50"], "0.95": row["detail"]["p95"], "0.99": row["detail"]["p99"]}
    assert row["statistic"] == estimates["0.99"]
    for quantile, exact in EXACT_MS.items():
        assert abs(estimates[quantile] - exact) <= RELATIVE_ERROR * exact, (quantile, estimates)
        seconds = metric(registry, "monitor_model_latency_seconds", model="car_loan", q=quantile)
        assert seconds == estimates[quantile] / 1000.0
        assert f'monitor_model_latency_seconds{{model="car_loan",q="{quantile}"}}' in metrics_text
    assert metric(registry, "monitor_latency_slo_breach", model="car_loan") == 1.0
    assert 'monitor_latency_slo_breach{model="car_loan"} 1.0' in metrics_text
