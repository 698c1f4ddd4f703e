"""Service routes: liveness, readiness and the Prometheus exposition.

GET /healthz   the process is up
GET /readyz    the store answers (and the Kafka broker, when Kafka is configured); 503 if not
GET /metrics   Prometheus exposition
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from monitor.api.auth import require
from monitor.api.responses import JSONResponse

router = APIRouter(tags=["service"], dependencies=[Depends(require("read"))])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up. Never touches the store, and nothing on the event loop waits for
    it (ingestion's writes go to a thread: monitor.store.retry_buffer), so this answers
    while the database is locked or slow."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    """Ready when the store answers (and the Kafka broker, when Kafka is configured)."""
    ok = await asyncio.to_thread(request.app.state.store.ping)
    body = {"status": "ready", "store": "ok" if ok else "unreachable"}
    kafka = request.app.state.service.kafka
    if kafka is not None:
        body["kafka"] = "ok" if kafka.connected else "unreachable"
        ok = ok and kafka.connected
    body["status"] = "ready" if ok else "not ready"
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus exposition."""
    return PlainTextResponse(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
