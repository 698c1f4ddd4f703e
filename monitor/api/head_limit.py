"""A bound on the size of a request's head (request line and headers): 431 past it.

h11 refuses a head that has not arrived whole once 16 KiB of it are buffered, but a head
that arrives in one read (up to 256 KiB) is parsed whatever its size: whether a 100 KB
header was refused depended on how TCP cut it up. :class:`HeadLimit` makes it one rule:
a head over :data:`MAX_HEAD_BYTES` is answered ``431 Request Header Fields Too Large``
and its connection closed, before any route, auth or body reading.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

# h11's own bound on a head still arriving (its max_incomplete_event_size default).
MAX_HEAD_BYTES = 16 * 1024


def head_bytes(scope: Scope) -> int:
    """The head's size as sent, near enough: target, header names and values, separators."""
    target = len(scope.get("raw_path", b"")) + len(scope.get("query_string", b""))
    return target + sum(len(name) + len(value) + 4 for name, value in scope.get("headers", []))


class HeadLimit:
    """ASGI middleware: 431 for a request whose head is over ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_HEAD_BYTES):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        size = head_bytes(scope) if scope["type"] == "http" else 0
        if size <= self.max_bytes:
            await self.app(scope, receive, send)
            return
        body = orjson.dumps({"detail": f"request head is {size} bytes; the limit is {self.max_bytes}"})
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]  # fmt: skip
        await send({"type": "http.response.start", "status": 431, "headers": headers})
        await send({"type": "http.response.body", "body": body})
