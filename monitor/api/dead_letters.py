"""Dead-letter route: rejected items, for inspection.

GET /v1/dead-letters?model=&reason=&limit=&before_id=   (admin) newest first
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from monitor.api.auth import require
from monitor.store.database import Store

router = APIRouter(tags=["models"])


@router.get("/v1/dead-letters", dependencies=[Depends(require("admin"))])
async def dead_letters(
    request: Request,
    model: str | None = Query(None, max_length=128),
    reason: str | None = Query(None, max_length=64),
    limit: int = Query(100, ge=1, le=1000),
    before_id: int | None = Query(None, ge=0, le=2**62),
) -> dict[str, Any]:
    """Rejected items, newest first, with the raw item and the reason."""
    store: Store = request.app.state.store
    rows = await asyncio.to_thread(store.dead_letters, model=model, reason=reason, limit=limit, before_id=before_id)
    for row in rows:  # undecodable payloads (Kafka, binary CloudEvents) travel as base64
        raw_bytes = row.pop("raw_bytes", None)
        row["raw_bytes_base64"] = base64.b64encode(raw_bytes).decode() if raw_bytes is not None else None
    return {"dead_letters": rows}
