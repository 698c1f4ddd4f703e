"""Alert routes: current and past alerts, and an alert's transitions.

GET /v1/alerts?state=&model=           (read) alerts, most recently changed first
GET /v1/alerts/{alert_id}/transitions  (read) every state change of one alert
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from monitor.api.auth import require

router = APIRouter(tags=["alerts"])


@router.get("/v1/alerts", dependencies=[Depends(require("read"))])
async def list_alerts(
    request: Request,
    state: Literal["pending", "firing", "resolved", "inactive"] | None = Query(None),
    model: str | None = Query(None, max_length=256),
    limit: int = Query(1000, ge=1, le=10_000),
) -> dict[str, Any]:
    rows = await asyncio.to_thread(request.app.state.store.alerts, state=state, model=model, limit=limit)
    return {"alerts": rows}


@router.get("/v1/alerts/{alert_id}/transitions", dependencies=[Depends(require("read"))], responses={404: {}})
async def alert_transitions(request: Request, alert_id: str) -> dict[str, Any]:
    if len(alert_id) > 512:
        raise HTTPException(404, "no such alert")
    rows = await asyncio.to_thread(request.app.state.store.alert_transitions, alert_id)
    if not rows:
        raise HTTPException(404, f"no alert {alert_id!r}")
    return {"alert_id": alert_id, "transitions": rows}
