"""A deadline for receiving each request, headers and body together.

uvicorn times out idle keep-alive connections but nothing else: its keep-alive timer is
reset by every byte received, so a client that trickles its headers, or stalls half-way
through a 16 MiB body, holds the connection (and what was read of the body) for as long as
it likes. ASGI middleware cannot help: the app only sees a request once its headers are
parsed. :class:`DeadlineH11Protocol` is uvicorn's h11 protocol with one timer per request:
armed by the request's first byte, disarmed once the whole request has arrived (a slow
*response*, or a slow app, is not the client's doing and is never cut). When it fires, a
client still sending gets ``408 Request Timeout`` if no response has started, and the
connection is closed either way; each is counted in
``monitor_http_requests_refused_total{cause="request_timeout"}``.

``monitor serve`` hands this class to uvicorn (``http=``); the deadline and the counter
are set in each worker process when its app is built (:func:`configure`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
)


@dataclass
class _Deadline:
    seconds: float = 30.0
    on_timeout: Callable[[], None] | None = None


_DEADLINE = _Deadline()  # this process's (one app per uvicorn worker): see configure()


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on receiving each request (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._request_deadline: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._receiving():
            if self._request_deadline is None:  # the first bytes of a request
                self._request_deadline = self.loop.call_later(_DEADLINE.seconds, self._request_timed_out)
        else:
            self._disarm()
            self._keep_idle_connections_timed()
        cycle = getattr(self, "cycle", None)
        if cycle is not None and cycle.keep_alive and _length_twice_framed(cycle.scope["headers"]):
            # RFC 9112 6.3: Transfer-Encoding wins over Content-Length, but such a request may be
            # an attempt at request smuggling, and the connection MUST be closed after answering.
            cycle.keep_alive = False

    def _keep_idle_connections_timed(self) -> None:
        """uvicorn cancels the keep-alive timer on every byte received and re-arms it only when
        a response completes: when the rest of a body arrives after an early answer (a 413),
        the connection goes idle with no timer at all and stays open for as long as the client
        likes. Arm it again whenever the connection is idle between requests."""
        conn = self.conn
        if (
            self.timeout_keep_alive_task is None
            and conn.our_state is h11.IDLE
            and conn.their_state is h11.IDLE
            and not self.transport.is_closing()
        ):
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _receiving(self) -> bool:
        """Part of a request has arrived, not all of it: its body is coming, or its head is
        still in h11's buffer (no Request parsed from it yet)."""
        state = self.conn.their_state
        return state is h11.SEND_BODY or (state is h11.IDLE and bool(self.conn.trailing_data[0]))

    def _disarm(self) -> None:
        if self._request_deadline is not None:
            self._request_deadline.cancel()
            self._request_deadline = None

    def _request_timed_out(self) -> None:
        self._request_deadline = None
        if self.transport.is_closing() or not self._receiving():
            return
        if _DEADLINE.on_timeout is not None:
            _DEADLINE.on_timeout()
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        log.warning("%s did not send its request within %g s: closing the connection", client, _DEADLINE.seconds)
        head_only = self.conn.their_state is h11.IDLE  # the app never saw this request
        if head_only or not self.cycle.response_started:
            self.transport.write(_TIMEOUT_RESPONSE)
        if not head_only:
            self.cycle.disconnected = True
            self.cycle.message_event.set()  # the app, waiting for more body, sees the disconnect
        self.transport.close()


def _length_twice_framed(headers: list[tuple[bytes, bytes]]) -> bool:
    names = {name for name, _ in headers}
    return b"transfer-encoding" in names and b"content-length" in names


def configure(request_timeout_seconds: float, on_timeout: Callable[[], None] | None) -> None:
    """This process's deadline and the counter of timed-out requests (one app per worker)."""
    _DEADLINE.seconds = request_timeout_seconds
    _DEADLINE.on_timeout = on_timeout
