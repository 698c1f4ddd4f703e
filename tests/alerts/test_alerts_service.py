"""Alerts end to end in the real app: the car-loan analysis period posted over HTTP fires
the configured rules at the expected windows; the alerts, their transitions and the
firing gauge show it."""

from __future__ import annotations

from pathlib import Path

import orjson
import pandas as pd
from support import ROOT, client, metric, settings

DATA = ROOT / "tests" / "data" / "car_loan"
DRIFTING = ["car_value", "loan_length", "repaid_loan_on_prev_car", "salary_range"]


def test_drift_alerts_fire_at_the_expected_windows(tmp_path: Path, store_url: str) -> None:
    model = {
        "reference": {"file": str(DATA / "synthetic_car_loan_reference.csv.gz"), "prediction_column": "y_pred_proba"},
        "window": {"kind": "count", "size": 5000},
    }
    rules = [
        {"name": "feature-drift", "kind": "feature_drift", "for_windows": 2, "severity": "warning"},
        {"name": "dataset-drift", "kind": "dataset_drift", "severity": "critical"},
    ]
    cfg = settings(tmp_path, storage={"url": store_url}, alerts={"rules": rules})
    cfg.models["car_loan"] = cfg.models["car_loan"].model_copy(
        update={k: type(getattr(cfg.models["car_loan"], k)).model_validate(v) for k, v in model.items()}
    )
    analysis = pd.read_csv(DATA / "synthetic_car_loan_analysis.csv.gz")
    features = list(cfg.models["car_loan"].features)
    with client(cfg) as (http, registry):
        for start in range(0, len(analysis), 1000):
            part = analysis.iloc[start : start + 1000]
            body = b"\n".join(
                orjson.dumps({"model": "car_loan", "id": str(row.id), "timestamp": row.timestamp,
                              "inputs": {f: getattr(row, f) for f in features}, "prediction": row.y_pred_proba})
                for row in part.itertuples()
            )  # fmt: skip
            r = http.post("/v1/records", content=body, headers={"content-type": "application/x-ndjson"})
            assert r.json()["accepted"] == len(part)
        http.app.state.pipeline.settle()
        firing = http.get("/v1/alerts", params={"state": "firing"}).json()["alerts"]
        assert sorted((a["rule"], a["feature"]) for a in firing) == [("dataset-drift", "")] + [
            ("feature-drift", f) for f in DRIFTING
        ]
        by_feature = {a["feature"]: a for a in firing}
        assert by_feature[""]["window_seq"] == 5 and by_feature[""]["severity"] == "critical"
        transitions = http.get(f"/v1/alerts/{by_feature['car_value']['alert_id']}/transitions").json()["transitions"]
        assert [(t["from_state"], t["to_state"], t["window_seq"]) for t in transitions] == [
            ("inactive", "pending", 5),
            ("pending", "firing", 6),
        ]
        assert metric(registry, "monitor_alerts_firing", model="car_loan", severity="warning") == 4
        assert metric(registry, "monitor_alerts_firing", model="car_loan", severity="critical") == 1
        assert http.get("/v1/alerts", params={"state": "bogus"}).status_code == 422
        assert http.get("/v1/alerts/nope/transitions").status_code == 404
    # A restart restores the engine from the store: the alerts are still firing.
    with client(cfg) as (http, registry):
        assert metric(registry, "monitor_alerts_firing", model="car_loan", severity="warning") == 4
        assert len(http.get("/v1/alerts", params={"state": "firing", "model": "car_loan"}).json()["alerts"]) == 5
