"""What the webhook dispatcher needs from the durable outbox. The store implements it
(:class:`monitor.store.outbox.OutboxStore`); ``alerts`` never imports the store."""

from __future__ import annotations

from typing import Any, Protocol


class Outbox(Protocol):
    def claim_due(
        self, now: float, limit: int, lease_seconds: float, *, webhook: str | None = None
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` pending deliveries due at ``now``, of ``webhook`` only when given,
        each leased for a while so that no other dispatcher sends it meanwhile. A row has
        ``id``, ``webhook``, ``alert_id``, ``body``, ``idempotency_key``, ``attempts``,
        ``created_at``, ``retried_at``, ``last_status`` and ``last_error``."""
        ...

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
        """Record one attempt's outcome: ``state`` is ``pending`` (retry at
        ``next_attempt_at``), ``delivered`` or ``dead``."""
        ...

    def pending_by_webhook(self) -> dict[str, int]:
        """Pending deliveries (due or not) per webhook name."""
        ...
