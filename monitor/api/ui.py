"""The web page: read-only views of the store, drawn on the server (no script).

GET /                          redirect to /ui
GET /ui                        models overview
GET /ui/model?model=M&windows=N             heatmap of features x windows, charts over windows
GET /ui/feature?model=M&feature=F&window=W  reference vs window distribution, statistics over windows
    (&segment=region:eu: that slice's windows)
GET /ui/alerts?model=M          firing and recent alerts, transitions, webhook deliveries
GET /ui/segments?model=M        segment x feature: each slice's latest window (monitor.report.segments)
GET /ui/versions?model=M        version x feature: each model version's latest window (monitor.report.versions)
GET /ui/login, POST /ui/login, GET /ui/logout   signing in from a browser (monitor.api.ui_auth)
GET /v1/models/{model}/report.html?windows=N    the self-contained report (a download)

Every page needs the ``read`` scope when auth is on. Model, feature and window travel in
the query string, so a page's URL can be pasted into an incident channel.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from monitor.api.results import parse_segment
from monitor.api.ui_auth import COOKIE, SignIn, html, login_form, page_access, safe_next, sign_in_redirect
from monitor.report.links import Links
from monitor.report.overview import overview_rows
from monitor.report.pages import alerts_page, document, feature_page, login_page, model_page, overview_page
from monitor.report.report import report_html
from monitor.report.segments import latest_segment_rows, segments_page
from monitor.report.svg import esc
from monitor.report.versions import latest_version_rows, versions_page
from monitor.report.view import DEFAULT_WINDOWS, MAX_WINDOWS, load_view

router = APIRouter(include_in_schema=False)
LINKS = Links()
MAX_NAME = 256
Windows = Annotated[int, Query(ge=1, le=MAX_WINDOWS)]
Name = Annotated[str, Query(min_length=1, max_length=MAX_NAME)]


def _models(request: Request) -> list[str]:
    return sorted(getattr(request.app.state.pipeline, "configs", {}))


def _known(request: Request, model: str) -> None:
    if model not in _models(request):
        raise HTTPException(404, f"unknown model {model!r}")


def _not_found(message: str, signed_in: bool) -> HTMLResponse:
    body = f'<h1>Not found</h1><p>{esc(message)}</p><p><a href="{esc(LINKS.overview())}">Models</a></p>'
    return html(document("Not found - model monitor", body, LINKS, signed_in=signed_in), 404)


async def _page(request: Request, render: Any) -> Response:
    """Runs ``render(signed_in)`` in a thread (it reads the store) behind the page access check."""
    try:
        signed_in = page_access(request)
    except SignIn as exc:
        return sign_in_redirect(exc, LINKS)
    try:
        return html(await asyncio.to_thread(render, signed_in))
    except LookupError as exc:
        return _not_found(str(exc.args[0]) if exc.args else "not found", signed_in)


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse(LINKS.overview(), status_code=307)


@router.get("/ui")
async def overview(request: Request) -> Response:
    store, models = request.app.state.store, _models(request)
    return await _page(request, lambda s: _overview(store, models, s))


def _overview(store: Any, models: list[str], signed_in: bool) -> str:
    return overview_page(overview_rows(store, models, time.time()), LINKS, signed_in=signed_in)


@router.get("/ui/model")
async def model(request: Request, model: Name, windows: Windows = DEFAULT_WINDOWS) -> Response:
    store, known = request.app.state.store, model in _models(request)

    def render(signed_in: bool) -> str:
        if not known:
            raise LookupError(f"unknown model {model!r}")
        return model_page(load_view(store, model, windows=windows), LINKS, signed_in=signed_in)

    return await _page(request, render)


@router.get("/ui/feature")
async def feature(
    request: Request, model: Name, feature: Name, window: Annotated[int | None, Query(ge=0)] = None,
    windows: Windows = DEFAULT_WINDOWS, segment: Annotated[str | None, Query(max_length=4096)] = None,
) -> Response:  # fmt: skip
    store, known = request.app.state.store, model in _models(request)
    tag = parse_segment(segment)  # '' the whole population; 422 naming it when not 'key:value'

    def render(signed_in: bool) -> str:
        if not known:
            raise LookupError(f"unknown model {model!r}")
        view = load_view(store, model, windows=windows, feature=feature, histograms=True, quality=True, segment=tag)
        latest = view.latest
        if tag and latest is None:
            raise LookupError(f"model {model!r} has no evaluated window of segment {tag!r}")
        # The window asked for is shown even when older than those drawn: centre the view on it.
        if window is not None and latest is not None and view.window(window) is None and window <= latest.seq:
            view = load_view(store, model, windows=min(MAX_WINDOWS, max(windows, latest.seq - window + 1)), feature=feature,
                             histograms=True, quality=True, segment=tag)  # fmt: skip
        if feature not in view.features:
            raise LookupError(f"model {model!r} has no evaluated feature {feature!r}")
        seq = window if window is not None else (latest.seq if latest else 0)
        if view.window(seq) is None:
            raise LookupError(
                f"model {model!r} has no window {seq} in the store" + (f" for segment {tag!r}" if tag else "")
            )
        return feature_page(view, feature, seq, LINKS, signed_in=signed_in)

    return await _page(request, render)


@router.get("/ui/segments")
async def segments(request: Request, model: Name) -> Response:
    return await _slices_page(request, model, latest_segment_rows, segments_page)


@router.get("/ui/versions")
async def versions(request: Request, model: Name) -> Response:
    return await _slices_page(request, model, latest_version_rows, versions_page)


async def _slices_page(
    request: Request, model: str, latest_rows: Callable[[Any, str], Any], page: Callable[..., str]
) -> Response:
    """A model's page of its slices (segments or versions): each one's latest window."""
    store, configs = request.app.state.store, getattr(request.app.state.pipeline, "configs", {})

    def render(signed_in: bool) -> str:
        if model not in configs:
            raise LookupError(f"unknown model {model!r}")
        return page(model, latest_rows(store, model), configs[model].feature_names, LINKS, signed_in=signed_in)

    return await _page(request, render)


@router.get("/ui/alerts")
async def alerts(request: Request, model: Annotated[str | None, Query(max_length=MAX_NAME)] = None) -> Response:
    store = request.app.state.store

    def render(signed_in: bool) -> str:
        rows = store.alerts(model=model, limit=200)
        transitions = {a["alert_id"]: store.alert_transitions(a["alert_id"]) for a in rows}
        deliveries = [d for d in store.webhook_deliveries(limit=200) if model is None or d["model"] == model]
        return alerts_page(rows, transitions, deliveries, LINKS, model=model, signed_in=signed_in)

    return await _page(request, render)


@router.get("/ui/login")
async def login(request: Request, next: str | None = Query(None, max_length=2048)) -> HTMLResponse:
    return html(login_page(LINKS, next_url=safe_next(next, LINKS)))


@router.post("/ui/login")
async def login_post(request: Request) -> Response:
    return await login_form(request, LINKS)


@router.get("/ui/logout")
async def logout() -> RedirectResponse:
    response = RedirectResponse(f"{LINKS.root}/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/v1/models/{model}/report.html")
async def report(
    request: Request, model: Annotated[str, Path(min_length=1, max_length=MAX_NAME)], windows: Windows = DEFAULT_WINDOWS
) -> Response:
    try:
        page_access(request)
    except SignIn as exc:
        return sign_in_redirect(exc, LINKS)
    _known(request, model)
    store = request.app.state.store

    def render() -> str:
        return report_html(
            load_view(store, model, windows=windows, histograms=True, quality=True), source=f"model {model}"
        )

    content = await asyncio.to_thread(render)
    disposition = {"content-disposition": 'attachment; filename="report.html"'}
    return HTMLResponse(
        content, headers={**disposition, "x-content-type-options": "nosniff", "cache-control": "no-store"}
    )
