"""Sends the webhook outbox: a background thread that POSTs due deliveries and records each attempt.

Every ~``poll_seconds`` the thread claims due deliveries (:meth:`~alerts.outbox.Outbox.claim_due`)
and sends them one by one with the headers::

    Content-Type: application/json
    X-Monitor-Signature: sha256=<HMAC-SHA256 of the body>   (when the webhook has secret_env)
    Idempotency-Key: <alert_id>:<state>:<webhook>            (the same on every attempt)
    X-Monitor-Delivery: <delivery id>
    ...the webhook's headers, ${ENV} expanded

A 2xx answer delivers; anything else (another status, a timeout, a refused connection) is a
failed attempt, retried after ``min(backoff_max, backoff_base * 2**(attempts-1))`` seconds
times a jitter in [0.5, 1.0) drawn from ``random.Random(delivery id)`` (reproducible). After
``max_attempts`` attempts, or once a delivery is ``max_age_seconds`` old, it is ``dead``.

:meth:`WebhookDispatcher.stop` lets the attempt in flight finish, then ends the thread.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import httpx
from prometheus_client import Counter, Gauge

from alerts.outbox import Outbox
from alerts.webhooks import WebhookConfig, WebhookEnvError, expand_headers, secret, signature

log = logging.getLogger(__name__)

OUTCOMES = ("delivered", "failed_attempt", "dead", "suppressed")
CLAIM_LIMIT = 10
LEASE_MARGIN_SECONDS = 5.0  # beyond the timeout: a claimed row is not re-claimed while it is being sent
MAX_ERROR = 500


class DispatcherMetrics(Protocol):
    """The families the dispatcher counts in (:class:`monitor.metrics.Metrics` has them)."""

    webhook_deliveries: Counter  # labels: webhook, outcome
    webhook_outbox_pending: Gauge


def backoff_seconds(webhook: WebhookConfig, delivery_id: int, attempts: int) -> float:
    """The wait after the ``attempts``-th failed attempt (1, 2, ...), jittered reproducibly."""
    rng = random.Random(delivery_id)
    jitter = 0.0
    for _ in range(attempts):  # the attempts-th draw of this delivery's sequence
        jitter = rng.uniform(0.5, 1.0)
    return min(webhook.backoff_max_seconds, webhook.backoff_base_seconds * 2 ** (attempts - 1)) * jitter


class WebhookDispatcher:
    """Delivers pending webhook deliveries from ``store`` until :meth:`stop`."""

    def __init__(
        self,
        store: Outbox,
        webhooks: Sequence[WebhookConfig],
        metrics: DispatcherMetrics,
        *,
        poll_seconds: float = 0.5,
        clock: Callable[[], float] = time.time,
    ):
        self.store = store
        self.webhooks = {w.name: w for w in webhooks}
        self.metrics = metrics
        self.poll_seconds = poll_seconds
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = httpx.Client(follow_redirects=False)
        self._lease = max((w.timeout_seconds for w in webhooks), default=10.0) + LEASE_MARGIN_SECONDS
        for name in self.webhooks:
            for outcome in OUTCOMES:  # present from the start at 0, so increase() sees the first one
                metrics.webhook_deliveries.labels(name, outcome)

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        for webhook in self.webhooks.values():
            try:
                secret(webhook)
                expand_headers(webhook)
            except WebhookEnvError as exc:  # names the variable, never a value
                log.warning("webhook %s: %s; its deliveries will fail until it is", webhook.name, exc)
        self._thread = threading.Thread(target=self._run, name="webhook-dispatcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the attempt in flight (waits up to ``timeout``, default: the longest webhook timeout + 5 s)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self._lease if timeout is None else timeout)
        self._client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self.run_once()
            except Exception:  # a database hiccup must not end deliveries for good
                log.exception("webhook dispatcher round failed; retrying")
                sent = 0
            if not sent:
                self._stop.wait(self.poll_seconds)

    # -- one round ----------------------------------------------------------------------------
    def run_once(self) -> int:
        """Claim the due deliveries and attempt each; how many were handled."""
        rows = self.store.claim_due(self._clock(), CLAIM_LIMIT, self._lease)
        handled = 0
        for row in rows:
            if self._stop.is_set():
                break  # the rest stay leased and are claimed again after the lease (or by another worker)
            self._attempt(row)
            handled += 1
        self.metrics.webhook_outbox_pending.set(self.store.count_pending_deliveries())
        return handled

    def _attempt(self, row: dict[str, Any]) -> None:
        name = row["webhook"]
        webhook = self.webhooks.get(name)
        now = self._clock()
        if webhook is None:
            self._finish(row, None, "dead", None, f"webhook {name!r} is not configured in this instance", now)
            return
        started = row["retried_at"] or row["created_at"]
        if now - started >= webhook.max_age_seconds:
            reason = f"older than max_age_seconds={webhook.max_age_seconds:g}; last error: {row['last_error']}"
            self._finish(row, webhook, "dead", row["last_status"], reason, now, count_attempt=False)
            return
        status, error = self._post(webhook, row)
        now = self._clock()
        if status is not None and 200 <= status < 300:
            self._finish(row, webhook, "delivered", status, None, now)
        elif row["attempts"] + 1 >= webhook.max_attempts or now - started >= webhook.max_age_seconds:
            self._finish(row, webhook, "dead", status, error, now)
        else:
            self._finish(row, webhook, "pending", status, error, now)

    def _post(self, webhook: WebhookConfig, row: dict[str, Any]) -> tuple[int | None, str | None]:
        """One POST: (status, error); status None when no answer came."""
        body = bytes(row["body"])
        try:
            headers = expand_headers(webhook)
            key = secret(webhook)
        except WebhookEnvError as exc:
            return None, str(exc)
        headers.update(
            {"Content-Type": "application/json", "Idempotency-Key": row["idempotency_key"],
             "X-Monitor-Delivery": str(row["id"])}
        )  # fmt: skip
        if key is not None:
            headers["X-Monitor-Signature"] = signature(key, body)
        try:
            response = self._client.post(webhook.url, content=body, headers=headers, timeout=webhook.timeout_seconds)
        except httpx.HTTPError as exc:
            # The exception text, not the URL: the URL may carry a token.
            return None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR]
        if 200 <= response.status_code < 300:
            return response.status_code, None
        return response.status_code, f"HTTP {response.status_code}: {response.text[:200]}"[:MAX_ERROR]

    def _finish(
        self,
        row: dict[str, Any],
        webhook: WebhookConfig | None,
        state: str,
        status: int | None,
        error: str | None,
        now: float,
        *,
        count_attempt: bool = True,
    ) -> None:
        delivery_id, name = int(row["id"]), row["webhook"]
        attempts = row["attempts"] + (1 if count_attempt else 0)
        next_at = now
        if state == "pending" and webhook is not None:
            next_at = now + backoff_seconds(webhook, delivery_id, attempts)
        self.store.finish_delivery(
            delivery_id, state=state, attempts=attempts, next_attempt_at=next_at, last_status=status,
            last_error=error, delivered_at=now if state == "delivered" else None,
        )  # fmt: skip
        outcome = "failed_attempt" if state == "pending" else state
        if webhook is not None:  # labels stay bounded: configured webhooks only
            self.metrics.webhook_deliveries.labels(name, outcome).inc()
        if state == "delivered":
            log.info(
                "webhook %s: delivery %d of %s delivered (attempt %d)", name, delivery_id, row["alert_id"], attempts
            )
        elif state == "dead":
            log.error("webhook %s: delivery %d of %s is dead after %d attempt(s): %s",
                      name, delivery_id, row["alert_id"], attempts, error)  # fmt: skip
        else:
            log.warning("webhook %s: delivery %d attempt %d failed (%s); next in %.1f s",
                        name, delivery_id, attempts, error, next_at - now)  # fmt: skip
