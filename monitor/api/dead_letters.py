"""Dead-letter route: rejected items, for inspection.

GET /v1/dead-letters?model=&reason=&limit=&before_id=   (admin) newest first

A page holds at most ``limit`` rows and at most RESPONSE_MAX_BYTES of JSON (at least one
row, so paging always moves on). When older rows remain, ``next_before_id`` is the
``before_id`` of the next page and ``stopped`` says which bound ended this one (``limit``
or ``byte_limit``); both are null on the last page.
"""

from __future__ import annotations

import asyncio
import base64
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from monitor.api.auth import require
from monitor.store.database import Store

if TYPE_CHECKING:
    from monitor.api.service import Service

router = APIRouter(tags=["models"])
# A response's bytes: 20 rows of a 15 MiB item once made a 315 MB answer. The rows are
# cut to storage.dead_letter_max_item_bytes (64 KiB by default), so a page holds dozens.
RESPONSE_MAX_BYTES = 4 * 1024 * 1024
_ENVELOPE_BYTES = 128  # the object around the rows: '{"dead_letters":[...],"next_before_id":...}'


PAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "dead_letters": {"type": "array", "items": {"type": "object"}},
        "next_before_id": {"type": ["integer", "null"], "description": "before_id of the next page; null: last page"},
        "stopped": {"type": ["string", "null"], "enum": ["limit", "byte_limit", None]},
    },
}


@router.get(
    "/v1/dead-letters",
    dependencies=[Depends(require("admin"))],
    response_class=Response,
    responses={
        200: {"description": "One page, newest first", "content": {"application/json": {"schema": PAGE_SCHEMA}}}
    },
)
async def dead_letters(
    request: Request,
    model: str | None = Query(None, max_length=128),
    reason: str | None = Query(None, max_length=64),
    limit: int = Query(100, ge=1, le=1000),
    before_id: int | None = Query(None, ge=0, le=2**62),
) -> Response:
    """Rejected items, newest first, with the raw item (cut to its byte cap, flagged
    ``raw_truncated`` with ``raw_size``) and the reason; paged by ``next_before_id``."""
    store: Store = request.app.state.store
    service: Service | None = getattr(request.app.state, "service", None)
    if service is not None and store.available:
        # What was rejected before this request is shown: the writer thread may not have
        # written it yet (a thread, not the event loop, waits for that write).
        await asyncio.to_thread(service.dead_letter_buffer.flush)
    rows, more = await asyncio.to_thread(
        store.dead_letter_page, model, reason, limit, before_id, RESPONSE_MAX_BYTES - _ENVELOPE_BYTES
    )
    parts: list[bytes] = []
    used = _ENVELOPE_BYTES
    for row in rows:
        part = orjson.dumps(_shown(row), option=orjson.OPT_NON_STR_KEYS)
        if parts and used + len(part) + 1 > RESPONSE_MAX_BYTES:
            more = True  # the stored sizes underestimated the JSON (escapes, base64): stop here
            break
        parts.append(part)
        used += len(part) + 1
    stopped = None
    if more:
        stopped = "limit" if len(parts) == limit else "byte_limit"
    tail = orjson.dumps({"next_before_id": rows[len(parts) - 1]["id"] if more else None, "stopped": stopped})
    body = b'{"dead_letters":[' + b",".join(parts) + b"]," + tail[1:]
    return Response(body, media_type="application/json")


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row as the API shows it: undecodable payloads (Kafka, binary CloudEvents)
    travel as base64."""
    shown = dict(row)
    raw_bytes = shown.pop("raw_bytes", None)
    shown["raw_bytes_base64"] = base64.b64encode(raw_bytes).decode() if raw_bytes is not None else None
    return shown
