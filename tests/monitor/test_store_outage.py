"""A real PostgreSQL stopped and started again under a running service: ingestion answers
503 + Retry-After while it is down (readyz too), is accepted again within seconds once it
is back, and the stored record counts and dead letters are exactly what was accepted and
rejected (nothing lost, nothing doubled); results and alert transitions made meanwhile are
written when it is back.

These tests stop their database, so they run on a PostgreSQL server of their own, not the
session's (tests/postgres_server.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from postgres_server import Databases, PostgresServer
from prometheus_client import CollectorRegistry
from support import car_loan_record, client, metric, settings, wait_for

from alerts.transition import Transition
from monitor.metrics import Metrics, StoreMetrics
from monitor.store.alert_persister import AlertPersister
from monitor.store.database import Store
from monitor.store.retry_buffer import RetryBuffer

NDJSON = {"content-type": "application/x-ndjson"}
STATE = {"format_version": 1, "rules": [], "states": []}


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[tuple[PostgresServer, Databases]]:
    with PostgresServer() as server:
        databases = Databases(server.url(), file_copy=True)
        try:
            yield server, databases
        finally:
            databases.close()


@pytest.fixture
def outage_db(own_postgres: tuple[PostgresServer, Databases]) -> Iterator[tuple[PostgresServer, str]]:
    server, databases = own_postgres
    url = databases.create()
    try:
        yield server, url
    finally:
        if not server.running:  # a failed test may leave it stopped
            server.start()
        databases.drop(url)


class Totals:
    """What the service answered it accepted and rejected."""

    def __init__(self) -> None:
        self.accepted = self.rejected = 0

    def add(self, response: httpx.Response) -> None:
        body = response.json()
        self.accepted += body["accepted"]
        self.rejected += body["rejected"]


def batch(start: int, n: int, broken: int) -> bytes:
    """``n`` records with unique ids; the first ``broken`` of them invalid (wrong type)."""
    items: list[dict[str, Any]] = []
    for i in range(start, start + n):
        record = car_loan_record(i)
        if i - start < broken:
            record["inputs"]["car_value"] = [i]
        items.append(record)
    return b"\n".join(orjson.dumps(item) for item in items)


def test_ingestion_answers_503_while_postgres_is_down_and_nothing_is_lost(
    tmp_path: Path, outage_db: tuple[PostgresServer, str]
) -> None:
    server, url = outage_db
    cfg = settings(tmp_path, storage={"url": url, "flush_interval_seconds": 0.5})
    totals = Totals()
    with client(cfg) as (http, registry):
        r = http.post("/v1/records", content=batch(0, 50, broken=5), headers=NDJSON)
        assert (r.status_code, r.json()["accepted"], r.json()["rejected"]) == (200, 45, 5)
        totals.add(r)
        stored = http.app.state.store.counts
        wait_for(lambda: stored().get(("car_loan", "http"), {}).get("accepted") == 45, 60, "the counts written")

        server.stop()
        # Until the service notices (the next ping, or this very write), requests are still
        # accepted: their counts and dead letters must wait for the database, not be lost.
        http.app.state.store.mark_up()  # as if the last ping came just before the stop
        r = http.post("/v1/records", content=batch(100, 10, broken=2), headers=NDJSON)
        if r.status_code == 200:  # unless a ping came in between (rarely): then 503, nothing taken
            totals.add(r)
            assert r.json()["rejected"] == 2
            # The writer thread's write of the dead letters fails (the route did not wait for it).
            wait_for(lambda: not http.app.state.store.available, 60, "the dead letters' write to fail")
            assert metric(registry, "monitor_store_writes_pending", kind="dead_letters") == 2
        else:
            assert r.status_code == 503
        wait_for(lambda: http.get("/readyz").status_code == 503, 60, "readyz to report the store down")
        assert http.get("/readyz").json() == {"status": "not ready", "store": "unreachable"}

        refused = http.post("/v1/records", content=batch(200, 10, broken=1), headers=NDJSON)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"  # ceil(flush_interval_seconds): the next ping
        assert "store is unreachable" in refused.json()["detail"]
        event = {"ce-specversion": "1.0", "ce-id": "e1", "ce-source": "test", "ce-inferenceservicename": "iris",
                 "ce-type": "org.kubeflow.serving.inference.request"}  # fmt: skip
        refused_event = http.post("/v1/cloudevents", json={"instances": [[1, 2, 3, 4]]}, headers=event)
        assert refused_event.status_code == 503 and refused_event.headers["retry-after"] == "1"
        upload = http.put(
            "/v1/models/car_loan/reference", content=b"car_value\n1\n", headers={"content-type": "text/csv"}
        )
        assert upload.status_code == 503 and "store is unreachable" in upload.json()["detail"]
        read = http.get("/v1/alerts")  # reads that need the database: 503 as well, not 500
        assert read.status_code == 503 and read.headers["retry-after"] == "1"
        assert metric(registry, "monitor_store_up") == 0
        received = metric(registry, "monitor_records_received_total", model="car_loan", source="http")
        assert received == totals.accepted + totals.rejected  # the refused requests were not even read

        server.start()
        restarted = time.monotonic()
        # The same app, never restarted, takes records again by itself once its ping finds
        # the database (how soon is the machine's business: no stopwatch here).
        again = wait_for(
            lambda: (r := http.post("/v1/records", content=batch(300, 20, broken=3), headers=NDJSON)).status_code
            == 200 and r,
            120, "ingestion to be accepted again",
        )  # fmt: skip
        print(f"ingestion accepted again {time.monotonic() - restarted:.2f} s after PostgreSQL was started")
        totals.add(again)
        assert (again.json()["accepted"], again.json()["rejected"]) == (17, 3)
        assert http.get("/readyz").status_code == 200
        assert metric(registry, "monitor_store_up") == 1
        r = http.post("/v1/records", content=batch(400, 30, broken=4), headers=NDJSON)
        totals.add(r)
        wait_for(lambda: all(b.pending == 0 for b in http.app.state.retry_buffers), 60, "the waiting writes")
        assert metric(registry, "monitor_dead_letters_dropped_total", cause="store_error") == 0
        assert metric(registry, "monitor_store_writes_dropped_total", kind="dead_letters") == 0
    # After the clean shutdown (which writes the last counts): exactly what was answered.
    with Store(url, migrate=False) as store:
        counts = store.counts()[("car_loan", "http")]
        assert (counts["accepted"], counts["rejected"]) == (totals.accepted, totals.rejected)
        assert counts["received"] == totals.accepted + totals.rejected
        assert store.count_dead_letters() == totals.rejected
        indexes = sorted(letter["raw"]["id"] for letter in store.dead_letters(limit=1000))
        assert len(indexes) == len(set(indexes))  # none twice


def transition(to_state: str, at: float) -> Transition:
    return Transition(
        alert_id="dataset-drift:car_loan::1", rule="dataset-drift", model="car_loan", feature="", severity="critical",
        from_state="inactive" if to_state == "firing" else "firing", to_state=to_state, at=at, window_seq=5,
        value=0.6, detail={},
    )  # fmt: skip


def test_results_and_alert_transitions_made_while_postgres_is_down_are_written_when_it_is_back(
    tmp_path: Path, outage_db: tuple[PostgresServer, str]
) -> None:
    server, url = outage_db
    cfg = settings(tmp_path, storage={"url": url})
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    with Store(url) as store:
        store_metrics = StoreMetrics(registry, store)
        persist = AlertPersister(store, cfg, metrics, store_metrics)
        results: RetryBuffer[dict[str, Any]] = RetryBuffer("results", store.add_results, store, store_metrics,
                                                           max_items=100)  # fmt: skip
        row = {"model": "car_loan", "window_seq": 5, "kind": "dataset_drift", "feature": "", "method": "share",
               "drift": True}  # fmt: skip

        server.stop()
        persist([transition("firing", 1.0)], {**STATE, "n": 1})  # does not raise: kept for later
        assert not store.available
        results.submit([row, {**row, "window_seq": 6}])
        persist([transition("resolved", 2.0)], {**STATE, "n": 2})
        assert persist.buffer is not None and (persist.buffer.pending, results.pending) == (2, 2)
        assert metric(registry, "monitor_store_writes_pending", kind="alerts") == 2
        assert not results.flush() and results.pending == 2  # still down: kept

        server.start()
        assert store.ping() and store.available
        assert results.flush() and persist.buffer.flush()
        assert [r["window_seq"] for r in store.results("car_loan")] == [5, 6]
        (alert,) = store.alerts()
        assert (alert["state"], alert["fired_at"], alert["resolved_at"]) == ("resolved", 1.0, 2.0)
        assert [t["to_state"] for t in store.alert_transitions(alert["alert_id"])] == ["firing", "resolved"]
        assert store.alert_engine_state() == {**STATE, "n": 2}  # the newest state
        assert metric(registry, "monitor_store_writes_pending", kind="alerts") == 0
        assert metric(registry, "monitor_store_writes_dropped_total", kind="alerts") == 0
