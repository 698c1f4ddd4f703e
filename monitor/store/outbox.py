"""The retraining-webhook outbox (table ``webhook_deliveries``), mixed into
:class:`monitor.store.database.Store`; it is the :class:`alerts.outbox.Outbox` the
dispatcher asks.

:func:`enqueue` runs inside :meth:`~monitor.store.alerts.AlertsStore.apply_alert_transitions`'s
transaction: an alert transition and its deliveries are stored together or not at all.
The dispatcher (:mod:`alerts.dispatcher`, one worker per webhook) then
:meth:`~OutboxStore.claim_due` s each webhook's pending rows and records each attempt with
:meth:`~OutboxStore.finish_delivery`.

Claiming leases a row: its ``next_attempt_at`` moves ``lease_seconds`` ahead, so another
worker (or this one after a crash) only takes it again once the lease is over. Delivery
is therefore at least once; receivers deduplicate with the ``Idempotency-Key``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from alerts.webhooks import WebhookConfig, idempotency_key, render_body
from monitor.store import tables as t

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from alerts.transition import Transition

# Deliveries that start a cooldown: a suppressed one did not call the webhook, and a dead
# one never reached it, so neither stops the next alert from retraining.
_COOLING = ("pending", "delivered")


def enqueue(
    conn: Connection, transitions: Sequence[Transition], webhooks: Sequence[WebhookConfig], now: float
) -> list[tuple[str, str]]:
    """Insert a delivery per (transition, matching webhook) on ``conn``; the (webhook, state)
    of each row inserted, state ``pending`` or ``suppressed`` (within the cooldown)."""
    c = t.webhook_deliveries.c
    added: list[tuple[str, str]] = []
    for tr in transitions:
        for webhook in webhooks:
            if not webhook.matches(tr):
                continue
            key = idempotency_key(webhook.name, tr)
            if conn.execute(sa.select(c.id).where(c.idempotency_key == key)).first() is not None:
                continue  # already enqueued (the same transition applied twice): one delivery only
            state = "pending"
            if webhook.cooldown_seconds > 0:
                recent = sa.select(c.id).where(
                    c.webhook == webhook.name, c.model == tr.model, c.state.in_(_COOLING),
                    c.created_at > now - webhook.cooldown_seconds,
                ).limit(1)  # fmt: skip
                if conn.execute(recent).first() is not None:
                    state = "suppressed"
            conn.execute(
                sa.insert(t.webhook_deliveries).values(
                    webhook=webhook.name, alert_id=tr.alert_id, model=tr.model, state=state, idempotency_key=key,
                    body=render_body(webhook, tr), created_at=now, next_attempt_at=now, attempts=0,
                )
            )  # fmt: skip
            added.append((webhook.name, state))
    return added


class OutboxStore:
    """Webhook deliveries (mixed into :class:`monitor.store.database.Store`)."""

    _engine: Engine

    if TYPE_CHECKING:

        def _write_retrying(self, work: Callable[[Connection], None], what: str) -> None: ...

    def claim_due(
        self, now: float, limit: int, lease_seconds: float, *, webhook: str | None = None
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` pending deliveries due at ``now`` (of ``webhook`` only, when given),
        oldest due first, each leased for ``lease_seconds`` times its position (they are sent
        one after the other)."""
        c = t.webhook_deliveries.c
        due = sa.and_(c.state == "pending", c.next_attempt_at <= now)
        if webhook is not None:  # each webhook's worker claims its own rows only
            due = sa.and_(due, c.webhook == webhook)
        # A read first: most polls find nothing and should not take SQLite's write lock.
        with self._engine.connect() as conn:
            if conn.execute(sa.select(c.id).where(due).limit(1)).first() is None:
                return []
        claimed: list[dict[str, Any]] = []
        # PostgreSQL: concurrent workers skip each other's rows; SQLite ignores FOR UPDATE
        # (BEGIN IMMEDIATE already serialises the writers).
        query = (
            sa.select(t.webhook_deliveries)
            .where(due)
            .order_by(c.next_attempt_at, c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )

        def work(conn: Connection) -> None:
            claimed.clear()
            for i, row in enumerate(conn.execute(query).mappings().all()):
                lease = now + lease_seconds * (i + 1)
                conn.execute(sa.update(t.webhook_deliveries).where(c.id == row["id"]).values(next_attempt_at=lease))
                claimed.append(dict(row))

        self._write_retrying(work, "claiming due webhook deliveries")
        return claimed

    def finish_delivery(
        self,
        delivery_id: int,
        *,
        state: str,
        attempts: int,
        next_attempt_at: float,
        last_status: int | None,
        last_error: str | None,
        delivered_at: float | None = None,
    ) -> None:
        """Record one attempt's outcome on a (still pending) delivery."""
        c = t.webhook_deliveries.c
        values = dict(
            state=state, attempts=attempts, next_attempt_at=next_attempt_at, last_status=last_status,
            last_error=None if last_error is None else last_error[: t.MAX_TEXT], delivered_at=delivered_at,
        )  # fmt: skip

        def work(conn: Connection) -> None:
            conn.execute(
                sa.update(t.webhook_deliveries).where(c.id == delivery_id, c.state == "pending").values(**values)
            )

        self._write_retrying(work, f"recording attempt {attempts} of webhook delivery {delivery_id}")

    def retry_delivery(self, delivery_id: int, now: float) -> dict[str, Any] | None:
        """Make a dead, suppressed or failing delivery pending and due now, with its attempts
        and age starting again. None when there is no such delivery; ValueError when it was
        delivered already."""
        c = t.webhook_deliveries.c
        found: list[dict[str, Any]] = []

        def work(conn: Connection) -> None:
            found.clear()
            row = conn.execute(sa.select(t.webhook_deliveries).where(c.id == delivery_id)).mappings().first()
            if row is None or row["state"] == "delivered":
                found.extend([] if row is None else [dict(row)])
                return
            values = dict(state="pending", next_attempt_at=now, attempts=0, retried_at=now)
            conn.execute(sa.update(t.webhook_deliveries).where(c.id == delivery_id).values(**values))
            found.append({**row, **values})

        self._write_retrying(work, f"retrying webhook delivery {delivery_id}")
        if found and found[0]["state"] == "delivered":
            raise ValueError(f"webhook delivery {delivery_id} was delivered already")
        return found[0] if found else None

    def webhook_deliveries(
        self, *, state: str | None = None, webhook: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Deliveries, newest first (``body`` as the bytes sent)."""
        c = t.webhook_deliveries.c
        query = sa.select(t.webhook_deliveries).order_by(c.id.desc()).limit(limit)
        if state is not None:
            query = query.where(c.state == state)
        if webhook is not None:
            query = query.where(c.webhook == webhook)
        with self._engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def pending_by_webhook(self) -> dict[str, int]:
        """Pending deliveries (due or not) per webhook name; webhooks with none are absent."""
        c = t.webhook_deliveries.c
        query = sa.select(c.webhook, sa.func.count()).where(c.state == "pending").group_by(c.webhook)
        with self._engine.connect() as conn:
            return {str(name): int(n) for name, n in conn.execute(query)}

    def count_pending_deliveries(self) -> int:
        query = (
            sa.select(sa.func.count())
            .select_from(t.webhook_deliveries)
            .where(t.webhook_deliveries.c.state == "pending")
        )
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())
