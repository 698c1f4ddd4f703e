"""The FastAPI application: the :class:`~monitor.api.service.Service` behind every route.

``create_app(settings)`` builds a fresh app (tests build several, each with its own
Prometheus registry and database). ``monitor serve`` runs it under uvicorn through
:func:`app_from_environment`, which reads the config path from ``MONITOR_CONFIG_FILE``
so that several uvicorn workers can each build their own.

Every route is in ``monitor/api/``: ingestion (:mod:`.ingest`), models, references and
results (:mod:`.models`), alerts, webhooks, dead letters and the service routes
(:mod:`.health`). The collectors turn bodies into records; they never see HTTP.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from prometheus_client import CollectorRegistry

from monitor.api import alerts, dead_letters, docs, health, http_protocol, ingest, models, runbooks, ui, webhooks
from monitor.api.auth import TokenChecker
from monitor.api.availability import STORE_UNAVAILABLE_RESPONSE, add_store_error_handlers
from monitor.api.body import BodyBudget
from monitor.api.head_limit import HeadLimit
from monitor.api.responses import JSONResponse
from monitor.api.service import Service
from monitor.api.timing import RequestTimer
from monitor.api.versions import router as versions_router
from monitor.gc_tuning import tune_garbage_collector
from monitor.metrics import Metrics
from monitor.settings import Settings, load_settings
from monitor.store.database import Store

CONFIG_ENV = "MONITOR_CONFIG_FILE"


def create_app(settings: Settings, *, registry: CollectorRegistry | None = None, store: Store | None = None) -> FastAPI:
    """A new app for ``settings``. Pass ``registry`` to read metrics in tests."""
    metrics = Metrics(registry, settings.limits.max_series_per_model)
    service = Service(settings, metrics, store or Store.from_settings(settings.storage))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="Model monitor",
        version="0.1.0",
        description="Drift, data-quality, latency and performance monitoring for production ML models.",
        lifespan=lifespan,
        default_response_class=JSONResponse,
        # Served by monitor.api.docs, behind the auth (FastAPI's own would answer anyone).
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.store = service.store
    app.state.retry_buffers = service.retry_buffers
    app.state.pipeline = service.pipeline
    app.state.tokens = TokenChecker(settings.auth)
    budget = app.state.body_budget = BodyBudget(
        settings.limits.max_inflight_body_bytes, metrics.requests_refused.labels("body_budget").inc
    )
    metrics.inflight_body_bytes.set_function(lambda: budget.used)
    app.add_middleware(HeadLimit)  # inside the timer: its 431s are timed and counted by status
    app.add_middleware(RequestTimer, metrics=metrics)
    app.include_router(ingest.router, responses=STORE_UNAVAILABLE_RESPONSE)
    app.include_router(models.router)
    app.include_router(versions_router)  # GET /v1/models/{m}/versions (monitor/version_state.py)
    app.include_router(alerts.router)
    app.include_router(webhooks.router)
    app.include_router(health.router)
    app.include_router(dead_letters.router)
    app.include_router(docs.router)
    app.include_router(runbooks.router)  # GET /runbooks: what each Prometheus rule's runbook_url opens
    app.include_router(ui.router)  # the web page (GET /ui) and the HTML report
    add_store_error_handlers(app)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default is a list of dicts; keep our shape: one detail string with paths.
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"detail": problems}, status_code=422)

    return app


def app_from_environment() -> FastAPI:
    """Uvicorn factory: settings from the file named by ``MONITOR_CONFIG_FILE``."""
    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise RuntimeError(f"{CONFIG_ENV} is not set: start the service with `monitor serve --config FILE`")
    settings = load_settings(path)
    app = create_app(settings)
    refused = app.state.metrics.requests_refused.labels("request_timeout")
    http_protocol.configure(settings.server.request_timeout_seconds, refused.inc)
    tune_garbage_collector()
    return app
