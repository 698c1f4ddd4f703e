"""What the service does while its database is unreachable.

The store marks itself down when a write fails for want of the database (after its
transient-error retries) or a ping fails, and up again when a ping or write succeeds; the
housekeeping loop in :mod:`monitor.api.app` pings it every ``storage.flush_interval_seconds``.

- :func:`require_store`: a FastAPI dependency on the ingestion routes. While the store is
  down they answer 503 with ``Retry-After`` instead of accepting records whose counts,
  dead letters and results could not be kept (Kafka keeps its records until checkpointed).
- Writes that failed because the database was unreachable wait in a
  :class:`~monitor.store.retry_buffer.RetryBuffer` meanwhile.
- :func:`add_store_error_handlers`: a read that finds the database unreachable answers 503
  with ``Retry-After`` too, not 500.
"""

from __future__ import annotations

import logging
import math
from typing import Any, TypeVar

from fastapi import FastAPI, HTTPException, Request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from monitor.api.responses import JSONResponse
from monitor.store.engine import StoreUnavailable, is_transient

log = logging.getLogger(__name__)
T = TypeVar("T")

UNAVAILABLE_DETAIL = "the store is unreachable: nothing was accepted; retry later"
# For the OpenAPI description of the routes behind require_store.
STORE_UNAVAILABLE_RESPONSE: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "The store is unreachable: nothing was accepted; retry after Retry-After seconds",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
        "content": {"application/json": {"schema": {"type": "object", "properties": {"detail": {"type": "string"}}}}},
    }
}


def retry_after_seconds(app: FastAPI) -> int:
    """The housekeeping loop pings the store this often: the soonest a retry can succeed."""
    return max(1, math.ceil(app.state.settings.storage.flush_interval_seconds))


def _unavailable(app: FastAPI) -> HTTPException:
    return HTTPException(503, UNAVAILABLE_DETAIL, headers={"Retry-After": str(retry_after_seconds(app))})


async def require_store(request: Request) -> None:
    """503 with ``Retry-After`` while the store is marked down."""
    # async: a plain def would run in the thread pool on every ingestion request.
    if not request.app.state.store.available:
        raise _unavailable(request.app)


def add_store_error_handlers(app: FastAPI) -> None:
    """A route whose query finds the database unreachable answers 503 + Retry-After."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        if not is_transient(exc):  # a real bug: the usual 500, logged with its traceback
            log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
            return JSONResponse({"detail": "Internal Server Error"}, status_code=500)
        request.app.state.store.mark_down(exc)
        problem = _unavailable(request.app)
        return JSONResponse({"detail": problem.detail}, status_code=503, headers=problem.headers)

    for error in (StoreUnavailable, DBAPIError, PoolTimeoutError):
        app.add_exception_handler(error, handler)
