"""Sends the webhook outbox: one worker per configured webhook, each POSTing its own due
deliveries and recording each attempt.

Isolation. One slow or dead receiver must never delay another webhook's deliveries, so each
webhook has its own worker, which claims only that webhook's rows
(:meth:`~alerts.outbox.Outbox.claim_due` with ``webhook=``) and has its own HTTP client
(its own connection pool). The workers are asyncio tasks on one event loop, in one
background thread, rather than one thread each, because asyncio gives the attempt a real
total deadline: :func:`asyncio.timeout` cancels a connect, a send or a read in the middle
(:mod:`alerts.attempt`), where a blocking thread can only set per-read socket timeouts that
a trickling receiver never trips. The store is synchronous, so its calls run in worker
threads (:func:`asyncio.to_thread`) and a slow database write of one webhook does not stop
the loop either. Within one webhook deliveries go one at a time, oldest due first: a
receiver gets at most one request at a time from us, and retraining triggers arrive in order.

Every ~``poll_seconds`` a worker claims up to :data:`CLAIM_LIMIT` due deliveries and sends
them with the headers::

    Content-Type: application/json
    X-Monitor-Timestamp: <epoch seconds of this attempt>
    X-Monitor-Signature: sha256=<HMAC-SHA256 of "<timestamp>.<body>">   (when the webhook has secret_env)
    Idempotency-Key: <alert_id>:<state>:<webhook>                       (the same on every attempt)
    X-Monitor-Delivery: <delivery id>
    ...the webhook's headers, ${ENV} expanded

The body is the same bytes on every attempt (rendered once, when enqueued). A 2xx answer
delivers; anything else (another status, the deadline, a refused connection) is a failed
attempt, retried after ``min(backoff_max, backoff_base * 2**(attempts-1))`` seconds times a
jitter in [0.5, 1.0) drawn from ``random.Random(delivery id)`` (reproducible). After
``max_attempts`` attempts, or once a delivery is ``max_age_seconds`` old, it is ``dead``.

Leases: a claimed row is not due again for ``(timeout_seconds + LEASE_MARGIN_SECONDS) *
(its position in the claim)``; since an attempt can no longer outlast ``timeout_seconds``,
no other dispatcher sends a row while it is being sent. A housekeeping task refreshes
``monitor_webhook_outbox_pending`` and makes deliveries of webhooks this instance does not
configure ``dead`` (as the single dispatcher did when it met them).

:meth:`WebhookDispatcher.stop` lets each attempt in flight finish (bounded by its deadline)
and be recorded, then ends the thread.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import httpx
from prometheus_client import Counter, Gauge

from alerts.attempt import AttemptResult, post
from alerts.outbox import Outbox
from alerts.webhooks import WebhookConfig, WebhookEnvError, expand_headers, secret

log = logging.getLogger(__name__)

OUTCOMES = ("delivered", "failed_attempt", "dead", "suppressed")
CLAIM_LIMIT = 10
LEASE_MARGIN_SECONDS = 5.0  # beyond the deadline: time to record the attempt before the row is due again


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


def lease_seconds(webhook: WebhookConfig) -> float:
    """How long a claimed row of ``webhook`` stays out of other claims (per position)."""
    return webhook.timeout_seconds + LEASE_MARGIN_SECONDS


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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None  # set (on the loop) by stop(): ends the workers' waits
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
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._main(),), name="webhook-dispatcher", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the attempts in flight (waits up to ``timeout``, default: the longest
        lease, i.e. the longest webhook timeout + 5 s)."""
        self._stop.set()
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop has ended already
                pass
        if self._thread is not None:
            longest = max((lease_seconds(w) for w in self.webhooks.values()), default=LEASE_MARGIN_SECONDS)
            self._thread.join(longest if timeout is None else timeout)

    async def _main(self) -> None:
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        # One client (one connection pool) per webhook: no webhook waits for another's connections.
        clients = {name: httpx.AsyncClient(follow_redirects=False, timeout=None) for name in self.webhooks}
        try:
            workers = [self._worker(webhook, clients[name]) for name, webhook in self.webhooks.items()]
            await asyncio.gather(*workers, self._housekeeping())
        finally:
            for client in clients.values():
                await client.aclose()

    async def _pause(self) -> None:
        """Wait ``poll_seconds``, or less if :meth:`stop` is called."""
        assert self._wake is not None
        try:
            await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
        except TimeoutError:
            pass

    # -- the workers --------------------------------------------------------------------------
    async def _worker(self, webhook: WebhookConfig, client: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            try:
                sent = await self._round(webhook, client)
            except Exception:  # a database hiccup must not end deliveries for good
                log.exception("webhook %s: dispatcher round failed; retrying", webhook.name)
                sent = 0
            if not sent:
                await self._pause()

    async def _round(self, webhook: WebhookConfig, client: httpx.AsyncClient) -> int:
        """Claim ``webhook``'s due deliveries and attempt each; how many were handled."""
        claim = self.store.claim_due
        rows = await asyncio.to_thread(claim, self._clock(), CLAIM_LIMIT, lease_seconds(webhook), webhook=webhook.name)
        handled = 0
        for row in rows:
            if self._stop.is_set():
                break  # the rest stay leased and are claimed again after the lease (or by another worker)
            await self._attempt(webhook, client, row)
            handled += 1
        if handled:
            await self._refresh_pending()
        return handled

    async def _attempt(self, webhook: WebhookConfig, client: httpx.AsyncClient, row: dict[str, Any]) -> None:
        now = self._clock()
        started = row["retried_at"] or row["created_at"]
        if now - started >= webhook.max_age_seconds:
            reason = f"older than max_age_seconds={webhook.max_age_seconds:g}; last error: {row['last_error']}"
            result = AttemptResult(row["last_status"], reason)
            await asyncio.to_thread(self._finish, row, webhook, "dead", result, now, count_attempt=False)
            return
        result = await post(client, webhook, row, int(now))  # the timestamp signed is this attempt's
        now = self._clock()
        if result.delivered:
            state = "delivered"
        elif row["attempts"] + 1 >= webhook.max_attempts or now - started >= webhook.max_age_seconds:
            state = "dead"
        else:
            state = "pending"
        await asyncio.to_thread(self._finish, row, webhook, state, result, now)

    # -- housekeeping -------------------------------------------------------------------------
    async def _housekeeping(self) -> None:
        """Every poll: the pending gauge, and deliveries of webhooks not configured here made dead."""
        while not self._stop.is_set():
            try:
                pending = await self._refresh_pending()
                for name in sorted(set(pending) - set(self.webhooks)):
                    await asyncio.to_thread(self._unconfigured, name)
            except Exception:
                log.exception("webhook dispatcher housekeeping failed; retrying")
            await self._pause()

    async def _refresh_pending(self) -> dict[str, int]:
        pending = await asyncio.to_thread(self.store.pending_by_webhook)
        self.metrics.webhook_outbox_pending.set(sum(pending.values()))
        return pending

    def _unconfigured(self, name: str) -> None:
        now = self._clock()
        for row in self.store.claim_due(now, CLAIM_LIMIT, LEASE_MARGIN_SECONDS, webhook=name):
            error = f"webhook {name!r} is not configured in this instance"
            self._finish(row, None, "dead", AttemptResult(None, error), now)

    # -- recording ----------------------------------------------------------------------------
    def _finish(
        self,
        row: dict[str, Any],
        webhook: WebhookConfig | None,
        state: str,
        result: AttemptResult,
        now: float,
        *,
        count_attempt: bool = True,
    ) -> None:
        delivery_id, name, error = int(row["id"]), row["webhook"], result.error
        attempts = row["attempts"] + (1 if count_attempt else 0)
        next_at = now
        if state == "pending" and webhook is not None:
            next_at = now + backoff_seconds(webhook, delivery_id, attempts)
        self.store.finish_delivery(
            delivery_id, state=state, attempts=attempts, next_attempt_at=next_at, last_status=result.status,
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
