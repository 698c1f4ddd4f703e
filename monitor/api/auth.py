"""Bearer-token auth for the API.

With no tokens configured every endpoint is open (a sidecar on loopback). With tokens,
every route needs ``Authorization: Bearer <token>`` except ``auth.open_paths``
(``/healthz``, ``/readyz``, ``/metrics`` by default), and ``auth.loopback_paths`` for clients
on the loopback interface (the TCP peer's address: uvicorn takes X-Forwarded-For only from
loopback peers): 401 when the header is missing or the token unknown, 403 when the token
lacks the route's scope. Tokens are compared with
``hmac.compare_digest`` against every configured token, so the time taken does not say
which token (or how much of one) matched.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request

from monitor.settings import AuthConfig

SCOPES = ("ingest", "admin", "read")


class TokenChecker:
    """Resolves a request's bearer token to its scopes."""

    def __init__(self, config: AuthConfig):
        self.enabled = bool(config.tokens)
        self.open_paths = frozenset(config.open_paths)
        self.loopback_paths = frozenset(config.loopback_paths)
        self._tokens = [(token.secret().encode(), frozenset(token.scopes)) for token in config.tokens]

    def scopes_for(self, header: str | None) -> frozenset[str] | None:
        """The scopes of the presented token, or None when it matches no token."""
        if not header or not header[:7].lower() == "bearer ":
            return None
        presented = header[7:].strip().encode()
        found: frozenset[str] | None = None
        for secret, scopes in self._tokens:
            # No early exit: every token is compared whatever matched before.
            if hmac.compare_digest(presented, secret):
                found = scopes
        return found

    def check(self, request: Request, scope: str) -> None:
        path = request.url.path
        if not self.enabled or path in self.open_paths:
            return
        if path in self.loopback_paths and request.client is not None and _is_loopback(request.client.host):
            return
        scopes = self.scopes_for(request.headers.get("authorization"))
        if scopes is None:
            raise HTTPException(
                401,
                "missing or unknown bearer token (send Authorization: Bearer <token>)",
                headers={"WWW-Authenticate": 'Bearer realm="monitor"'},
            )
        if scope not in scopes:
            raise HTTPException(
                403, f"this token may not {scope}: its scopes are {', '.join(sorted(scopes)) or 'none'}"
            )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # not an address (a Unix socket, a test client's name)
        return False


def require(scope: str) -> Callable[[Request], Awaitable[None]]:
    """A FastAPI dependency that enforces ``scope`` with the app's TokenChecker."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")

    # async: a plain def would be run in the thread pool on every request (~0.25 ms).
    async def dependency(request: Request) -> None:
        request.app.state.tokens.check(request, scope)

    return dependency
