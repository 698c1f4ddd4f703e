"""Estimated performance beside realized on the model page, in Debian's Chromium, against the
car-loan demo (CBPE fitted on the labelled reference; the 50,000 analysis records, then
their labels): per metric a chart with the estimate, its band and the realized line, both
drawn over the same time span, the estimate's points where the API's rows say."""

from __future__ import annotations

from urllib.parse import urlencode

import httpx
from support import ServiceProcess, wait_for
from ui.browser_support import Watched, save_screenshot

CBPE_METRICS = ["roc_auc", "accuracy", "precision", "recall", "f1"]


def _points(polyline: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in (p.split(",") for p in polyline.split())]


def test_the_model_page_draws_estimated_performance_with_its_band_beside_realized(
    demo: ServiceProcess, watched: Watched
) -> None:
    def rows(kind: str) -> list[dict] | None:
        found = httpx.get(f"{demo.url}/v1/models/car_loan/results", params={"kind": kind, "limit": 1_000}, timeout=30)
        results = found.json()["results"]
        return results if results else None

    estimated = wait_for(lambda: (r := rows("estimated_performance")) and len(r) == 10 * 5 and r, 120, "estimates")
    realized = wait_for(lambda: rows("performance"), 120, "realized performance")
    assert {r["method"] for r in estimated} == set(CBPE_METRICS)
    page = watched.page
    page.goto(f"{demo.url}/ui/model?{urlencode({'model': 'car_loan'})}")
    assert page.locator("h2", has_text="Estimated performance beside realized").count() == 1
    for metric in CBPE_METRICS:
        chart = page.locator(f'svg.chart[aria-label="Estimated vs realized: {metric}"]')
        assert chart.count() == 1, metric
        lines = chart.locator("polyline")
        assert lines.count() == 2, metric  # the estimate, and the realized values once labels came
        assert chart.locator("polygon.band").count() == 1
        estimate_points = _points(lines.nth(0).get_attribute("points") or "")
        assert len(estimate_points) == 10  # one per window
        realized_points = _points(lines.nth(1).get_attribute("points") or "")
        assert len(realized_points) == len([r for r in realized if r["method"] == metric])
        # The band holds the estimate: its upper edge above each point, its lower edge below (SVG y grows down).
        band = _points(chart.locator("polygon.band").get_attribute("points") or "")
        upper, lower = band[:10], band[10:][::-1]
        for (x, y), (ux, uy), (lx, ly) in zip(estimate_points, upper, lower, strict=True):
            assert x == ux == lx and uy <= y <= ly, metric
        # Both lines span the same analysis period: their first and last points are close in x.
        assert abs(estimate_points[-1][0] - realized_points[-1][0]) < 60, metric
    legend = page.locator('svg.chart[aria-label="Estimated vs realized: accuracy"] text').all_text_contents()
    assert "estimated" in legend and "realized" in legend
    page.locator("h2", has_text="Estimated performance beside realized").scroll_into_view_if_needed()
    save_screenshot(page, "ui-estimates.png")
    assert watched.errors == []
