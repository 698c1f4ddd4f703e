"""Webhook config, body templates, signatures, and the outbox rows written with alert transitions."""

from __future__ import annotations

import hashlib
import hmac

import orjson
import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from support import metric

from alerts.config import AlertsConfig
from alerts.transition import Transition
from alerts.webhooks import WebhookConfig, expand_headers, render_body, signature
from monitor.metrics import Metrics
from monitor.store.alert_persister import AlertPersister
from monitor.store.database import Store
from monitor.store.engine import StoreError
from monitor.store.tables import webhook_deliveries

STATE = {"format_version": 1, "rules": [], "states": []}


def firing(model: str = "car_loan", n: int = 1, rule: str = "dataset-drift", to_state: str = "firing") -> Transition:
    return Transition(
        alert_id=f"{rule}:{model}::{n}", rule=rule, model=model, feature="", severity="critical",
        from_state="inactive" if to_state == "firing" else "firing", to_state=to_state, at=1_700_000_000.5,
        window_seq=5, value=0.5714285714285714,
        detail={"kind": "dataset_drift", "n_drifted": 4, "n_evaluated": 7, "threshold": 0.5,
                "drifted": ["car_value", "loan_length"], "reference_version": "1"},
    )  # fmt: skip


GENERIC = {
    "alert_id": "dataset-drift:car_loan::1", "rule": "dataset-drift", "state": "firing", "severity": "critical",
    "model": "car_loan", "reference_version": "1", "feature": "", "value": 0.5714285714285714, "window_seq": 5,
    "detail": {"kind": "dataset_drift", "n_drifted": 4, "n_evaluated": 7, "threshold": 0.5,
               "drifted": ["car_value", "loan_length"]},
    "at": 1_700_000_000.5,
}  # fmt: skip


def hook(**kw) -> WebhookConfig:
    return WebhookConfig.model_validate({"name": "retrain", "url": "http://127.0.0.1:9/hook", **kw})


# -- templates and signatures ------------------------------------------------------------------


def test_generic_body() -> None:
    body = render_body(hook(), firing())
    assert orjson.loads(body) == GENERIC
    assert body == orjson.dumps(GENERIC, option=orjson.OPT_SORT_KEYS)  # sorted keys: stable bytes to sign


def test_airflow_body() -> None:
    webhook = hook(template="airflow", template_options={"conf": {"mode": "full", "model": "overridden"}})
    assert orjson.loads(render_body(webhook, firing())) == {"conf": {**GENERIC, "mode": "full"}}


def test_github_body() -> None:
    assert orjson.loads(render_body(hook(template="github"), firing())) == {
        "ref": "main",
        "inputs": {"alert_id": "dataset-drift:car_loan::1", "model": "car_loan", "rule": "dataset-drift",
                   "state": "firing"},
    }  # fmt: skip
    custom = hook(
        template="github",
        template_options={"ref": "release", "inputs": {"model": "{model}", "why": "{rule} at {value}", "seq": "{window_seq}",
                                                       "fixed": "yes"}},
    )  # fmt: skip
    assert orjson.loads(render_body(custom, firing())) == {
        "ref": "release",
        "inputs": {"model": "car_loan", "why": "dataset-drift at 0.5714285714285714", "seq": "5", "fixed": "yes"},
    }


def test_signature_is_hmac_sha256_of_the_timestamp_and_the_body() -> None:
    body = render_body(hook(), firing())
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("s3cret", 1_700_000_000, body) == f"sha256={expected}"
    assert signature("s3cret", 1_700_000_001, body) != signature("s3cret", 1_700_000_000, body)


def test_headers_expand_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "tok-123")
    webhook = hook(headers={"Authorization": "Bearer ${HOOK_TOKEN}", "X-Team": "ml"})
    assert expand_headers(webhook) == {"Authorization": "Bearer tok-123", "X-Team": "ml"}
    monkeypatch.delenv("HOOK_TOKEN")
    with pytest.raises(RuntimeError, match="HOOK_TOKEN .*is not set"):
        expand_headers(webhook)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"url": "ftp://x"}, "url must be"),
        ({"on": ["pending"]}, "on"),
        ({"template": "github", "template_options": {"conf": {}}}, "do not apply"),
        ({"template": "github", "template_options": {"inputs": {"a": "{secret}"}}}, "unknown field"),
        ({"headers": {"Idempotency-Key": "x"}}, "may be set here"),
        ({"headers": {"X": "a\r\nB: c"}}, "one line"),
        ({"secret_env": "not a name"}, "secret_env"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"surprise": 1}, "Extra inputs"),
    ],
)
def test_invalid_webhook_configs_are_refused(overrides: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        hook(**overrides)


def test_alerts_config_checks_webhook_names_and_rules() -> None:
    rules = [{"name": "dataset-drift", "kind": "dataset_drift"}]
    ok = AlertsConfig.model_validate({"rules": rules, "webhooks": [{"name": "a", "url": "http://h/"}]})
    assert ok.webhooks[0].on == ["firing"] and ok.webhooks[0].template == "generic"
    with pytest.raises(ValidationError, match="unique"):
        AlertsConfig.model_validate({"rules": rules, "webhooks": [{"name": "a", "url": "http://h/"}] * 2})
    with pytest.raises(ValidationError, match="unknown rule"):
        AlertsConfig.model_validate({"rules": rules, "webhooks": [{"name": "a", "url": "http://h/", "rules": ["x"]}]})


# -- the outbox ------------------------------------------------------------------------------


def test_deliveries_are_enqueued_for_matching_webhooks_and_states(store: Store) -> None:
    webhooks = [
        hook(name="all", on=["firing", "resolved"]),
        hook(name="resolved-only", on=["resolved"]),
        hook(name="other-model", models=["iris"]),
        hook(name="other-rule", rules=["feature-drift"]),
    ]
    added = store.apply_alert_transitions([firing()], STATE, webhooks=webhooks)
    assert added == [("all", "pending")]
    added = store.apply_alert_transitions([firing(to_state="resolved")], STATE, webhooks=webhooks)
    assert added == [("all", "pending"), ("resolved-only", "pending")]
    rows = store.webhook_deliveries()
    assert [(r["webhook"], r["idempotency_key"], r["state"], r["attempts"]) for r in rows] == [
        ("resolved-only", "dataset-drift:car_loan::1:resolved:resolved-only", "pending", 0),
        ("all", "dataset-drift:car_loan::1:resolved:all", "pending", 0),
        ("all", "dataset-drift:car_loan::1:firing:all", "pending", 0),
    ]
    assert orjson.loads(rows[-1]["body"]) == GENERIC
    # The same transition again (never happens, but) does not enqueue a second delivery.
    assert store.apply_alert_transitions([firing()], STATE, webhooks=webhooks) == []


def test_cooldown_suppresses_a_second_firing_of_the_same_model(store: Store) -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)

    class Cfg:  # what AlertPersister reads of the settings
        class alerts:
            webhooks = [hook(cooldown_seconds=6 * 3600)]

        class server:
            public_base_url = None

    persist = AlertPersister(store, Cfg, metrics)  # type: ignore[arg-type]
    persist([firing(n=1)], STATE)
    persist([firing(n=1, rule="feature-drift"), firing(model="iris")], STATE)
    rows = {r["alert_id"]: r["state"] for r in store.webhook_deliveries()}
    assert rows == {
        "dataset-drift:car_loan::1": "pending",
        "feature-drift:car_loan::1": "suppressed",
        "dataset-drift:iris::1": "pending",
    }
    assert metric(registry, "monitor_webhook_deliveries_total", webhook="retrain", outcome="suppressed") == 1
    assert store.count_pending_deliveries() == 2


def test_the_delivery_is_written_in_the_transitions_transaction(store: Store) -> None:
    store.apply_alert_transitions([firing()], STATE, webhooks=[hook()])
    assert [a["alert_id"] for a in store.alerts()] == ["dataset-drift:car_loan::1"]
    assert [d["alert_id"] for d in store.webhook_deliveries()] == ["dataset-drift:car_loan::1"]
    # Make the outbox insert fail inside the database: the alert and its transition must go too.
    with store.engine.begin() as conn:
        if store.engine.dialect.name == "postgresql":
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse_outbox() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'outbox refused' USING ERRCODE = 'check_violation'; END $$"
            )
            conn.exec_driver_sql(
                f"CREATE TRIGGER no_outbox BEFORE INSERT ON {webhook_deliveries.name} "
                "FOR EACH ROW EXECUTE FUNCTION refuse_outbox()"
            )
        else:
            conn.exec_driver_sql(
                f"CREATE TRIGGER no_outbox BEFORE INSERT ON {webhook_deliveries.name} "
                "BEGIN SELECT RAISE(ABORT, 'outbox refused'); END"
            )
    with pytest.raises(StoreError, match="outbox refused"):
        store.apply_alert_transitions([firing(model="iris")], {**STATE, "marker": 1}, webhooks=[hook()])
    assert store.alerts(model="iris") == []
    assert store.alert_transitions("dataset-drift:iris::1") == []
    assert store.alert_engine_state() == STATE
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(webhook_deliveries)).scalar_one() == 1
