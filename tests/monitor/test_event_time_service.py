"""Against a real `monitor serve`: a record or CloudEvent stamped in year 9999 is refused
and time windows go on closing; one request naming 10,000 new models registers
``limits.max_models`` of them in all."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families
from support import ServiceProcess, wait_for

# Three models with the same time windows and the same traffic; the poison goes to two of them.
MODELS = ("clean", "poisoned_http", "poisoned_ce")
FEATURES = {"x": {"type": "numeric"}, "c": {"type": "categorical"}}
PERIOD = 60.0
PER_PERIOD = 150  # records per period; min_records is 100, so each period closes as one window
PERIODS = 7  # periods 0..6 of traffic: 0..5 close when the next one starts, 6 stays open
YEAR_9999 = "9999-12-31T00:00:00Z"


def _model(name: str) -> dict[str, Any]:
    return {
        "features": FEATURES,
        "prediction": {"kind": "binary"},
        "reference": {"from_first_records": 300},
        "window": {"kind": "time", "seconds": PERIOD, "min_records": 100},
    }


def _service_config(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "storage": {"url": f"sqlite:///{tmp_path / 'monitor.db'}", "flush_interval_seconds": 0.2},
        "server": {"evaluation": "thread"},
        "models": {name: _model(name) for name in MODELS},
        **extra,
    }


def _records(model: str, first: int, times: list[float]) -> bytes:
    rows = [
        {"model": model, "id": f"{model}-{first + i}", "timestamp": t,
         "inputs": {"x": (first + i) % 17 * 0.5, "c": "ab"[(first + i) % 2]}, "prediction": (first + i) % 2}
        for i, t in enumerate(times)
    ]  # fmt: skip
    return b"\n".join(map(orjson.dumps, rows))


def _post(url: str, body: bytes) -> dict[str, Any]:
    r = httpx.post(f"{url}/v1/records", content=body, headers={"content-type": "application/x-ndjson"}, timeout=30)
    assert r.status_code in (200, 422), r.text
    return r.json()


def _samples(url: str, name: str) -> dict[str, float]:
    """``name``'s samples: their labels as ``a="x",b="y"`` (sorted by name) -> value."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return {
        ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def _windows(url: str, model: str) -> float:
    return _samples(url, "monitor_windows_evaluated_total").get(f'kind="drift",model="{model}"', 0.0)


def _cloudevent(url: str, kind: str, event_id: str, time_attribute: str, body: dict[str, Any]) -> dict[str, Any]:
    headers = {
        "ce-specversion": "1.0", "ce-id": event_id, "ce-source": "http://localhost:9081/",
        "ce-type": f"org.kubeflow.serving.inference.{kind}", "ce-inferenceservicename": "poisoned_ce",
        "ce-time": time_attribute, "content-type": "application/json",
    }  # fmt: skip
    r = httpx.post(f"{url}/v1/cloudevents", json=body, headers=headers, timeout=30)
    return {"status": r.status_code, **r.json()}


def test_a_year_9999_record_is_refused_and_windows_go_on_closing(tmp_path: Path) -> None:
    # Event times two hours back, on period boundaries (well within the 30 days accepted).
    base = math.floor((time.time() - 7_200) / PERIOD) * PERIOD
    with ServiceProcess(tmp_path, _service_config(tmp_path)) as service:
        url = service.url
        for model in MODELS:  # the reference: the first 300 records, just before the first period
            assert _post(url, _records(model, 0, [base - 30 + i * 0.1 for i in range(300)]))["accepted"] == 300

        def period(k: int) -> None:
            times = [base + k * PERIOD + j * PERIOD / PER_PERIOD for j in range(PER_PERIOD)]
            for model in MODELS:
                assert _post(url, _records(model, 1_000 + k * PER_PERIOD, times))["accepted"] == PER_PERIOD

        for k in range(3):
            period(k)
        wait_for(lambda: all(_windows(url, m) == 2 for m in MODELS), 60, "periods 0 and 1 evaluated")
        # The poison, mid-way through period 2: a record over /v1/records, and a KServe
        # request/response pair (they would join into one complete record) over /v1/cloudevents.
        poison = {"model": "poisoned_http", "id": "p", "timestamp": YEAR_9999, "inputs": {"x": 1, "c": "a"},
                  "prediction": 1}  # fmt: skip
        answer = httpx.post(f"{url}/v1/records", json=poison, timeout=30)
        assert answer.status_code == 422
        [error] = answer.json()["errors"]
        assert (error["index"], error["path"], error["reason"]) == (0, "timestamp", "timestamp_out_of_range")
        assert error["message"].startswith("9999-12-31T00:00:00Z is ") and error["message"].endswith(
            "s ahead is accepted (limits.max_future_seconds)"
        )
        request = _cloudevent(url, "request", "p1", YEAR_9999, {"instances": [[1.0, "a"]]})
        response = _cloudevent(url, "response", "p1", YEAR_9999, {"predictions": [1]})
        for answer_ce in (request, response):
            assert answer_ce["status"] == 422 and answer_ce["rejected"] == 1
            [error] = answer_ce["errors"]
            assert (error["path"], error["reason"]) == ("ce-time", "timestamp_out_of_range")
            assert "at most 300 s ahead is accepted (limits.max_future_seconds)" in error["message"]
        for k in range(3, PERIODS):
            period(k)
        # Periods 0..5 closed, for every model: the poison changed nothing.
        wait_for(lambda: all(_windows(url, m) == PERIODS - 1 for m in MODELS), 60, "6 windows of every model")
        assert [_windows(url, m) for m in MODELS] == [6.0, 6.0, 6.0]
        rejected = _samples(url, "monitor_records_rejected_total")
        assert {labels: value for labels, value in rejected.items() if "timestamp_out_of_range" in labels} == {
            'model="poisoned_http",reason="timestamp_out_of_range",source="http"': 1.0,
            'model="poisoned_ce",reason="timestamp_out_of_range",source="cloudevents"': 2.0,
        }
        models = {m["name"]: m for m in httpx.get(f"{url}/v1/models", timeout=30).json()["models"]}
        # 300 reference records + 7 periods; the open window holds period 6.
        assert [models[m]["records"] for m in MODELS] == [300 + PERIODS * PER_PERIOD] * 3
        assert [models[m]["open_window_records"] for m in MODELS] == [PER_PERIOD] * 3
        dead = httpx.get(f"{url}/v1/dead-letters", params={"reason": "timestamp_out_of_range"}, timeout=30).json()
        assert len(dead["dead_letters"]) == 3


def test_one_request_naming_10000_new_models_registers_max_models_in_all(tmp_path: Path) -> None:
    data = _service_config(tmp_path, unknown_models="register")
    with ServiceProcess(tmp_path, data) as service:
        url = service.url
        before = len(httpx.get(f"{url}/metrics", timeout=30).content)
        items = [{"model": f"m{i:05d}", "id": "1", "inputs": {"x": 1}, "prediction": 1} for i in range(10_000)]
        items.insert(5, {"model": "_unknown", "id": "1", "inputs": {"x": 1}, "prediction": 1})
        items.pop()  # 10,000 items: the request limit
        answer = _post(url, b"\n".join(map(orjson.dumps, items)))
        # 3 configured models leave room for 97 under limits.max_models (100).
        assert (answer["accepted"], answer["rejected"]) == (97, 9_903)
        reasons: dict[str, int] = {}
        for error in answer["errors"]:
            reasons[error["reason"]] = reasons.get(error["reason"], 0) + 1
        assert reasons == {"unknown_model": 9_902, "invalid_value": 1}
        reserved = next(e for e in answer["errors"] if e["reason"] == "invalid_value")
        assert (reserved["index"], reserved["path"], reserved["message"]) == (
            5, "model", "the model name '_unknown' is reserved: it is the metric label value of traffic for unknown models"
        )  # fmt: skip
        limit = [e for e in answer["errors"] if e["reason"] == "unknown_model"]
        assert limit[0]["message"] == (
            f"model '{items[limit[0]['index']]['model']}' is not configured and the limit of 100 models is "
            "reached (limits.max_models)"
        )
        assert all(e["message"].endswith("models is reached (limits.max_models)") for e in limit)
        names = [m["name"] for m in httpx.get(f"{url}/v1/models", timeout=30).json()["models"]]
        assert len(names) == 100 and "_unknown" not in names
        # A second request finds the limit reached: nothing more is registered.
        again = _post(url, orjson.dumps({"model": "late", "id": "1", "inputs": {"x": 1}, "prediction": 1}))
        assert again["rejected"] == 1 and len(httpx.get(f"{url}/v1/models", timeout=30).json()["models"]) == 100
        accepted = _samples(url, "monitor_records_accepted_total")
        assert len(accepted) == 97 and sum(accepted.values()) == 97
        rejected = _samples(url, "monitor_records_rejected_total")
        assert rejected['model="_unknown",reason="unknown_model",source="http"'] == 9_903
        after = len(httpx.get(f"{url}/metrics", timeout=30).content)
        print(f"/metrics: {before} bytes before, {after} after")  # noqa: T201  (for the report)
