"""The segment and version views in Debian's Chromium against a real ``monitor serve``: a
model with ``segments: [region]`` and ``versions:``, whose region ``eu`` is all version 2
and shifted on ``a`` by one reference SD, and region ``us`` all version 1 and unshifted.
The versions view (linked from the model page) flags ``a`` for version 2 only; a click on
the segment view's ``eu`` x ``a`` cell opens ``/ui/feature?...&segment=region:eu``, the
feature page of that slice's window, named in the title, with the slice's statistics and
histograms, as does a segment's alert on the alerts page; no console error, no request
anywhere but the service."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import numpy as np
import pandas as pd
import pytest
from support import ServiceProcess, config, wait_for
from ui.browser_support import Watched

from monitor.report.svg import num

WINDOW = 1_000
PER_REGION = 2 * WINDOW  # two windows of each slice and version, four of the whole population
RULES = [{"name": "regions", "kind": "feature_drift", "segments": ["region:*"]}]


def _frame(rng: np.random.Generator, region: str, n: int, shift: float) -> pd.DataFrame:
    x = rng.normal(0.0, 1.0, size=(n, 2))
    x[:, 0] += shift
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "prediction": x[:, 0] / 2, "region": region})


def _records(eu: pd.DataFrame, us: pd.DataFrame) -> list[dict]:
    out = []
    for i in range(len(eu)):  # interleaved: each whole-population window holds both regions alike
        for region, version, row in (("eu", "2", eu.iloc[i]), ("us", "1", us.iloc[i])):
            out.append({"model": "shop", "id": f"{region}{i}", "version": version, "timestamp": 1.7e9 + len(out),
                        "inputs": {"a": float(row["a"]), "b": float(row["b"])}, "prediction": float(row["prediction"]),
                        "segment": {"region": region}})  # fmt: skip
    return out


@pytest.fixture(scope="module")
def sliced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    tmp = tmp_path_factory.mktemp("slices")
    rng = np.random.default_rng(7)
    reference = tmp / "reference.csv"
    pd.concat([_frame(rng, "eu", 2_500, 0.0), _frame(rng, "us", 2_500, 0.0)]).to_csv(reference, index=False)
    model = {
        "features": {"a": {"type": "numeric"}, "b": {"type": "numeric"}},
        "prediction": {"kind": "regression"},
        "reference": {"file": str(reference)},
        "window": {"size": WINDOW, "sample_size": WINDOW},
        "segments": {"keys": ["region"], "max_values": 2, "min_reference_rows": 500},
        "versions": {"max_active": 2},
    }
    with (
        ServiceProcess(tmp, config(tmp, models={"shop": model}, alerts={"rules": RULES})) as service,
        httpx.Client(base_url=service.url, timeout=60) as http,
    ):
        body = _records(_frame(rng, "eu", PER_REGION, 1.0), _frame(rng, "us", PER_REGION, 0.0))
        assert http.post("/v1/records", json=body).json()["accepted"] == 2 * PER_REGION

        def stored() -> bool:
            counts = [
                len(http.get("/v1/models/shop/results", params={"kind": "dataset_drift", **q}).json()["results"])
                for q in ({}, {"segment": "region:eu"}, {"segment": "region:us"}, {"version": "1"}, {"version": "2"})
            ]
            return counts == [4, 2, 2, 2, 2]

        wait_for(stored, 120, "every whole, slice and version window stored")
        yield service


def _only_the_service(watched: Watched, service: ServiceProcess) -> None:
    assert watched.requests, "the page made no request at all"
    assert [url for url in watched.requests if not url.startswith(service.url + "/")] == []
    assert watched.errors == []


def test_the_versions_view_flags_the_shifted_version_only(sliced: ServiceProcess, watched: Watched) -> None:
    page = watched.page
    page.goto(f"{sliced.url}/ui/model?model=shop")
    page.locator("a", has_text="Versions").click()
    page.wait_for_url("**/ui/versions?**")
    assert page.url == f"{sliced.url}/ui/versions?model=shop"
    assert page.locator("h1 .model-name").inner_text() == "shop"
    head = page.locator("table.versions th").all_inner_texts()
    assert head == ["version", "reference", "window", "records", "ended", "drifted", "a", "b"]
    rows = {}
    for row in page.locator("table.versions tbody tr").all():
        cells = row.locator("td")
        rows[cells.nth(0).inner_text()] = (
            cells.nth(2).inner_text(), cells.nth(3).inner_text(),
            [cells.nth(i).locator("span.drift").count() for i in (6, 7)],
        )  # fmt: skip
    assert rows == {"2": ("1", str(WINDOW), [1, 0]), "1": ("1", str(WINDOW), [0, 0])}
    stored = httpx.get(f"{sliced.url}/v1/models/shop/results",
                       params={"version": "2", "kind": "feature_drift", "feature": "a", "since_seq": 1}).json()  # fmt: skip
    effect = next(r for r in stored["results"] if r["detail"]["role"] == "effect")
    version_2 = page.locator("table.versions tbody tr", has=page.locator("td:first-child", has_text="2"))
    assert version_2.locator("td").nth(6).inner_text() == num(effect["statistic"])
    _only_the_service(watched, sliced)


def test_a_segment_cell_opens_the_feature_page_of_that_slice(sliced: ServiceProcess, watched: Watched) -> None:
    page = watched.page
    page.goto(f"{sliced.url}/ui/segments?model=shop")
    eu = page.locator("table.segments tbody tr", has=page.locator("td:first-child", has_text="region:eu"))
    assert eu.locator("td").nth(3).locator("span.drift").count() == 1  # a drifted in eu
    eu.locator("td").nth(3).locator("a").click()
    page.wait_for_url("**/ui/feature?**")
    query = urlencode({"model": "shop", "feature": "a", "window": 1, "segment": "region:eu"})
    assert page.url == f"{sliced.url}/ui/feature?{query}"
    assert page.title() == "a - shop region:eu - model monitor"
    assert page.locator("h1 .feature-name").inner_text() == "a"
    assert page.locator("h1 a.segment").inner_text() == "region:eu"
    assert page.locator("h1 .window").inner_text() == "1"
    # The slice's own statistics and histograms (its reference slice's 10 bins), not the whole population's.
    stored = httpx.get(f"{sliced.url}/v1/models/shop/results",
                       params={"segment": "region:eu", "kind": "feature_drift", "feature": "a", "since_seq": 1}).json()  # fmt: skip
    ks = next(r for r in stored["results"] if r["method"] == "ks")
    effect = next(r for r in stored["results"] if r["detail"]["role"] == "effect")
    assert page.locator("table.stats .statistic").inner_text() == num(ks["statistic"], 4)
    assert page.locator("table.stats .effect").inner_text() == num(effect["statistic"], 4)
    assert "DRIFT" in page.locator("table.stats").inner_text()
    assert page.locator("svg.distribution rect.bar.reference").count() == 10
    assert page.locator("svg.distribution rect.bar.window").count() == 10
    page.locator("a[rel=prev]").click()  # the steps stay in the slice's windows
    assert (
        page.url
        == f"{sliced.url}/ui/feature?{urlencode({'model': 'shop', 'feature': 'a', 'window': 0, 'segment': 'region:eu'})}"
    )
    assert page.locator("h1 a.segment").inner_text() == "region:eu"
    _only_the_service(watched, sliced)


def test_a_segment_alert_opens_its_slices_feature_page(sliced: ServiceProcess, watched: Watched) -> None:
    page = watched.page
    page.goto(f"{sliced.url}/ui/alerts?model=shop")
    link = page.locator("table.alerts a", has_text="a@region:eu")
    assert link.count() == 1 and page.locator("table.alerts a", has_text="@region:us").count() == 0
    link.click()
    page.wait_for_url("**/ui/feature?**")
    # The window the alert fired in: the slice's first.
    query = urlencode({"model": "shop", "feature": "a", "window": 0, "segment": "region:eu"})
    assert page.url == f"{sliced.url}/ui/feature?{query}"
    assert page.locator("h1 a.segment").inner_text() == "region:eu"
    _only_the_service(watched, sliced)


def test_an_unknown_or_malformed_segment_is_refused_naming_it(sliced: ServiceProcess) -> None:
    missing = httpx.get(f"{sliced.url}/ui/feature", params={"model": "shop", "feature": "a", "segment": "region:mars"})
    assert missing.status_code == 404
    assert "has no evaluated window of segment &#x27;region:mars&#x27;" in missing.text
    bad = httpx.get(f"{sliced.url}/ui/feature", params={"model": "shop", "feature": "a", "segment": "region"})
    assert bad.status_code == 422 and "a segment is 'key:value'" in bad.text
    page = httpx.get(f"{sliced.url}/ui/versions", params={"model": "nope"})
    assert page.status_code == 404 and "unknown model &#x27;nope&#x27;" in page.text
