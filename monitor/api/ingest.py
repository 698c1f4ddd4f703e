"""The ingestion routes: ``POST /v1/records`` (our JSON records) and ``POST /v1/cloudevents``
(model servers' payload loggers). The collectors turn the bodies into records
(:mod:`collectors.body`, :mod:`collectors.cloudevents`); these routes add the HTTP side.

The body is one JSON object, a JSON array of objects, or NDJSON (one object per line).
Each item is validated on its own, so the valid items of a mixed batch are accepted and
each rejected one is reported with its index, field path and reason (and kept as a dead
letter). The status is 200 when anything was accepted (or the batch was empty) and 422
when every item was rejected.
"""

from __future__ import annotations

import math
import time
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request

from collectors import cloudevents
from collectors.body import BodyError, decode_json_items, decode_ndjson
from monitor.api.auth import require
from monitor.api.availability import require_store
from monitor.api.body import JSON_TYPES, NDJSON_TYPES, media_type, read_body
from monitor.api.responses import JSONResponse
from monitor.checkpointer import CheckpointFailed
from monitor.pipeline import IngestResult
from monitor.records import Rejection
from monitor.store.dead_letters import kept_headers

router = APIRouter(tags=["ingest"])
# The token first, then the store: a caller without a valid token learns nothing, not even
# that the store is down (503 + Retry-After while it is: monitor.api.availability).
INGEST_DEPENDENCIES = [Depends(require("ingest")), Depends(require_store)]

RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["model"],
    "properties": {
        "model": {"type": "string", "description": "Configured model name."},
        "version": {"type": "string"},
        "id": {"type": "string", "description": "Request id; joins partial records and dedupes."},
        "timestamp": {"oneOf": [{"type": "number"}, {"type": "string", "format": "date-time"}]},
        "inputs": {"type": "object", "additionalProperties": {"type": ["number", "string", "boolean", "null"]}},
        "prediction": {"oneOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}, {"type": "object"}]},
        "latency_ms": {"type": "number", "minimum": 0},
        "label": {"oneOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}]},
        "segment": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "accepted": {"type": "integer"},
        "rejected": {"type": "integer"},
        "duplicates": {"type": "integer"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer"},
                    "path": {"type": "string"},
                    "reason": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
    },
}
ERROR_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"detail": {"type": "string"}}}


def ingest_response(result: IngestResult) -> JSONResponse:
    """200 if anything was accepted (or nothing was sent), 422 when everything was refused."""
    status = 422 if result.rejected and result.accepted == 0 else 200
    return JSONResponse(result.to_dict(), status_code=status)


async def acknowledge(request: Request, result: IngestResult) -> JSONResponse:
    """:func:`ingest_response`, once the records are in a checkpoint when
    ``storage.ack_after_checkpoint`` asks for it (one checkpoint serves every request waiting)."""
    service = request.app.state.service
    storage = service.settings.storage
    if result.accepted and storage.ack_after_checkpoint and service.checkpointer is not None:
        try:
            await service.checkpointer.durable()
        except CheckpointFailed as exc:
            # Applied, not yet durable: a retry is safe, its ids are recognised as duplicates.
            raise HTTPException(
                503, f"{exc}; send the request again (ids already counted are recognised as duplicates)",
                headers={"Retry-After": str(math.ceil(storage.checkpoint_seconds or 1))},
            ) from None  # fmt: skip
    return ingest_response(result)


def _error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {
        code: {"description": "Refused", "content": {"application/json": {"schema": ERROR_SCHEMA}}} for code in codes
    }


@router.post(
    "/v1/records",
    summary="Ingest records (JSON object, JSON array or NDJSON)",
    dependencies=INGEST_DEPENDENCIES,
    response_class=JSONResponse,
    responses={
        200: {"description": "Some or all items accepted", "content": {"application/json": {"schema": RESULT_SCHEMA}}},
        422: {"description": "Every item rejected", "content": {"application/json": {"schema": RESULT_SCHEMA}}},
        **_error_responses(400, 401, 403, 413, 415),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"oneOf": [RECORD_SCHEMA, {"type": "array", "items": RECORD_SCHEMA}]}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        }
    },
)
async def post_records(request: Request) -> JSONResponse:
    state = request.app.state
    limits = state.settings.limits
    kind = media_type(request)
    if kind not in JSON_TYPES and kind not in NDJSON_TYPES:
        raise HTTPException(
            415, f"content type {kind or '(none)'!r} is not accepted; send application/json or application/x-ndjson"
        )
    body = await read_body(request, limits.max_body_bytes, state.body_budget)
    rejections: list[Rejection] = []
    indices: list[int] | None = None
    try:
        if kind in NDJSON_TYPES:
            items, indices, rejections = decode_ndjson(body, limits.max_items_per_request)
        else:
            items = decode_json_items(body, limits.max_items_per_request)
    except BodyError as exc:
        raise HTTPException(exc.status, exc.message) from None
    result = state.pipeline.ingest_items(items, "http", time.time(), indices=indices, rejections=rejections)
    return await acknowledge(request, result)


@router.post(
    "/v1/cloudevents",
    summary="Ingest CloudEvents from model servers' payload loggers (KServe, Seldon)",
    dependencies=INGEST_DEPENDENCIES,
    response_class=JSONResponse,
    responses={
        200: {"description": "Some or all events accepted", "content": {"application/json": {"schema": RESULT_SCHEMA}}},
        422: {"description": "Every event rejected", "content": {"application/json": {"schema": RESULT_SCHEMA}}},
        **_error_responses(400, 401, 403, 413, 415),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/cloudevents+json": {"schema": {"type": "object"}},
                "application/cloudevents-batch+json": {"schema": {"type": "array", "items": {"type": "object"}}},
            },
        }
    },
)
async def post_cloudevents(request: Request) -> JSONResponse:
    """Binary mode (``ce-*`` headers, the payload as body), structured mode
    (``application/cloudevents+json``) and batched mode (``application/cloudevents-batch+json``).
    A request event and its response event (same ``ce-id``) join into one record."""
    state = request.app.state
    body = await read_body(request, state.settings.limits.max_body_bytes, state.body_budget)
    # The parser needs the ce-* attributes and content-type; dead letters keep these and a few
    # other allow-listed headers for inspection, never credentials (monitor.store.dead_letters).
    headers = kept_headers(request.headers)
    try:
        records, rejections = cloudevents.parse_http(
            headers,
            body,
            models=state.pipeline.configs,
            limits=state.settings.limits,
            received_at=time.time(),
            accept_unknown=state.settings.unknown_models == "register",
        )
    except cloudevents.EventEnvelopeError as exc:
        raise HTTPException(exc.status, exc.message) from None
    return await acknowledge(
        request, state.pipeline.ingest(records, rejections, "cloudevents", headers=headers if rejections else None)
    )
