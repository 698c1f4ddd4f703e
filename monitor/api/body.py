"""Reading request bodies within the ingestion limits, and their media types.

The size limit is enforced while streaming: a client cannot make us buffer more than
``max_body_bytes`` by lying in Content-Length. The bytes held by all the bodies being read
at once are bounded too (:class:`BodyBudget`, ``limits.max_inflight_body_bytes``): the
request that would go past it is refused with 503 and ``Retry-After``, so a crowd of slow
uploads cannot take the sidecar's memory (their time is bounded by the request deadline:
:mod:`monitor.api.http_protocol`).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import HTTPException, Request
from starlette.requests import ClientDisconnect

JSON_TYPES = frozenset({"application/json"})
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"})


class BodyBudget:
    """Bytes of request bodies held while being read, across the connections of one event
    loop (a worker process); not thread-safe, and needs not be: only the loop touches it."""

    def __init__(self, max_bytes: int, on_refusal: Callable[[], None] | None = None):
        self.max_bytes = max_bytes
        self.used = 0
        self._on_refusal = on_refusal

    def take(self, n: int) -> None:
        """Hold ``n`` more bytes, or 503 when that would go past the budget."""
        if self.used + n > self.max_bytes:
            if self._on_refusal is not None:
                self._on_refusal()
            raise HTTPException(
                503,
                f"too many request bodies are being received at once ({self.max_bytes} bytes: "
                "limits.max_inflight_body_bytes); retry later",
                headers={"Retry-After": "1"},
            )
        self.used += n

    def give_back(self, n: int) -> None:
        self.used -= n


def media_type(request: Request) -> str:
    """The request's media type, lower case, without parameters such as charset."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_body(request: Request, max_bytes: int, budget: BodyBudget | None = None) -> bytes:
    """The whole body, or 413 as soon as it exceeds ``max_bytes`` (or 503 past ``budget``)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, f"request body is {declared} bytes; the limit is {max_bytes} (limits.max_body_bytes)")
    chunks = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise HTTPException(413, f"request body exceeds {max_bytes} bytes (limits.max_body_bytes)")
            if budget is not None:
                budget.take(len(chunk))
            chunks.append(chunk)
    except ClientDisconnect:
        # The client went, or its request deadline closed the connection: nobody reads this.
        raise HTTPException(408, "the request body did not arrive") from None
    finally:
        if budget is not None:
            budget.give_back(sum(map(len, chunks)))
    return b"".join(chunks)
