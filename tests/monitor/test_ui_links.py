"""Alerts link to the page that shows what moved: with ``server.public_base_url`` set, a
transition's stored detail and its webhook payload carry the page's absolute URL."""

from __future__ import annotations

from pathlib import Path

import orjson
from prometheus_client import CollectorRegistry
from support import settings

from alerts.transition import Transition
from monitor.metrics import Metrics
from monitor.report.links import Links, page_url
from monitor.store.alert_persister import AlertPersister
from monitor.store.database import Store

STATE = {"format_version": 1, "rules": [], "states": []}
HOOKS = {"webhooks": [{"name": "retrain", "url": "http://127.0.0.1:9/"}]}


def _transition(feature: str) -> Transition:
    return Transition(
        alert_id=f"feature-drift:car_loan:{feature}:1", rule="feature-drift", model="car_loan", feature=feature,
        severity="warning", from_state="pending", to_state="firing", at=1_700_000_000.0, window_seq=7, value=0.93,
    )  # fmt: skip


def test_links_carry_model_feature_and_window_escaped_for_a_url() -> None:
    assert Links().feature("car_loan", "a&b c", 7) == "/ui/feature?model=car_loan&feature=a%26b+c&window=7"
    assert page_url("https://mon.example/", "m/1") == "https://mon.example/ui/model?model=m%2F1"


def test_alert_details_and_webhook_payloads_carry_the_page_url(tmp_path: Path, store: Store) -> None:
    config = settings(tmp_path, server={"public_base_url": "https://monitor.example.com"}, alerts=HOOKS)
    persist = AlertPersister(store, config, Metrics(CollectorRegistry()))
    persist([_transition("car_value")], STATE)
    url = "https://monitor.example.com/ui/feature?model=car_loan&feature=car_value&window=7"
    (alert,) = store.alerts()
    assert alert["detail"]["url"] == url
    (delivery,) = store.webhook_deliveries()
    body = orjson.loads(delivery["body"])
    assert body["url"] == url and "url" not in body["detail"]


def test_without_a_public_address_nothing_is_added(tmp_path: Path, store: Store) -> None:
    persist = AlertPersister(store, settings(tmp_path, alerts=HOOKS), Metrics(CollectorRegistry()))
    persist([_transition("car_value")], STATE)
    assert "url" not in store.alerts()[0]["detail"]
    assert "url" not in orjson.loads(store.webhook_deliveries()[0]["body"])
