"""POST /v1/records over the real app: formats, every rejection path, limits, auth, metrics."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest
from support import car_loan_record, client, metric, settings

from monitor.store.database import Store

NDJSON = {"content-type": "application/x-ndjson"}


def ndjson(items: list) -> bytes:
    return b"\n".join(orjson.dumps(item) for item in items) + b"\n"


def test_single_object_array_and_ndjson(tmp_path: Path) -> None:
    with client(settings(tmp_path)) as (http, registry):
        assert http.post("/v1/records", json=car_loan_record(0)).json() == {
            "accepted": 1, "rejected": 0, "duplicates": 0, "errors": [],
        }  # fmt: skip
        assert http.post("/v1/records", json=[car_loan_record(i) for i in range(1, 4)]).json()["accepted"] == 3
        response = http.post("/v1/records", content=ndjson([car_loan_record(i) for i in range(4, 9)]), headers=NDJSON)
        assert response.status_code == 200 and response.json()["accepted"] == 5
        assert metric(registry, "monitor_records_accepted_total", model="car_loan", source="http") == 9
        assert metric(registry, "monitor_records_joined_total", model="car_loan") == 9
        assert http.get("/v1/models").json()["models"][0]["records"] == 9
        # charset parameters and case do not matter
        ok = http.post(
            "/v1/records",
            content=orjson.dumps(car_loan_record(9)),
            headers={"content-type": "Application/JSON; charset=utf-8"},
        )
        assert ok.status_code == 200


def test_mixed_batch_of_1000_with_37_broken(tmp_path: Path) -> None:
    rng = random.Random(7)
    broken_at = sorted(rng.sample(range(1000), 37))
    breakers = [
        lambda r: r.pop("model"),
        lambda r: r.update(model="nope"),
        lambda r: r["inputs"].update(car_value={"nested": 1}),
        lambda r: r.update(latency_ms=-3),
        lambda r: r.update(timestamp="not a time"),
        lambda r: r.update(extra=1),
    ]
    items = []
    for i in range(1000):
        record = car_loan_record(i)
        if i in broken_at:
            breakers[broken_at.index(i) % len(breakers)](record)
        items.append(record)
    cfg = settings(tmp_path)
    with client(cfg) as (http, registry):
        body = http.post("/v1/records", content=ndjson(items), headers=NDJSON).json()
        assert body["accepted"] == 963 and body["rejected"] == 37
        assert [e["index"] for e in body["errors"]] == broken_at
        assert {e["reason"] for e in body["errors"]} == {
            "missing_field", "unknown_model", "wrong_type", "invalid_value", "unknown_field",
        }  # fmt: skip
        rejected = sum(
            metric(registry, "monitor_records_rejected_total", model=m, source="http", reason=r)
            for m in ("car_loan", "_unknown")
            for r in ("missing_field", "unknown_model", "wrong_type", "invalid_value", "unknown_field")
        )
        assert rejected == 37
        assert metric(registry, "monitor_records_accepted_total", model="car_loan", source="http") == 963
    with Store(cfg.storage.url) as store:
        letters = store.dead_letters(limit=1000)
        assert len(letters) == 37
        assert sorted(letter["item_index"] for letter in letters) == broken_at
        first = min(letters, key=lambda letter: letter["item_index"])
        assert first["raw"] == items[broken_at[0]] and first["source"] == "http" and first["message"]
        # counts were flushed at shutdown
        counts = store.counts()
        assert counts[("car_loan", "http")]["accepted"] == 963
        assert counts[("car_loan", "pipeline")]["joined"] == 963


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        (b"", 400, "request body is empty"),
        (b"   ", 400, "request body is empty"),
        (
            b'{"model": "car_loan",',
            400,
            "request body is not valid JSON at line 1, column 22 (char 21): unexpected end of data",
        ),
        (
            b'[{"model": "car_loan", "inputs": {"a": NaN}}]',
            400,
            "request body is not valid JSON at line 1, column 40 (char 39): unexpected character",
        ),
        (
            b'{"model": "car_loan", "inputs": {"a": 1e999}}',
            400,
            "at line 1, column 39 (char 38): number is infinity when parsed as double",
        ),
        (b"[" * 5000 + b"]" * 5000, 400, "column 1026 (char 1025): depth limit exceeded"),
    ],
)
def test_malformed_json_is_400_with_position(tmp_path: Path, body: bytes, status: int, detail: str) -> None:
    with client(settings(tmp_path)) as (http, _):
        response = http.post("/v1/records", content=body, headers={"content-type": "application/json"})
        assert response.status_code == status
        assert detail in response.json()["detail"]


def test_malformed_ndjson_line_rejects_only_that_line(tmp_path: Path) -> None:
    body = orjson.dumps(car_loan_record(0)) + b"\n{broken\n\n" + orjson.dumps(car_loan_record(1)) + b"\n"
    with client(settings(tmp_path)) as (http, _):
        response = http.post("/v1/records", content=body, headers=NDJSON)
        assert response.status_code == 200
        body = response.json()
        assert body["accepted"] == 2
        assert body["errors"] == [
            {
                "index": 1,
                "path": "",
                "reason": "invalid_json",
                "message": "line 2 is not valid JSON at line 1, column 2 (char 1): unexpected character, expected a string key",
            }
        ]


def test_all_rejected_is_422(tmp_path: Path) -> None:
    with client(settings(tmp_path)) as (http, _):
        response = http.post("/v1/records", json={"model": "car_loan", "inputs": {"car_value": [1]}, "prediction": 1})
        assert response.status_code == 422
        assert response.json()["errors"] == [
            {
                "index": 0,
                "path": "inputs.car_value",
                "reason": "wrong_type",
                "message": "must be a number, string, boolean or null, got array",
            }
        ]


def test_content_type_size_and_count_limits(tmp_path: Path) -> None:
    cfg = settings(tmp_path, limits={"max_body_bytes": 2048, "max_items_per_request": 3, "max_string_length": 32})
    with client(cfg) as (http, _):
        r = http.post("/v1/records", content=b"model=x", headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 415
        assert (
            r.json()["detail"]
            == "content type 'application/x-www-form-urlencoded' is not accepted; send application/json or application/x-ndjson"
        )
        assert http.post("/v1/records", content=b"{}", headers={"content-type": ""}).status_code == 415
        big = orjson.dumps({"model": "car_loan", "id": "x", "label": "y" * 3000})
        r = http.post("/v1/records", content=big, headers={"content-type": "application/json"})
        assert r.status_code == 413 and "limit is 2048" in r.json()["detail"]

        def chunks():  # no Content-Length: the limit is enforced while streaming
            for _ in range(10):
                yield b" " * 500

        r = http.post("/v1/records", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["detail"] == "request body exceeds 2048 bytes (limits.max_body_bytes)"
        four = [car_loan_record(i) for i in range(4)]
        for i in four:
            i["inputs"] = {"car_value": 1}
        r = http.post("/v1/records", json=four)
        assert (
            r.status_code == 413
            and r.json()["detail"] == "4 items in one request; the limit is 3 (limits.max_items_per_request)"
        )
        r = http.post("/v1/records", content=ndjson(four), headers=NDJSON)
        assert (
            r.status_code == 413
            and r.json()["detail"] == "more than 3 items in one request (limits.max_items_per_request)"
        )
        long_string = {"model": "car_loan", "id": "a", "inputs": {"salary_range": "x" * 33}}
        r = http.post("/v1/records", json=long_string)
        assert r.status_code == 422 and r.json()["errors"][0]["reason"] == "too_long"


def test_auth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_INGEST_TOKEN", "ingest-secret")
    tokens = {
        "tokens": [
            {"name": "server", "token_env": "TEST_INGEST_TOKEN", "scopes": ["ingest"]},
            {"name": "oncall", "token": "admin-secret", "scopes": ["ingest", "admin", "read"]},
        ]
    }
    with client(settings(tmp_path, auth=tokens)) as (http, _):
        record = car_loan_record(0)
        r = http.post("/v1/records", json=record)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert http.post("/v1/records", json=record, headers={"authorization": "Bearer wrong"}).status_code == 401
        assert http.post("/v1/records", json=record, headers={"authorization": "Basic aW5nZXN0"}).status_code == 401
        assert (
            http.post("/v1/records", json=record, headers={"authorization": "Bearer ingest-secret"}).status_code == 200
        )
        r = http.get("/v1/dead-letters", headers={"authorization": "Bearer ingest-secret"})
        assert r.status_code == 403 and r.json()["detail"] == "this token may not admin: its scopes are ingest"
        assert http.get("/v1/dead-letters", headers={"authorization": "bearer admin-secret"}).status_code == 200
        assert http.get("/v1/models").status_code == 401
        for path in ("/healthz", "/readyz", "/metrics"):
            assert http.get(path).status_code == 200, path
    closed = {**tokens, "open_paths": ["/healthz"]}
    with client(settings(tmp_path, auth=closed)) as (http, _):
        assert http.get("/healthz").status_code == 200
        assert http.get("/metrics").status_code == 401
        assert http.get("/metrics", headers={"authorization": "Bearer admin-secret"}).status_code == 200


def test_a_caller_without_a_token_learns_nothing_of_the_store(tmp_path: Path) -> None:
    tokens = {"tokens": [{"name": "server", "token": "ingest-secret", "scopes": ["ingest"]}]}
    # No ping during the test: it would mark the store up again.
    with client(settings(tmp_path, auth=tokens, storage={"flush_interval_seconds": 3600})) as (http, _):
        http.app.state.store.mark_down("a test says so")
        for path in ("/v1/records", "/v1/cloudevents"):
            assert http.post(path, json=car_loan_record(0)).status_code == 401, path
        r = http.post("/v1/records", json=car_loan_record(0), headers={"authorization": "Bearer ingest-secret"})
        assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1


def test_auth_off_everything_open(tmp_path: Path) -> None:
    with client(settings(tmp_path)) as (http, _):
        assert http.get("/v1/dead-letters").status_code == 200
        assert http.get("/v1/models").status_code == 200


def test_unknown_models_register(tmp_path: Path) -> None:
    cfg = settings(tmp_path, unknown_models="register", limits={"max_models": 3})
    with client(cfg) as (http, registry):
        r = http.post("/v1/records", json=[{"model": "new", "inputs": {"a": 1}, "prediction": 0}] * 2)
        assert r.json()["accepted"] == 2
        assert metric(registry, "monitor_records_accepted_total", model="new", source="http") == 2
        r = http.post("/v1/records", json={"model": "another", "inputs": {"a": 1}, "prediction": 0})
        assert r.status_code == 422 and "limit of 3 models is reached" in r.json()["errors"][0]["message"]


def test_metrics_and_probes(tmp_path: Path) -> None:
    with client(settings(tmp_path)) as (http, _):
        http.post("/v1/records", json=[car_loan_record(0), {"model": "car_loan"}])
        text = http.get("/metrics").text
        assert 'monitor_records_accepted_total{model="car_loan",source="http"} 1.0' in text
        assert 'monitor_records_rejected_total{model="car_loan",reason="missing_field",source="http"} 1.0' in text
        assert 'monitor_http_request_duration_seconds_count{route="/v1/records",status="200"} 1.0' in text
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/readyz").json() == {"status": "ready", "store": "ok"}
        assert http.get("/docs").status_code == 200
        assert "/v1/records" in http.get("/openapi.json").json()["paths"]


def test_batch_with_odd_items_in_the_middle(tmp_path: Path) -> None:
    """A large batch goes the columnar way; its bad, partial and repeated items keep their
    index, reason and effect, and blank and CRLF-terminated lines change nothing."""
    items = [car_loan_record(i) for i in range(40)]
    items[7]["inputs"]["car_value"] = {"k": 1}  # rejected
    items[12] = {"model": "car_loan", "id": "p1", "inputs": car_loan_record(0)["inputs"]}  # partial
    items[20] = car_loan_record(3)  # a repeated id
    items[25] = {"model": "car_loan", "id": "p1", "prediction": 0}  # completes item 12
    lines = [orjson.dumps(item) for item in items]
    lines[30] += b"\r"
    body = b"\n".join(lines[:33]) + b"\n\n" + b"\n".join(lines[33:]) + b"\n"
    with client(settings(tmp_path)) as (http, registry):
        response = http.post("/v1/records", content=body, headers=NDJSON)
        assert response.status_code == 200
        assert response.json() == {
            "accepted": 39, "rejected": 1, "duplicates": 1,
            "errors": [{"index": 7, "path": "inputs.car_value", "reason": "wrong_type",
                        "message": "must be a number, string, boolean or null, got object"}],
        }  # fmt: skip
        assert metric(registry, "monitor_records_accepted_total", model="car_loan", source="http") == 39
        assert metric(registry, "monitor_records_duplicate_total", model="car_loan") == 1
        models = http.get("/v1/models").json()["models"]
        assert [(m["records"], m["incomplete"]) for m in models if m["name"] == "car_loan"] == [(37, 0)]


def test_decode_ndjson_splits_like_line_by_line() -> None:
    from collectors.body import decode_ndjson

    assert decode_ndjson(b'{"a":1}\n{"a":2}\n', 2) == ([{"a": 1}, {"a": 2}], None, [])
    assert decode_ndjson(b'{"a":1}\r\n{"a":2}', 2) == ([{"a": 1}, {"a": 2}], None, [])
    assert decode_ndjson(b'{"a":1}\n\n \n{"a":2}\n\n', 2) == ([{"a": 1}, {"a": 2}], None, [])  # blanks take no index
    items, indices, rejections = decode_ndjson(b'{"a":1}\n{\n\n{"a":2}\n', 3)
    assert (items, indices) == ([{"a": 1}, {"a": 2}], [0, 2])
    assert [(r.index, r.reason) for r in rejections] == [(1, "invalid_json")]
