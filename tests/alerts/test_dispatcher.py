"""The webhook dispatcher against a real HTTP receiver on loopback (no mocks): retries with
backoff until a 2xx, signatures and idempotency keys on every attempt, dead deliveries
after timeouts, and the retry route."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from support import Receiver, client, metric, settings, wait_for

from alerts.dispatcher import WebhookDispatcher, backoff_seconds
from alerts.transition import Transition
from alerts.webhooks import WebhookConfig
from monitor.metrics import Metrics
from monitor.store.database import Store

SECRET = "receiver-shared-secret"  # the Receiver's default
STATE = {"format_version": 1, "rules": [], "states": []}


def transition(model: str = "car_loan") -> Transition:
    return Transition(
        alert_id=f"dataset-drift:{model}::1", rule="dataset-drift", model=model, feature="", severity="critical",
        from_state="inactive", to_state="firing", at=time.time(), window_seq=5, value=0.6, detail={"n_drifted": 4},
    )  # fmt: skip


def test_backoff_doubles_up_to_the_maximum_with_reproducible_jitter() -> None:
    webhook = WebhookConfig(name="w", url="http://h/", backoff_base_seconds=2, backoff_max_seconds=10)
    delays = [backoff_seconds(webhook, 7, n) for n in range(1, 6)]
    assert delays == [backoff_seconds(webhook, 7, n) for n in range(1, 6)]  # same id: same jitter
    for n, delay in enumerate(delays, start=1):
        full = min(10, 2 * 2 ** (n - 1))
        assert full * 0.5 <= delay < full
    assert delays != [backoff_seconds(webhook, 8, n) for n in range(1, 6)]


def test_a_delivery_is_retried_until_accepted_signed_with_one_idempotency_key(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    monkeypatch.setenv("HOOK_TOKEN", "tok-1")
    registry = CollectorRegistry()
    with Receiver(statuses=[500, 500, 500]) as receiver:
        webhook = WebhookConfig(
            name="retrain", url=receiver.url, secret_env="HOOK_SECRET", backoff_base_seconds=0.05,
            headers={"Authorization": "Bearer ${HOOK_TOKEN}"},
        )  # fmt: skip
        store.apply_alert_transitions([transition()], STATE, webhooks=[webhook])
        dispatcher = WebhookDispatcher(store, [webhook], Metrics(registry), poll_seconds=0.02)
        dispatcher.start()
        try:
            wait_for(lambda: store.webhook_deliveries(state="delivered"), 60, "the delivery")
            time.sleep(0.3)  # nothing more may arrive
        finally:
            dispatcher.stop()
    assert len(receiver.requests) == 4
    assert all(r["signed"] for r in receiver.requests)
    keys = {r["headers"]["Idempotency-Key"] for r in receiver.requests}
    assert keys == {"dataset-drift:car_loan::1:firing:retrain"}
    assert {r["headers"]["Authorization"] for r in receiver.requests} == {"Bearer tok-1"}
    assert {r["headers"]["Content-Type"] for r in receiver.requests} == {"application/json"}
    (row,) = store.webhook_deliveries()
    assert {r["headers"]["X-Monitor-Delivery"] for r in receiver.requests} == {str(row["id"])}
    assert (row["state"], row["attempts"], row["last_status"], row["last_error"]) == ("delivered", 4, 200, None)
    # The waits between attempts follow the backoff (0.05, 0.1, 0.2 s, times a jitter in [0.5, 1)):
    # a floor only, as how much later a busy machine gets to them is not the dispatcher's doing.
    gaps = [b["at"] - a["at"] for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
    for n, gap in enumerate(gaps, start=1):
        assert gap >= backoff_seconds(webhook, row["id"], n) - 0.01
    assert metric(registry, "monitor_webhook_deliveries_total", webhook="retrain", outcome="failed_attempt") == 3
    assert metric(registry, "monitor_webhook_deliveries_total", webhook="retrain", outcome="delivered") == 1
    assert metric(registry, "monitor_webhook_outbox_pending") == 0


def test_a_receiver_that_never_answers_makes_the_delivery_dead_then_retry_revives_it(
    tmp_path: Path, store_url: str
) -> None:
    with Receiver(delay=2.0) as receiver:
        webhook = {"name": "retrain", "url": receiver.url, "timeout_seconds": 0.3, "max_attempts": 3,
                   "backoff_base_seconds": 0.05}  # fmt: skip
        cfg = settings(tmp_path, storage={"url": store_url},
                       alerts={"rules": [{"name": "dataset-drift", "kind": "dataset_drift"}], "webhooks": [webhook]})  # fmt: skip
        with client(cfg) as (http, registry):
            http.app.state.store.apply_alert_transitions([transition()], STATE, webhooks=cfg.alerts.webhooks)
            dead = wait_for(
                lambda: http.get("/v1/webhooks/deliveries", params={"state": "dead"}).json()["deliveries"], 60, "dead"
            )
            assert len(receiver.requests) == 3
            (row,) = dead
            assert (row["webhook"], row["attempts"], row["last_status"]) == ("retrain", 3, None)
            assert row["last_error"].startswith("DeadlineExceeded: no response within timeout_seconds=0.3")
            assert row["body"]["alert_id"] == "dataset-drift:car_loan::1"  # the body as JSON
            assert "secret" not in str(row).lower()
            labels = {"webhook": "retrain"}
            assert metric(registry, "monitor_webhook_deliveries_total", **labels, outcome="dead") == 1
            assert metric(registry, "monitor_webhook_deliveries_total", **labels, outcome="failed_attempt") == 2
            assert 'monitor_webhook_deliveries_total{outcome="dead",webhook="retrain"} 1.0' in http.get("/metrics").text

            retried = http.post(f"/v1/webhooks/deliveries/{row['id']}/retry")
            assert retried.status_code == 200
            assert (retried.json()["delivery"]["state"], retried.json()["delivery"]["attempts"]) == ("pending", 0)
            assert [
                d["id"] for d in http.get("/v1/webhooks/deliveries", params={"state": "pending"}).json()["deliveries"]
            ] == [row["id"]]
            wait_for(lambda: len(receiver.requests) >= 4, 60, "a new attempt after the retry")
            assert http.post("/v1/webhooks/deliveries/999/retry").status_code == 404
            assert http.get("/v1/webhooks/deliveries", params={"state": "bogus"}).status_code == 422


def test_retry_of_a_delivered_delivery_is_a_conflict(tmp_path: Path, store_url: str) -> None:
    with Receiver() as receiver:
        cfg = settings(
            tmp_path, storage={"url": store_url}, alerts={"webhooks": [{"name": "retrain", "url": receiver.url}]}
        )
        with client(cfg) as (http, _registry):
            http.app.state.store.apply_alert_transitions([transition()], STATE, webhooks=cfg.alerts.webhooks)
            (row,) = wait_for(
                lambda: http.get("/v1/webhooks/deliveries", params={"state": "delivered"}).json()["deliveries"],
                60,
                "delivery",
            )
            assert "X-Monitor-Signature" not in receiver.requests[0]["headers"]  # no secret_env: unsigned
            answer = http.post(f"/v1/webhooks/deliveries/{row['id']}/retry")
            assert answer.status_code == 409 and "delivered already" in answer.json()["detail"]


def test_each_webhook_claims_its_own_deliveries_and_unconfigured_ones_die(store: Store) -> None:
    registry = CollectorRegistry()
    with Receiver() as a_receiver, Receiver() as b_receiver:
        a = WebhookConfig(name="a", url=a_receiver.url)
        b = WebhookConfig(name="b", url=b_receiver.url)
        gone = WebhookConfig(name="gone", url="http://127.0.0.1:9/hook")  # in the outbox, no longer configured
        store.apply_alert_transitions([transition()], STATE, webhooks=[a, b, gone])
        assert store.pending_by_webhook() == {"a": 1, "b": 1, "gone": 1}
        now = time.time()
        assert [r["webhook"] for r in store.claim_due(now, 10, 30, webhook="b")] == ["b"]
        assert store.claim_due(now, 10, 30, webhook="b") == []  # leased: not claimed twice
        assert sorted(r["webhook"] for r in store.claim_due(now, 10, 30)) == ["a", "gone"]  # no filter: all due
        dispatcher = WebhookDispatcher(
            store, [a, b], Metrics(registry), poll_seconds=0.02, clock=lambda: time.time() + 60
        )
        dispatcher.start()  # its clock is past the leases
        try:
            wait_for(lambda: not store.pending_by_webhook(), 60, "every delivery handled")
            wait_for(lambda: metric(registry, "monitor_webhook_outbox_pending") == 0, 60, "the pending gauge")
        finally:
            dispatcher.stop()
    rows = {r["webhook"]: r for r in store.webhook_deliveries()}
    assert {n: (r["state"], r["attempts"]) for n, r in rows.items()} == {
        "a": ("delivered", 1), "b": ("delivered", 1), "gone": ("dead", 1),
    }  # fmt: skip
    assert rows["gone"]["last_error"] == "webhook 'gone' is not configured in this instance"
    assert (len(a_receiver.requests), len(b_receiver.requests)) == (1, 1)
    assert registry.get_sample_value("monitor_webhook_deliveries_total", {"webhook": "gone", "outcome": "dead"}) is None
