"""The API's own documentation, behind the same auth as every other route.

FastAPI serves ``/openapi.json``, ``/docs`` and ``/redoc`` outside the app's dependencies,
so with tokens configured they would answer anyone. They are registered here instead, each
needing a ``read`` token unless ``auth.open_paths`` names it. (A browser sends no bearer
token: to browse ``/docs`` with auth on, list ``/docs`` and ``/openapi.json`` in
``auth.open_paths``, or read the spec with a token: ``curl -H "Authorization: Bearer ..."``.)
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

from monitor.api.auth import require
from monitor.api.responses import JSONResponse

OPENAPI_URL = "/openapi.json"
router = APIRouter(include_in_schema=False, dependencies=[Depends(require("read"))])


@router.get(OPENAPI_URL)
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url=OPENAPI_URL, title=f"{request.app.title} - API")


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(openapi_url=OPENAPI_URL, title=f"{request.app.title} - API")
