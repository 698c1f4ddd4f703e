"""The web page in Debian's Chromium against a real ``monitor serve`` fed the car-loan demo:
the overview, the heatmap (one cell per feature and window, exactly the four drifting
features flagged in windows 5-9), the feature page a click on car_value in window 7 opens,
the alerts page; no console error, no request anywhere but the service, no script from a
feature name; and signing in from a browser with auth on."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import httpx
from support import ServiceProcess, config
from ui.browser_support import DRIFTING, XSS, XSS_MODEL, Watched, save_screenshot

from monitor.report.svg import num

FEATURES = ["car_value", "salary_range", "debt_to_income_ratio", "loan_length", "repaid_loan_on_prev_car",
            "size_of_downpayment", "driver_tenure"]  # fmt: skip


def _only_the_service(watched: Watched, service: ServiceProcess) -> None:
    assert watched.requests, "the page made no request at all"
    assert [url for url in watched.requests if not url.startswith(service.url + "/")] == []
    assert watched.errors == []


def test_the_overview_lists_the_model_and_the_root_redirects_to_it(demo: ServiceProcess, watched: Watched) -> None:
    page = watched.page
    page.goto(demo.url + "/")
    assert page.url == f"{demo.url}/ui"
    names = page.locator("table.models a.model").all_inner_texts()
    assert sorted(names) == sorted(["car_loan", XSS_MODEL])
    row = page.locator("table.models tr", has=page.locator("a.model", has_text="car_loan"))
    # The latest window (9) drifted on the four drifting features; the reference is version 1.
    cells = row.locator("td").all_inner_texts()
    assert cells[1] == "1" and cells[3] == "9"
    assert set(cells[4].split(", ")) == DRIFTING
    save_screenshot(page, "ui-overview.png")
    _only_the_service(watched, demo)


def test_the_heatmap_has_a_cell_per_feature_and_window_and_flags_the_drift(
    demo: ServiceProcess, watched: Watched
) -> None:
    page = watched.page
    page.goto(f"{demo.url}/ui/model?{urlencode({'model': 'car_loan'})}")
    cells = page.locator("svg.heatmap rect.cell")
    assert cells.count() == 7 * 10
    drawn = {(c.get_attribute("data-feature"), int(c.get_attribute("data-window") or -1)) for c in cells.all()}
    assert drawn == {(f, w) for f in FEATURES for w in range(10)}
    flagged = page.locator("svg.heatmap rect.cell.flagged").all()
    marked = {(c.get_attribute("data-feature"), int(c.get_attribute("data-window") or -1)) for c in flagged}
    assert marked == {(f, w) for f in DRIFTING for w in range(5, 10)}
    assert page.locator("svg.chart").count() >= 3 + 1  # drift share, prediction, latency, performance metrics
    save_screenshot(page, "ui-model.png")
    _only_the_service(watched, demo)


def test_a_click_on_car_value_in_window_7_shows_both_distributions(demo: ServiceProcess, watched: Watched) -> None:
    page = watched.page
    page.goto(f"{demo.url}/ui/model?model=car_loan")
    page.locator('svg.heatmap rect.cell[data-feature="car_value"][data-window="7"]').click()
    page.wait_for_url("**/ui/feature?**")
    assert page.url == f"{demo.url}/ui/feature?model=car_loan&feature=car_value&window=7"
    assert page.locator("h1 .feature-name").inner_text() == "car_value"
    assert page.locator("h1 .window").inner_text() == "7"
    # The reference's 10 quantile bins, each with the reference's and the window's bar.
    assert page.locator("svg.distribution rect.bar.reference").count() == 10
    assert page.locator("svg.distribution rect.bar.window").count() == 10
    stored = httpx.get(f"{demo.url}/v1/models/car_loan/results",
                       params={"kind": "feature_drift", "feature": "car_value", "since_seq": 7}).json()["results"]  # fmt: skip
    ks = next(r for r in stored if r["window_seq"] == 7 and r["method"] == "ks")
    effect = next(r for r in stored if r["window_seq"] == 7 and r["detail"]["role"] == "effect")
    assert page.locator("table.stats .statistic").inner_text() == num(ks["statistic"], 4)
    assert page.locator("table.stats .effect").inner_text() == num(effect["statistic"], 4)
    assert "DRIFT" in page.locator("table.stats").inner_text()
    assert page.locator("table.quality tr").count() >= 2
    save_screenshot(page, "ui-feature.png")
    page.locator("a[rel=prev]").click()
    assert page.url.endswith("window=6")
    _only_the_service(watched, demo)


def test_the_alerts_page_shows_the_firing_alerts_with_links(demo: ServiceProcess, watched: Watched) -> None:
    page = watched.page
    page.goto(f"{demo.url}/ui/alerts?model=car_loan")
    firing = httpx.get(f"{demo.url}/v1/alerts", params={"state": "firing", "model": "car_loan"}).json()["alerts"]
    assert firing, "the demo fires alerts"
    assert page.locator("table.alerts span.firing").count() == len(firing)
    link = page.locator("table.alerts a", has_text="car_value").first
    assert "feature=car_value" in (link.get_attribute("href") or "")
    _only_the_service(watched, demo)


def test_a_feature_named_like_html_is_shown_as_text(demo: ServiceProcess, watched: Watched) -> None:
    page = watched.page
    page.goto(f"{demo.url}/ui/model?{urlencode({'model': XSS_MODEL})}")
    assert page.locator("h1 .model-name").inner_text() == XSS_MODEL
    assert page.locator("svg.heatmap rect.cell").count() == 2 * 2
    assert page.locator(f'svg.heatmap rect.cell[data-feature="{XSS}"]').count() == 2
    page.locator(f'svg.heatmap rect.cell[data-feature="{XSS}"][data-window="1"]').click()
    page.wait_for_url("**/ui/feature?**")
    assert page.locator("h1 .feature-name").inner_text() == XSS
    page.goto(f"{demo.url}/ui")
    assert page.locator("img").count() == 0 and page.locator("i").count() == 0
    assert watched.dialogs == []
    _only_the_service(watched, demo)


def test_unknown_names_are_a_404_page_naming_them(demo: ServiceProcess) -> None:
    answer = httpx.get(f"{demo.url}/ui/feature", params={"model": "car_loan", "feature": "<nope>"})
    assert answer.status_code == 404
    assert "has no evaluated feature &#x27;&lt;nope&gt;&#x27;" in answer.text
    answer = httpx.get(f"{demo.url}/ui/model", params={"model": "car_loan", "windows": 0})
    assert answer.status_code == 422 and "windows" in answer.json()["detail"]


def test_signing_in_from_a_browser(tmp_path: Path, watched: Watched) -> None:
    tokens = {"tokens": [{"name": "oncall", "token": "read-secret", "scopes": ["read"]},
                         {"name": "feeder", "token": "ingest-secret", "scopes": ["ingest"]}]}  # fmt: skip
    with ServiceProcess(tmp_path, config(tmp_path, auth=tokens)) as service:
        assert httpx.get(f"{service.url}/ui/model?model=car_loan").status_code == 303
        assert httpx.get(f"{service.url}/ui", headers={"authorization": "Bearer read-secret"}).status_code == 200
        assert httpx.get(f"{service.url}/ui", headers={"authorization": "Bearer nope"}).status_code == 401
        page = watched.page
        page.goto(f"{service.url}/ui/model?model=car_loan")
        assert page.url == f"{service.url}/ui/login?{urlencode({'next': '/ui/model?model=car_loan'})}"
        page.fill("input[name=token]", "ingest-secret")
        page.click("button[type=submit]")
        assert "no read scope" in page.locator("main").inner_text()
        page.fill("input[name=token]", "read-secret")
        page.click("button[type=submit]")
        page.wait_for_url(f"{service.url}/ui/model?model=car_loan")
        assert page.locator("h1 .model-name").inner_text() == "car_loan"
        cookie = next(c for c in page.context.cookies() if c["name"] == "monitor_token")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        page.click("text=Sign out")
        page.goto(f"{service.url}/ui")
        assert "/ui/login" in page.url
        # A redirect after signing in never leaves the service.
        evil = httpx.post(f"{service.url}/ui/login", data={"token": "read-secret", "next": "//evil.example/"})
        assert evil.status_code == 303 and evil.headers["location"] == "/ui"
