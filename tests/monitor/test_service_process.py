"""End to end: `monitor serve` in a real process on a free port, talked to over HTTP."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import orjson
from support import ServiceProcess, car_loan_record, config, scrape

from monitor.store.database import Store

KSERVE_HEADERS = {
    "ce-specversion": "1.0",
    "ce-source": "http://localhost:9081/",
    "ce-inferenceservicename": "iris",
    "ce-namespace": "default",
    "ce-component": "predictor",
    "ce-endpoint": "iris-predictor-default",
    "content-type": "application/json",
}


def test_serve_ingest_metrics_and_clean_shutdown(tmp_path: Path, store_url: str) -> None:
    data = config(tmp_path, storage={"url": store_url})
    with ServiceProcess(tmp_path, data) as service:
        url = service.url
        assert httpx.post(f"{url}/v1/records", json=car_loan_record(0)).json()["accepted"] == 1
        batch = b"\n".join(orjson.dumps(car_loan_record(i)) for i in range(1, 101))
        r = httpx.post(f"{url}/v1/records", content=batch, headers={"content-type": "application/x-ndjson"})
        assert r.json()["accepted"] == 100
        # A KServe V1 request + response pair (binary mode) joins into one record.
        request = {**KSERVE_HEADERS, "ce-id": "req-1", "ce-type": "org.kubeflow.serving.inference.request"}
        response = {**KSERVE_HEADERS, "ce-id": "req-1", "ce-type": "org.kubeflow.serving.inference.response"}
        assert (
            httpx.post(f"{url}/v1/cloudevents", json={"instances": [[6.8, 2.8, 4.8, 1.4]]}, headers=request).status_code
            == 200
        )
        metrics = scrape(url)
        assert metrics.get('monitor_records_joined_total{model="iris"}', 0) == 0  # waiting for the response
        assert httpx.post(f"{url}/v1/cloudevents", json={"predictions": [1]}, headers=response).status_code == 200
        # Partial records still in the join buffer at shutdown must not be lost.
        partial = {"model": "car_loan", "id": "half", "inputs": {"car_value": 1}}
        assert httpx.post(f"{url}/v1/records", json=partial).json()["accepted"] == 1
        metrics = scrape(url)
        assert metrics['monitor_records_accepted_total{model="car_loan",source="http"}'] == 102
        assert metrics['monitor_records_joined_total{model="car_loan"}'] == 101
        assert metrics['monitor_records_accepted_total{model="iris",source="cloudevents"}'] == 2
        assert metrics['monitor_records_joined_total{model="iris"}'] == 1
        assert metrics["monitor_join_buffer_records"] == 1
        models = {m["name"]: m for m in httpx.get(f"{url}/v1/models").json()["models"]}
        assert models["iris"]["records"] == 1 and models["car_loan"]["records"] == 101
        # uvicorn re-raises the signal after its graceful shutdown, so the exit status says SIGTERM
        assert service.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
        assert "shut down cleanly" in service.log()
    with Store(data["storage"]["url"], migrate=False) as store:
        counts = store.counts()
        checkpointed = store.instance_checkpoint("default")
    assert counts[("car_loan", "http")]["accepted"] == 102
    assert counts[("car_loan", "pipeline")]["joined"] == 101
    # The partial record waits in the checkpoint for its other part (not drained as incomplete).
    assert counts[("car_loan", "pipeline")]["incomplete"] == 0
    assert set(checkpointed) == {"car_loan", "iris"}
    assert counts[("iris", "cloudevents")]["accepted"] == 2
    assert counts[("iris", "pipeline")]["joined"] == 1


def test_json_logs_and_bad_config(tmp_path: Path) -> None:
    data = config(tmp_path, server={"log_format": "json"})
    with ServiceProcess(tmp_path, data) as service:
        service.stop()
    lines = [orjson.loads(line) for line in service.log().splitlines() if line.startswith("{")]
    assert any(line["message"] == "shut down cleanly" and line["level"] == "info" for line in lines)
    bad = ServiceProcess(tmp_path, config(tmp_path, models={"m": {"features": {"x": {"type": "float64x"}}}}))
    try:
        bad.start(timeout=120)
    except RuntimeError as exc:
        assert "models.m.features.x.type: must be one of numeric, categorical, boolean, got 'float64x'" in str(exc)
    else:
        raise AssertionError("service started with an invalid config")
