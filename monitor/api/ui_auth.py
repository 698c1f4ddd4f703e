"""Signing in to the web page from a browser.

A browser cannot send ``Authorization: Bearer`` on a link it follows, so with auth on the
pages also take the token from an HttpOnly, SameSite=Strict cookie set by the sign-in form
(``/ui/login``): the same tokens, the same ``read`` scope. A request that carries the header
is judged on it alone (scripts and the report download keep working as before); one with
neither is sent to the form, and back to the page it asked for once signed in.
"""

from __future__ import annotations

from urllib.parse import parse_qs, quote, unquote, urlencode

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from monitor.api.auth import TokenChecker
from monitor.report.links import Links
from monitor.report.pages import login_page

COOKIE = "monitor_token"
MAX_FORM_BYTES = 8 * 1024  # a token and a path
# No script runs and nothing is fetched from elsewhere: styles are inline, forms post here.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


class SignIn(Exception):
    """The request needs a signed-in browser: answered by a redirect to the form."""

    def __init__(self, next_url: str):
        self.next_url = next_url


def page_access(request: Request) -> bool:
    """Checks the request may read; True when it was let in by the sign-in cookie (the page
    then offers to sign out). Raises :class:`SignIn` or a 401/403 HTTPException."""
    tokens: TokenChecker = request.app.state.tokens
    if not tokens.enabled or request.headers.get("authorization"):
        tokens.check(request, "read")
        return False
    cookie = request.cookies.get(COOKIE)
    if cookie is None:
        if request.url.path in tokens.open_paths:
            return False
        raise SignIn(_here(request))
    scopes = tokens.scopes_for(f"Bearer {unquote(cookie)}")
    if scopes is None:
        raise SignIn(_here(request))
    if "read" not in scopes:
        raise HTTPException(403, f"this token may not read: its scopes are {', '.join(sorted(scopes)) or 'none'}")
    return True


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def safe_next(value: str | None, links: Links) -> str:
    """A local path to go back to after signing in (never another site)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return links.overview()
    return value


def sign_in_redirect(exc: SignIn, links: Links) -> RedirectResponse:
    return RedirectResponse(f"{links.root}/login?{urlencode({'next': exc.next_url})}", status_code=303)


def html(content: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(content, status_code=status_code, headers=SECURITY_HEADERS)


async def login_form(request: Request, links: Links) -> HTMLResponse | RedirectResponse:
    """POST /ui/login: check the token, set the cookie, go back where the reader was."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return html(login_page(links, next_url=links.overview(), error="The form is too large."), 413)
    form = parse_qs(body.decode("utf-8", "replace"), max_num_fields=4)
    token = (form.get("token") or [""])[0].strip()
    next_url = safe_next((form.get("next") or [""])[0], links)
    tokens: TokenChecker = request.app.state.tokens
    scopes = tokens.scopes_for(f"Bearer {token}") if token else None
    if scopes is None or "read" not in scopes:
        problem = "Unknown token." if scopes is None else "This token has no read scope."
        return html(login_page(links, next_url=next_url, error=problem), 401 if scopes is None else 403)
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(
        COOKIE, quote(token, safe=""), httponly=True, samesite="strict", path="/",
        secure=request.url.scheme == "https",
    )  # fmt: skip
    return response
