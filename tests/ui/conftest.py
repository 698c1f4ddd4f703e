"""Browser-test fixtures: Debian's Chromium driven by Playwright (no browser download), and a
real ``monitor serve`` fed the car-loan demo over HTTP, plus a model whose feature name is
an HTML injection attempt."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import yaml
from support import ServiceProcess, wait_for
from ui.browser_support import CHROMIUM, XSS, XSS_MODEL, Watched

from monitor.cli.demo import analysis_records, label_records, post_paced, write_config


# Per module, not per session: sync_playwright runs an event loop on this thread while it is
# open, and any later test in the same worker that calls asyncio.run() would fail.
@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `./dev test` installs Debian's chromium package")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def watched(chromium: Any) -> Iterator[Watched]:
    context = chromium.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    seen = Watched(page)
    page.on("request", lambda request: seen.requests.append(request.url))
    page.on("console", lambda message: seen.errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: seen.errors.append(str(error)))

    def dialog(d: Any) -> None:
        seen.dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", dialog)
    yield seen
    context.close()


def _xss_model() -> dict[str, Any]:
    return {
        "features": {XSS: {"type": "numeric"}, "plain": {"type": "categorical"}},
        "prediction": {"kind": "binary"},
        "reference": {"from_first_records": 200},
        "window": {"kind": "count", "size": 200},
    }


def _xss_records(start: int, n: int, shift: float) -> list[dict[str, Any]]:
    return [
        {"model": XSS_MODEL, "id": f"x{i}", "inputs": {XSS: (i % 50) + shift, "plain": ["a", "b"][i % 2]},
         "prediction": i % 2}
        for i in range(start, start + n)
    ]  # fmt: skip


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """The demo config (car_loan, 10 windows of 5,000) with the XSS model added, fed the whole
    analysis period and its labels; yields once every window is evaluated and stored."""
    tmp = tmp_path_factory.mktemp("ui")
    config = yaml.safe_load(write_config(tmp, 0).read_text())
    config["models"][XSS_MODEL] = _xss_model()
    config["server"]["evaluation"] = "thread"
    with ServiceProcess(tmp, config) as service, httpx.Client(base_url=service.url, timeout=60) as http:
        assert post_paced(http, analysis_records(), 0, "analysis") == 50_000
        assert post_paced(http, label_records(), 0, "labels") == 50_000
        assert post_paced(http, _xss_records(0, 200, 0.0) + _xss_records(200, 400, 30.0), 0, "xss") == 600

        def stored() -> bool:
            rows = http.get("/v1/models/car_loan/results", params={"kind": "dataset_drift"}).json()["results"]
            xss = http.get(f"/v1/models/{quote(XSS_MODEL, safe='')}/results", params={"kind": "dataset_drift"}).json()[
                "results"
            ]
            return len(rows) == 10 and len(xss) == 2

        wait_for(stored, 180, "10 car_loan windows and 2 xss windows stored")
        yield service
