"""Crash safety end to end: a real ``monitor serve`` fires a drift alert whose webhook cannot
be reached, is SIGKILLed while the delivery is being retried, and after a restart the
receiver gets the delivery exactly once, signed, with its idempotency key."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pandas as pd
from support import CAR_LOAN_FEATURES, ROOT, Receiver, ServiceProcess, config, free_port, wait_for

DATA = ROOT / "tests" / "data" / "car_loan"
SECRET = "end-to-end-secret"
WINDOW = 5000
CHUNK = WINDOW  # one window per request


def chunks() -> list[bytes]:
    analysis = pd.read_csv(DATA / "synthetic_car_loan_analysis.csv.gz")
    features = list(CAR_LOAN_FEATURES)
    return [
        b"\n".join(
            orjson.dumps(
                {
                    "model": "car_loan",
                    "id": str(row.id),
                    "timestamp": row.timestamp,
                    "inputs": {f: getattr(row, f) for f in features},
                    "prediction": row.y_pred_proba,
                }
            )
            for row in analysis.iloc[start : start + CHUNK].itertuples()
        )  # fmt: skip
        for start in range(0, len(analysis), CHUNK)
    ]


def post(service: ServiceProcess, body: bytes) -> None:
    r = httpx.post(
        f"{service.url}/v1/records", content=body, headers={"content-type": "application/x-ndjson"}, timeout=30
    )
    assert r.status_code == 200, r.text


def windows_evaluated(service: ServiceProcess) -> int:
    models = httpx.get(f"{service.url}/v1/models").json()["models"]
    return next(m["windows_evaluated"] for m in models if m["name"] == "car_loan")


def test_a_delivery_pending_at_a_crash_is_sent_exactly_once_after_restart(tmp_path: Path, store_url: str) -> None:
    port = free_port()  # the receiver's; nothing listens there yet: connection refused
    car_loan = {
        "features": CAR_LOAN_FEATURES,
        "prediction": {"kind": "binary"},
        "reference": {"file": str(DATA / "synthetic_car_loan_reference.csv.gz"), "prediction_column": "y_pred_proba"},
        "window": {"kind": "count", "size": WINDOW},
    }
    webhook = {
        "name": "retrain", "url": f"http://127.0.0.1:{port}/retrain", "rules": ["dataset-drift"],
        "secret_env": "RETRAIN_SECRET", "backoff_base_seconds": 1, "backoff_max_seconds": 2, "max_attempts": 50,
        "timeout_seconds": 2,
    }  # fmt: skip
    data = config(
        tmp_path,
        storage={"url": store_url},
        models={"car_loan": car_loan},
        alerts={"rules": [{"name": "dataset-drift", "kind": "dataset_drift", "severity": "critical"}],
                "webhooks": [webhook]},
    )  # fmt: skip
    env = {"RETRAIN_SECRET": SECRET}
    bodies = chunks()

    with ServiceProcess(tmp_path, data, env) as first:
        firing: list[dict[str, Any]] = []
        posted = 0
        while not firing:
            assert bodies, "the data never fired the dataset-drift alert"
            post(first, bodies.pop(0))
            posted += CHUNK
            # Stop at the first window that fires: wait until the windows closed so far are
            # evaluated and published before looking.
            closed = posted // WINDOW
            wait_for(lambda: windows_evaluated(first) == closed, 30, "the closed windows' evaluation")  # noqa: B023
            firing = httpx.get(f"{first.url}/v1/alerts", params={"state": "firing"}).json()["alerts"]
        (alert,) = firing
        # At least one attempt failed (connection refused): the crash comes in the middle of retrying.
        (delivery,) = wait_for(
            lambda: [d for d in httpx.get(f"{first.url}/v1/webhooks/deliveries").json()["deliveries"] if d["attempts"]],
            10, "a failed attempt",
        )  # fmt: skip
        assert (delivery["state"], delivery["alert_id"]) == ("pending", alert["alert_id"])
        assert delivery["last_error"].startswith("ConnectError")
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL
        assert SECRET not in first.log()

    receiver = Receiver(port, secret=SECRET).start()
    try:
        with ServiceProcess(tmp_path, data, env) as second:
            wait_for(lambda: receiver.requests, 15, "the delivery after the restart")
            for body in bodies:  # later windows: the alert stays firing, no new transition, no new delivery
                post(second, body)
            time.sleep(3)
            assert len(receiver.requests) == 1
            (request,) = receiver.requests
            assert request["signed"]
            assert request["headers"]["Idempotency-Key"] == f"{alert['alert_id']}:firing:retrain"
            body = orjson.loads(request["body"])
            assert body["alert_id"] == alert["alert_id"] and body["state"] == "firing"
            assert body["model"] == "car_loan" and body["rule"] == "dataset-drift"
            (row,) = httpx.get(f"{second.url}/v1/webhooks/deliveries").json()["deliveries"]
            assert row["state"] == "delivered" and row["attempts"] >= 2
            metrics = wait_for(
                lambda: "monitor_dataset_drift{" in (text := httpx.get(f"{second.url}/metrics").text) and text,
                10, "the drift gauges",
            )  # fmt: skip
            assert 'monitor_alerts_firing{model="car_loan",severity="critical"} 1.0' in metrics
            assert 'monitor_dataset_drift{model="car_loan"} 1.0' in metrics
            assert 'monitor_webhook_deliveries_total{outcome="delivered",webhook="retrain"} 1.0' in metrics
            assert "monitor_webhook_outbox_pending 0.0" in metrics
            assert SECRET not in second.log()
    finally:
        receiver.stop()
