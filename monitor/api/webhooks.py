"""Webhook delivery routes: inspect the outbox, retry a delivery.

GET  /v1/webhooks/deliveries?state=&webhook=&limit=   (read)  deliveries, newest first
POST /v1/webhooks/deliveries/{delivery_id}/retry      (admin) pending again, due now

Rows never hold a secret (signatures and ``${ENV}`` headers are made when sending); the
body is shown as the JSON that is sent.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request

from monitor.api.auth import require

router = APIRouter(tags=["alerts"])


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    body = bytes(row.pop("body"))
    try:
        row["body"] = orjson.loads(body)
    except orjson.JSONDecodeError:  # not written by us; show it rather than fail the listing
        row["body"] = body.decode("utf-8", errors="replace")
    return row


@router.get("/v1/webhooks/deliveries", dependencies=[Depends(require("read"))])
async def list_deliveries(
    request: Request,
    state: Literal["pending", "delivered", "dead", "suppressed"] | None = Query(None),
    webhook: str | None = Query(None, max_length=100),
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    store = request.app.state.store
    rows = await asyncio.to_thread(store.webhook_deliveries, state=state, webhook=webhook, limit=limit)
    return {"deliveries": [_shown(row) for row in rows]}


@router.post(
    "/v1/webhooks/deliveries/{delivery_id}/retry",
    dependencies=[Depends(require("admin"))],
    responses={404: {}, 409: {}},
)
async def retry_delivery(request: Request, delivery_id: int = Path(ge=1, le=2**62)) -> dict[str, Any]:
    store = request.app.state.store
    try:
        row = await asyncio.to_thread(store.retry_delivery, delivery_id, time.time())
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None
    if row is None:
        raise HTTPException(404, f"no webhook delivery {delivery_id}")
    return {"delivery": _shown(row)}
