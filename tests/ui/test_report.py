"""The self-contained report: written by ``monitor report`` from the store of a service fed the
car-loan demo, by ``monitor replay --html``, and served by GET /v1/models/{m}/report.html;
opened from disk in Chromium with the network off, it draws the same heatmap and makes no
request but for itself."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
from support import PYTHON, ROOT, ServiceProcess
from ui.browser_support import DRIFTING, Watched

from monitor.cli.demo import write_config

DATA = ROOT / "tests" / "data" / "car_loan"
FLAGGED = {(f, w) for f in DRIFTING for w in range(5, 10)}


def _monitor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "monitor.cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=600)


def _open_offline(chromium: Any, path: Path) -> Watched:
    context = chromium.new_context(offline=True, viewport={"width": 1200, "height": 800})
    page = context.new_page()
    seen = Watched(page)
    page.on("console", lambda message: seen.errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: seen.errors.append(str(error)))

    def intercept(route: Any) -> None:
        seen.requests.append(route.request.url)
        if route.request.url == path.as_uri():
            route.continue_()
        else:
            route.abort()

    page.route("**/*", intercept)
    page.goto(path.as_uri())
    return seen


def _check_report(seen: Watched, path: Path) -> None:
    page = seen.page
    assert page.locator("h1 .model-name").inner_text() == "car_loan"
    assert page.locator("svg.heatmap rect.cell").count() == 7 * 10
    flagged = page.locator("svg.heatmap rect.cell.flagged").all()
    assert {(c.get_attribute("data-feature"), int(c.get_attribute("data-window") or -1)) for c in flagged} == FLAGGED
    assert page.locator("section.feature").count() == 7
    # Each drifting feature shows its latest window and the one where it moved most (both drawn).
    car_value = page.locator("section.feature", has=page.locator(".feature-name", has_text="car_value"))
    assert car_value.locator("svg.distribution").count() in (1, 2)
    assert car_value.locator("svg.distribution rect.bar.window").count() % 10 == 0
    page.locator('svg.heatmap rect.cell[data-feature="car_value"][data-window="7"]').click()
    assert page.url == path.as_uri() + "#feature-0"
    assert seen.requests == [path.as_uri()]  # the file itself, nothing else
    assert seen.errors == []
    page.context.close()


def test_monitor_report_from_the_store_opens_offline(demo: ServiceProcess, chromium: Any, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    done = _monitor("report", "--model", "car_loan", "--config", str(demo.config_path), "--windows", "10",
                    "--output", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "10 window(s), 7 feature(s)" in done.stdout
    _check_report(_open_offline(chromium, out), out)


def test_the_service_serves_the_same_report(demo: ServiceProcess, chromium: Any, tmp_path: Path) -> None:
    answer = httpx.get(f"{demo.url}/v1/models/car_loan/report.html", params={"windows": 10}, timeout=60)
    assert answer.status_code == 200
    assert answer.headers["content-disposition"] == 'attachment; filename="report.html"'
    out = tmp_path / "served.html"
    out.write_bytes(answer.content)
    _check_report(_open_offline(chromium, out), out)
    assert httpx.get(f"{demo.url}/v1/models/nope/report.html").status_code == 404


def test_monitor_replay_writes_the_report(chromium: Any, tmp_path: Path) -> None:
    config = write_config(tmp_path, 0)
    out = tmp_path / "replay.html"
    done = _monitor("replay", str(DATA / "synthetic_car_loan_analysis.csv.gz"), "--model", "car_loan",
                    "--config", str(config), "--prediction-column", "y_pred_proba", "--no-progress", "--html", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    _check_report(_open_offline(chromium, out), out)
