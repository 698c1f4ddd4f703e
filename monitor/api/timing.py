"""Request durations by route template and status (``monitor_http_request_duration_seconds``)."""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from monitor.metrics import Metrics


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
