"""The API's own documentation, behind the same auth as every other route.

FastAPI serves ``/openapi.json``, ``/docs`` and ``/redoc`` outside the app's dependencies,
so with tokens configured they would answer anyone. They are registered here instead, each
needing a ``read`` token unless ``auth.open_paths`` names it. (A browser sends no bearer
token: to browse ``/docs`` with auth on, list ``/docs`` and ``/openapi.json`` in
``auth.open_paths``, or read the spec with a token: ``curl -H "Authorization: Bearer ..."``.)

The pages load Swagger UI and Redoc from this service, never from a CDN, so they work in
an air-gapped cluster: the files come from the ``fastapi-offline`` package (MIT; it ships
Swagger UI's and Redoc's distribution builds and keeps them current), served under
``/docs/assets/`` without a token, as they are public library code that says nothing of
this service. Redoc's Google Fonts link is left out for the same reason.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from monitor.api.auth import require
from monitor.api.responses import JSONResponse

OPENAPI_URL = "/openapi.json"
ASSETS_URL = "/docs/assets"
ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
# The files served, by name (nothing else of the folder, whatever the path asks for).
ASSET_TYPES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
router = APIRouter(include_in_schema=False)
READ = [Depends(require("read"))]


@router.get(OPENAPI_URL, dependencies=READ)
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs", dependencies=READ)
async def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=OPENAPI_URL,
        title=f"{request.app.title} - API",
        swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
    )


@router.get("/redoc", dependencies=READ)
async def redoc(request: Request) -> HTMLResponse:
    page = get_redoc_html(
        openapi_url=OPENAPI_URL,
        title=f"{request.app.title} - API",
        redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
        with_google_fonts=False,
    )
    # Redoc's "powered by" logo is an image on cdn.redoc.ly: images from here only, so an
    # air-gapped browser makes no request that hangs or fails.
    page.headers["content-security-policy"] = "img-src 'self' data:"
    return page


@router.get(ASSETS_URL + "/{name}")  # no token: see the module docstring
async def asset(name: str) -> FileResponse:
    media_type = ASSET_TYPES.get(name)
    if media_type is None:
        raise HTTPException(404, f"no asset {name!r}; assets: {', '.join(ASSET_TYPES)}")
    # Immutable for a given package version: browsers may keep them a day.
    return FileResponse(ASSETS / name, media_type=media_type, headers={"cache-control": "public, max-age=86400"})
