"""One HTTP attempt of a webhook delivery: the signed request, ONE deadline for all of it, and
a capped read of the answer.

The deadline is the webhook's ``timeout_seconds`` and covers connecting, sending the body,
and reading the status line, the headers and the (capped) body together. httpx's own
timeouts are per operation: a receiver that sends one byte every half second never trips a
read timeout and held the dispatcher for as long as it liked. Here the attempt runs under
:func:`asyncio.timeout`, which cancels whatever it is waiting on, so the attempt ends at the
deadline whatever the receiver does (trickling headers or body, stalling after the status
line), and the connection is closed.

Only :data:`MAX_ANSWER_BYTES` of the answer's body are kept (the error message stores 200
characters of it); the rest is never read: the connection is closed instead, so a 200 MB
error page costs at most one network read (httpcore reads up to 64 KiB at a time), not
200 MB of memory. The body is read raw and ``Accept-Encoding: identity`` is asked for, so a
small compressed answer cannot inflate either.

A 2xx status is the receiver's acceptance: once it has come, the attempt is delivered even
if the rest of the answer is cut by the deadline.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx

from alerts.webhooks import WebhookConfig, WebhookEnvError, expand_headers, secret, signature

MAX_ANSWER_BYTES = 4096  # of the answer's body, kept for the error message
MAX_ERROR = 500  # characters of an error stored with the attempt
MAX_ERROR_BODY = 200  # characters of the answer's body in that error


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt got: ``status`` None when no status line came before the deadline or
    the connection failed; ``error`` None when it was delivered (2xx)."""

    status: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def request_headers(webhook: WebhookConfig, row: dict[str, Any], timestamp: int) -> dict[str, str]:
    """The headers of one attempt (raises :class:`WebhookEnvError` when a variable is unset)."""
    headers = {"Accept-Encoding": "identity", **expand_headers(webhook)}
    headers.update(
        {"Content-Type": "application/json", "Idempotency-Key": row["idempotency_key"],
         "X-Monitor-Delivery": str(row["id"]), "X-Monitor-Timestamp": str(timestamp)}
    )  # fmt: skip
    key = secret(webhook)
    if key is not None:
        headers["X-Monitor-Signature"] = signature(key, timestamp, bytes(row["body"]))
    return headers


async def post(client: httpx.AsyncClient, webhook: WebhookConfig, row: dict[str, Any], timestamp: int) -> AttemptResult:
    """POST ``row``'s body to ``webhook`` once, within ``webhook.timeout_seconds`` in all."""
    try:
        headers = request_headers(webhook, row, timestamp)
    except WebhookEnvError as exc:  # names the variable, never a value
        return AttemptResult(None, str(exc))
    status: int | None = None
    answer = bytearray()
    cut = ""
    try:
        async with asyncio.timeout(webhook.timeout_seconds):
            async with client.stream("POST", webhook.url, content=bytes(row["body"]), headers=headers) as response:
                status = response.status_code
                async for chunk in response.aiter_raw():
                    answer += chunk
                    if len(answer) >= MAX_ANSWER_BYTES:
                        break  # leaving the block closes the connection: the rest is never read
    except TimeoutError:
        if status is None:
            return AttemptResult(None, _deadline(webhook, "no response"))
        cut = f" [{_deadline(webhook, 'body not finished')}]"
    except httpx.HTTPError as exc:
        # The exception text, not the URL: the URL may carry a token.
        if status is None:
            return AttemptResult(None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR])
        cut = f" [answer cut: {type(exc).__name__}]"
    result = AttemptResult(status, None)
    if not result.delivered:
        text = bytes(answer[:MAX_ANSWER_BYTES]).decode("utf-8", "replace")[:MAX_ERROR_BODY]
        result = AttemptResult(status, f"HTTP {status}: {text}{cut}"[:MAX_ERROR])
    return result


def _deadline(webhook: WebhookConfig, what: str) -> str:
    return (
        f"DeadlineExceeded: {what} within timeout_seconds={webhook.timeout_seconds:g} "
        "(one deadline for connect, send and read)"
    )
