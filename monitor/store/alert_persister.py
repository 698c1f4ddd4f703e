"""The alert engine's persistence (:data:`alerts.sink.Persist`): transitions, the engine's
state and the webhook deliveries they cause, in one transaction."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from alerts.transition import Transition
from monitor.metrics import Metrics, StoreMetrics
from monitor.report.links import page_url
from monitor.settings import Settings
from monitor.store.database import Store
from monitor.store.retry_buffer import RetryBuffer

AlertUpdate = tuple[list[Transition], dict[str, Any]]


class AlertPersister:
    """Writes transitions, engine state and webhook deliveries in one transaction;
    deliveries suppressed by a cooldown are counted. With ``store_metrics``, updates that
    find the store unreachable wait in a RetryBuffer and are written together, in order,
    with the newest engine state, once it answers (the engine goes on meanwhile instead of
    losing the window)."""

    def __init__(self, store: Store, settings: Settings, metrics: Metrics, store_metrics: StoreMetrics | None = None):
        self.store = store
        self.webhooks = settings.alerts.webhooks
        self.metrics = metrics
        # With server.public_base_url, each transition's detail (stored with the alert, sent in
        # webhook payloads as "url") links to the page showing what moved.
        self.public_base_url = settings.server.public_base_url
        self.buffer: RetryBuffer[AlertUpdate] | None = None
        if store_metrics is not None:
            size = settings.storage.retry_buffer_size
            self.buffer = RetryBuffer("alerts", self.write, store, store_metrics, max_items=size)

    def write(self, updates: list[AlertUpdate]) -> None:
        transitions = [transition for batch, _ in updates for transition in batch]
        enqueued = self.store.apply_alert_transitions(transitions, updates[-1][1], webhooks=self.webhooks)
        for webhook, state in enqueued:
            if state == "suppressed":
                self.metrics.webhook_deliveries.labels(webhook, "suppressed").inc()

    def __call__(self, transitions: Sequence[Transition], engine_state: Mapping[str, Any]) -> None:
        if self.public_base_url:
            transitions = [_with_url(t, self.public_base_url) for t in transitions]
        update = [(list(transitions), dict(engine_state))]
        if self.buffer is None:
            self.write(update)
        else:
            self.buffer.submit(update)


def _with_url(transition: Transition, base: str) -> Transition:
    url = page_url(base, transition.model, transition.feature, transition.window_seq)
    return dataclasses.replace(transition, detail={**transition.detail, "url": url})
