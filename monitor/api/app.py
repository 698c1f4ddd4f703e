"""The FastAPI application: the composition root that wires settings, store, pipeline,
collectors and metrics together.

``create_app(settings)`` builds a fresh app (tests build several, each with its own
Prometheus registry and database). ``monitor serve`` runs it under uvicorn through
:func:`app_from_environment`, which reads the config path from ``MONITOR_CONFIG_FILE``
so that several uvicorn workers can each build their own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.types import ASGIApp, Receive, Scope, Send

from alerts.dispatcher import WebhookDispatcher
from alerts.engine import Transition
from alerts.sink import AlertSink
from collectors import http
from collectors.kafka import SOURCE as KAFKA_SOURCE
from collectors.kafka import KafkaCollector
from monitor.api import alerts as api_alerts
from monitor.api import models as api_models
from monitor.api import webhooks as api_webhooks
from monitor.api.auth import TokenChecker, require
from monitor.api.availability import STORE_UNAVAILABLE_RESPONSE, RetryBuffer, StoreMetrics, add_store_error_handlers
from monitor.api.responses import JSONResponse
from monitor.gc_tuning import tune_garbage_collector
from monitor.metrics import Metrics
from monitor.pipeline import DeadLetterItem, Pipeline
from monitor.reference_startup import load_references, reference_saver
from monitor.result_gauges import MetricsSink
from monitor.settings import Settings, load_settings
from monitor.store.database import Store
from monitor.store.engine import is_transient
from monitor.store.result_sink import StoreSink
from monitor.store.tables import DeadLetter

log = logging.getLogger(__name__)
CONFIG_ENV = "MONITOR_CONFIG_FILE"


class RequestTimer:
    """ASGI middleware: observes each request's duration by route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            # The template (/v1/models/{model}), never the raw path: labels stay bounded.
            template = getattr(route, "path", "unmatched")
            self.metrics.request_duration.labels(template, str(status)).observe(time.perf_counter() - started)


def _store_dead_letters(buffer: RetryBuffer[DeadLetter], metrics: Metrics):
    """The pipeline's dead-letter sink: written at once, or kept in ``buffer`` while the store
    is unreachable (and written by the housekeeping loop when it answers again)."""

    def sink(items: Sequence[DeadLetterItem]) -> None:
        letters = [
            DeadLetter(
                received_at=item.received_at,
                source=item.source,
                model=item.rejection.model,
                item_index=item.rejection.index,
                path=item.rejection.path,
                reason=item.rejection.reason,
                message=item.rejection.message,
                raw=item.rejection.raw,
                raw_bytes=item.raw_bytes,
                headers=item.headers,
            )
            for item in items
        ]
        try:
            buffer.submit(letters)
        except Exception:  # the store refused them: still counted and answered; say loudly what was lost
            log.exception("could not store %d dead letters", len(letters))
            metrics.dead_letters_dropped.labels("store_error").inc(len(letters))

    return sink


def flush_counts(pipeline: Pipeline, store: Store, *, besides: str | None = None) -> None:
    """Write the pipeline's count deltas (of every source but ``besides``) to the store; on
    failure keep them for next time."""
    deltas = pipeline.take_count_deltas(besides=besides)
    if not deltas:
        return
    try:
        store.add_counts(deltas)
    except Exception as exc:
        if is_transient(exc):
            log.warning("could not write record counts, the store is unreachable; will retry: %s", exc)
        else:
            log.exception("could not write record counts; will retry")
        pipeline.restore_count_deltas(deltas)


AlertUpdate = tuple[list[Transition], dict[str, Any]]


class _AlertPersister:
    """The AlertSink's persist: transitions, engine state and webhook deliveries in one
    transaction; deliveries suppressed by a cooldown are counted. With ``buffer`` (a
    RetryBuffer made from ``store_metrics``), updates that find the store unreachable wait
    there and are written together, in order, with the newest engine state, once it answers
    (the engine goes on meanwhile instead of losing the window)."""

    def __init__(self, store: Store, settings: Settings, metrics: Metrics, store_metrics: StoreMetrics | None):
        self.store = store
        self.webhooks = settings.alerts.webhooks
        self.metrics = metrics
        self.buffer: RetryBuffer[AlertUpdate] | None = None
        if store_metrics is not None:
            size = settings.storage.retry_buffer_size
            self.buffer = RetryBuffer("alerts", self.write, store, store_metrics, max_items=size)

    def write(self, updates: list[AlertUpdate]) -> None:
        transitions = [transition for batch, _ in updates for transition in batch]
        enqueued = self.store.apply_alert_transitions(transitions, updates[-1][1], webhooks=self.webhooks)
        for webhook, state in enqueued:
            if state == "suppressed":
                self.metrics.webhook_deliveries.labels(webhook, "suppressed").inc()

    def __call__(self, transitions: Sequence[Transition], engine_state: Mapping[str, Any]) -> None:
        update = [(list(transitions), dict(engine_state))]
        if self.buffer is None:
            self.write(update)
        else:
            self.buffer.submit(update)


def _persist_alerts(
    store: Store, settings: Settings, metrics: Metrics, store_metrics: StoreMetrics | None = None
) -> _AlertPersister:
    return _AlertPersister(store, settings, metrics, store_metrics)


async def _flush_waiting_writes(state: Any) -> None:
    """Writes kept while the store was unreachable, then the count deltas."""
    for buffer in state.retry_buffers:
        await asyncio.to_thread(buffer.flush)
    # The Kafka collector writes its counts with its checkpoints: see collectors/kafka.py.
    besides = None if state.kafka is None else KAFKA_SOURCE
    await asyncio.to_thread(lambda: flush_counts(state.pipeline, state.store, besides=besides))


async def _housekeeping(app: FastAPI) -> None:
    """Periodically release expired partial records, check that the store answers (marking
    it up or down), write what waited for it, persist counts and trim dead letters."""
    state = app.state
    interval = state.settings.storage.flush_interval_seconds
    while True:
        await asyncio.sleep(interval)
        try:
            state.pipeline.expire()
            if not await asyncio.to_thread(state.store.ping):
                continue  # counts stay in the pipeline, other writes in the retry buffers
            await _flush_waiting_writes(state)
            dropped = await asyncio.to_thread(
                state.store.trim_dead_letters, state.settings.storage.dead_letter_max_rows
            )
            if dropped:
                state.metrics.dead_letters_dropped.labels("row_limit").inc(dropped)
        except Exception as exc:  # keep the loop alive whatever one round hit
            if is_transient(exc):
                log.warning("housekeeping round: the store is unreachable: %s", exc)
            else:
                log.exception("housekeeping round failed")


def _kafka_collector(settings: Settings, pipeline: Pipeline, store: Store, metrics: Metrics) -> KafkaCollector | None:
    if not settings.kafka.topics:
        return None
    return KafkaCollector(settings.kafka, pipeline, store, metrics)


def create_app(settings: Settings, *, registry: CollectorRegistry | None = None, store: Store | None = None) -> FastAPI:
    """A new app for ``settings``. Pass ``registry`` to read metrics in tests."""
    metrics = Metrics(registry, settings.limits.max_series_per_model)
    store = store or Store.from_settings(settings.storage)
    store_metrics = StoreMetrics(metrics.registry, store)
    dead_letter_buffer: RetryBuffer[DeadLetter] = RetryBuffer(
        "dead_letters", store.add_dead_letters, store, store_metrics, max_items=settings.storage.retry_buffer_size,
        on_drop=metrics.dead_letters_dropped.labels("store_error").inc,
    )  # fmt: skip
    results_buffer: RetryBuffer[dict[str, Any]] = RetryBuffer(
        "results", store.add_results, store, store_metrics, max_items=settings.storage.retry_buffer_size
    )
    persist_alerts = _persist_alerts(store, settings, metrics, store_metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for name, config in settings.models.items():
            store.upsert_model(name, config.model_dump(), "config")
        await asyncio.to_thread(load_references, pipeline, store)
        kafka = app.state.kafka = _kafka_collector(settings, pipeline, store, metrics)
        if kafka is not None:
            kafka.start()
        task = asyncio.create_task(_housekeeping(app))
        dispatcher = None
        if settings.alerts.webhooks:
            dispatcher = WebhookDispatcher(store, settings.alerts.webhooks, metrics)
            dispatcher.start()
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if dispatcher is not None:  # after the attempt in flight; the outbox keeps the rest
                await asyncio.to_thread(dispatcher.stop)
            if kafka is not None:  # the batch in hand is applied, checkpointed and committed
                await asyncio.to_thread(kafka.stop)
            # Uvicorn has finished the requests in flight: hand every buffered part on and
            # persist the counts, so no accepted record is lost.
            pipeline.drain()
            await asyncio.to_thread(pipeline.close)  # windows already closed are evaluated and stored
            await _flush_waiting_writes(app.state)
            waiting = {buffer.kind: buffer.pending for buffer in app.state.retry_buffers if buffer.pending}
            counts = pipeline.take_count_deltas()  # flush_counts put them back: not written
            if waiting or counts:
                log.error("shutting down with the store unreachable: lost the waiting writes %s and the counts %s",
                          waiting, counts)  # fmt: skip
            store.close()
            log.info("shut down cleanly")

    app = FastAPI(
        title="Model monitor",
        version="0.1.0",
        description="Drift, data-quality, latency and performance monitoring for production ML models.",
        lifespan=lifespan,
        default_response_class=JSONResponse,
    )
    pipeline = Pipeline(
        settings,
        metrics,
        dead_letters=_store_dead_letters(dead_letter_buffer, metrics),
        sinks=[
            StoreSink(store, results_buffer),
            MetricsSink(metrics),
            AlertSink(settings.alerts.rules, metrics, persist_alerts, store.alert_engine_state()),
        ],
        save_reference=reference_saver(store),
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.store = store
    app.state.retry_buffers = (dead_letter_buffer, results_buffer, persist_alerts.buffer)
    app.state.pipeline = pipeline
    app.state.kafka = None
    app.state.tokens = TokenChecker(settings.auth)
    app.add_middleware(RequestTimer, metrics=metrics)
    app.include_router(http.router, responses=STORE_UNAVAILABLE_RESPONSE)
    app.include_router(api_models.router)
    app.include_router(api_alerts.router)
    app.include_router(api_webhooks.router)
    _add_service_routes(app)
    add_store_error_handlers(app)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default is a list of dicts; keep our shape: one detail string with paths.
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"detail": problems}, status_code=422)

    return app


def _add_service_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["service"], dependencies=[Depends(require("read"))])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["service"], dependencies=[Depends(require("read"))])
    async def readyz(request: Request) -> Response:
        """Ready when the store answers (and the Kafka broker, when Kafka is configured)."""
        ok = await asyncio.to_thread(request.app.state.store.ping)
        body = {"status": "ready", "store": "ok" if ok else "unreachable"}
        kafka = request.app.state.kafka
        if kafka is not None:
            body["kafka"] = "ok" if kafka.connected else "unreachable"
            ok = ok and kafka.connected
        body["status"] = "ready" if ok else "not ready"
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["service"], dependencies=[Depends(require("read"))])
    async def metrics(request: Request) -> Response:
        """Prometheus exposition."""
        return PlainTextResponse(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", tags=["models"], dependencies=[Depends(require("read"))])
    async def list_models(request: Request) -> dict[str, Any]:
        """Models known to this instance, with their record counts since start-up."""
        pipeline: Pipeline = request.app.state.pipeline
        return {
            "models": [
                {
                    "name": state.name,
                    "features": state.config.feature_names,
                    "prediction": state.config.prediction.kind,
                    "records": state.records,
                    "incomplete": state.incomplete,
                    "labelled": state.labelled,
                    "windows_evaluated": state.windows_evaluated,
                    "open_window_records": state.detector.open_records if state.detector is not None else 0,
                }
                for state in pipeline.models.values()
            ]
        }

    @app.get("/v1/dead-letters", tags=["models"], dependencies=[Depends(require("admin"))])
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


def app_from_environment() -> FastAPI:
    """Uvicorn factory: settings from the file named by ``MONITOR_CONFIG_FILE``."""
    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise RuntimeError(f"{CONFIG_ENV} is not set: start the service with `monitor serve --config FILE`")
    app = create_app(load_settings(path))
    tune_garbage_collector()
    return app
