"""Issue 17, item 8: /docs and /redoc render in a browser that can reach nothing but the
service (an air-gapped cluster): Swagger UI and Redoc come from the package, not a CDN."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from support import ServiceProcess, config


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    tmp_path = tmp_path_factory.mktemp("docs")
    process = ServiceProcess(tmp_path, config(tmp_path)).start(timeout=60)
    try:
        yield process
    finally:
        process.stop()


def offline_page(chromium: Any, service: ServiceProcess) -> tuple[Any, list[str], list[str]]:
    """A page whose every request outside the service fails, as in a cluster without internet."""
    context = chromium.new_context()
    allowed, refused = [], []
    here = urlsplit(service.url).netloc

    def route(request_route: Any) -> None:
        url = request_route.request.url
        if urlsplit(url).netloc == here:
            allowed.append(url)
            request_route.continue_()
        else:
            refused.append(url)
            request_route.abort()

    context.route("**/*", route)
    return context.new_page(), allowed, refused


def test_swagger_ui_renders_offline(chromium: Any, service: ServiceProcess) -> None:
    page, allowed, refused = offline_page(chromium, service)
    page.goto(f"{service.url}/docs")
    page.wait_for_selector(".opblock", timeout=60_000)  # an operation block: the spec was rendered
    assert page.locator(".opblock").count() == len(
        [op for path in httpx.get(f"{service.url}/openapi.json").json()["paths"].values() for op in path]
    )
    assert refused == []
    assert sorted({urlsplit(url).path for url in allowed}) == [
        "/docs", "/docs/assets/favicon.png", "/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css",
        "/openapi.json",
    ]  # fmt: skip
    page.context.close()


def test_redoc_renders_offline(chromium: Any, service: ServiceProcess) -> None:
    page, allowed, refused = offline_page(chromium, service)
    page.goto(f"{service.url}/redoc")
    page.wait_for_selector("h1", timeout=60_000)  # Redoc writes the API title once the spec is read
    title = httpx.get(f"{service.url}/openapi.json").json()["info"]["title"]
    assert page.locator("h1").first.inner_text().startswith(title)
    assert refused == []
    assert "/docs/assets/redoc.standalone.js" in {urlsplit(url).path for url in allowed}
    page.context.close()


def test_only_the_named_assets_are_served(service: ServiceProcess, tmp_path: Path) -> None:
    css = httpx.get(f"{service.url}/docs/assets/swagger-ui.css")
    assert (css.status_code, css.headers["content-type"].split(";")[0]) == (200, "text/css")
    for name in ("core.py", "..%2Fcore.py", "%2E%2E%2F__init__.py"):
        assert httpx.get(f"{service.url}/docs/assets/{name}").status_code == 404, name
