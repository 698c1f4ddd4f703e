"""Alert methods of :class:`monitor.store.database.Store`: transitions, current alerts, engine state.

An evaluated window's alert transitions, the alerts' new states and the engine's state are
written in one transaction, together with the retraining-webhook deliveries they cause
(:func:`monitor.store.outbox.enqueue`), so after a crash the stored alerts, the engine and
the outbox agree.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from alerts.transition import Transition
from alerts.webhooks import WebhookConfig
from monitor.store import tables as t
from monitor.store.outbox import enqueue
from monitor.store.results import json_safe

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

ENGINE_STATE = "alerts"


def _recorded(conn: Connection, tr: Transition) -> bool:
    c = t.alert_transitions.c
    query = sa.select(c.alert_id).where(
        c.alert_id == tr.alert_id, c.to_state == tr.to_state, c.window_seq == tr.window_seq
    )
    return conn.execute(query.limit(1)).first() is not None


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


class AlertsStore:
    """Alert persistence (mixed into :class:`monitor.store.database.Store`)."""

    _engine: Engine

    if TYPE_CHECKING:

        def _write_retrying(self, work: Callable[[Connection], None], what: str) -> None: ...

    def apply_alert_transitions(
        self,
        transitions: Sequence[Transition],
        engine_state: Mapping[str, Any],
        *,
        webhooks: Sequence[WebhookConfig] = (),
    ) -> list[tuple[str, str]]:
        """Record transitions, update (or create) their alerts, enqueue the deliveries to
        ``webhooks`` and save the engine's state, in one transaction. Returns the (webhook,
        state) of each delivery enqueued (state ``pending`` or ``suppressed``)."""
        now = time.time()
        state_json = json_safe(dict(engine_state))
        enqueued: list[tuple[str, str]] = []

        def work(conn: Connection) -> None:
            enqueued.clear()  # a conflict reruns the whole transaction
            a = t.alerts.c
            applied = []
            for tr in transitions:
                if _recorded(conn, tr):
                    # The same window moved the same alert already: evaluated again by the
                    # instance that took the model over after a crash. Once is enough.
                    continue
                applied.append(tr)
                values = {
                    "state": tr.to_state, "updated_at": tr.at, "window_seq": tr.window_seq,
                    "value": _finite(tr.value), "detail": json_safe(dict(tr.detail)),
                }  # fmt: skip
                if tr.to_state == "firing":
                    values["fired_at"] = tr.at
                if tr.to_state == "resolved":
                    values["resolved_at"] = tr.at
                updated = conn.execute(sa.update(t.alerts).where(a.alert_id == tr.alert_id).values(**values))
                if updated.rowcount == 0:
                    conn.execute(
                        sa.insert(t.alerts).values(
                            alert_id=tr.alert_id, rule=tr.rule, model=tr.model, feature=tr.feature,
                            severity=tr.severity, started_at=tr.at, **values,
                        )
                    )  # fmt: skip
                conn.execute(
                    sa.insert(t.alert_transitions).values(
                        alert_id=tr.alert_id, from_state=tr.from_state, to_state=tr.to_state, at=tr.at,
                        window_seq=tr.window_seq, value=_finite(tr.value), detail=json_safe(dict(tr.detail)),
                    )
                )  # fmt: skip
            saved = conn.execute(
                sa.update(t.engine_state)
                .where(t.engine_state.c.name == ENGINE_STATE)
                .values(data=state_json, updated_at=now)
            )
            if saved.rowcount == 0:
                conn.execute(sa.insert(t.engine_state).values(name=ENGINE_STATE, data=state_json, updated_at=now))
            if webhooks and applied:
                enqueued.extend(enqueue(conn, applied, webhooks, now))

        self._write_retrying(work, f"recording {len(transitions)} alert transition(s)")
        return enqueued

    def alert_engine_state(self) -> dict[str, Any] | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(t.engine_state.c.data).where(t.engine_state.c.name == ENGINE_STATE)).first()
        return None if row is None else dict(row.data)

    def alerts(self, *, state: str | None = None, model: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Alerts, most recently changed first."""
        a = t.alerts.c
        query = sa.select(t.alerts).order_by(a.updated_at.desc(), a.alert_id).limit(limit)
        if state is not None:
            query = query.where(a.state == state)
        if model is not None:
            query = query.where(a.model == model)
        with self._engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def alert_transitions(self, alert_id: str) -> list[dict[str, Any]]:
        c = t.alert_transitions.c
        query = sa.select(t.alert_transitions).where(c.alert_id == alert_id).order_by(c.id)
        with self._engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]
