"""The web page and the report at size: 25 features x 200 windows, drawn in Chromium.

A SQLite store is filled with 200 windows of a 25-feature model (20 numeric, 5 categorical;
500 records a window, six features shifted from window 100) by the real detectors and the
store sink; a real ``monitor serve`` reads it. Debian's Chromium (Playwright) opens the
model page: the time from the navigation to a heatmap of 5,000 cells painted (median of
``--runs``); then the report (GET /v1/models/bench/report.html?windows=200): its size, and
the time to its painted heatmap from disk with the network off.

Targets: model page < 1.5 s to a drawn heatmap; report < 8 MB.

    python benchmarks/ui_render.py [--windows N] [--runs R] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_support  # noqa: F401  (import path: the project and tests/ first)
import httpx
import numpy as np
import pandas as pd
from support import ServiceProcess

from detectors.columns import Batch
from detectors.model import DetectorSettings, ModelDetector
from detectors.profiles import ReferenceProfile
from detectors.schema import Schema
from detectors.windows.policies import WindowPolicy
from monitor.store.database import Store
from monitor.store.result_sink import StoreSink

CHROMIUM = "/usr/lib/chromium/chromium"
NUMERIC = [f"num_{i:02d}" for i in range(20)]
CATEGORICAL = [f"cat_{i}" for i in range(5)]
WINDOW = 500
TARGET_SECONDS = 1.5
TARGET_BYTES = 8 * 1024 * 1024
PAINTED = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() => done(true))))"


def frame(rng: np.random.Generator, n: int, shift: float) -> pd.DataFrame:
    data: dict[str, Any] = {name: rng.normal(shift if i < 5 else 0.0, 1.0, n) for i, name in enumerate(NUMERIC)}
    letters = np.array(list("abcdefgh"))
    for i, name in enumerate(CATEGORICAL):
        p = np.full(8, 1 / 8) if i or not shift else np.array([0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05])
        data[name] = letters[rng.choice(8, n, p=p)]
    data["prediction"] = rng.random(n)
    return pd.DataFrame(data)


def fill(url: str, windows: int) -> float:
    """Evaluates ``windows`` windows into the store at ``url``; returns the seconds it took."""
    began = time.perf_counter()
    schema = Schema({**dict.fromkeys(NUMERIC, "numeric"), **dict.fromkeys(CATEGORICAL, "categorical")},
                    prediction_kind="binary")  # fmt: skip
    rng = np.random.default_rng(1)
    profile = ReferenceProfile.from_frame(frame(rng, 20_000, 0.0), schema, version="1")
    detector = ModelDetector(profile, DetectorSettings(policy=WindowPolicy("count", WINDOW)))
    with Store(url) as store:
        sink = StoreSink(store)
        for seq in range(windows):
            rows = frame(rng, WINDOW, 0.5 if seq >= windows // 2 else 0.0)
            batch = Batch.from_frame(rows, schema, default_timestamp=1_700_000_000.0 + seq * 60)
            for evaluation in detector.update(batch):
                sink.publish("bench", "1", evaluation)
    return time.perf_counter() - began


def time_page(browser: Any, url: str, cells: int, *, offline: bool = False) -> float:
    """Seconds from the navigation to the heatmap's ``cells`` cells painted."""
    # bypass_csp: the page's policy forbids every script, the benchmark's own probes included
    # (they change nothing in how the page is drawn).
    context = browser.new_context(offline=offline, viewport={"width": 1400, "height": 900}, bypass_csp=True)
    page = context.new_page()
    began = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.wait_for_function(f"document.querySelectorAll('svg.heatmap rect.cell').length === {cells}", timeout=120_000)
    page.evaluate(PAINTED)
    seconds = time.perf_counter() - began
    context.close()
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="20 windows, 2 runs: checks the benchmark works")
    args = parser.parse_args(argv)
    windows, runs = (20, 2) if args.quick else (args.windows, args.runs)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp:
        work = Path(tmp)
        url = f"sqlite:///{work / 'monitor.db'}"
        print(f"filling the store: {windows} windows of {WINDOW} records, 25 features ...", flush=True)
        print(f"  {fill(url, windows):.1f} s")
        features = {**{n: {"type": "numeric"} for n in NUMERIC}, **{n: {"type": "categorical"} for n in CATEGORICAL}}
        config = {
            "storage": {"url": url},
            "server": {"evaluation": "thread"},
            "models": {"bench": {"features": features, "prediction": {"kind": "binary"},
                                 "reference": {"from_first_records": 1000}}},
        }  # fmt: skip
        cells = windows * 25
        with ServiceProcess(work, config) as service, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            page_url = f"{service.url}/ui/model?model=bench&windows={windows}"
            time_page(browser, page_url, cells)  # warm-up: the first request opens the store's connections
            page_times = [time_page(browser, page_url, cells) for _ in range(runs)]
            began = time.perf_counter()
            answer = httpx.get(f"{service.url}/v1/models/bench/report.html", params={"windows": windows}, timeout=300)
            served = time.perf_counter() - began
            answer.raise_for_status()
            report = work / "report.html"
            report.write_bytes(answer.content)
            report_times = [time_page(browser, report.as_uri(), cells, offline=True) for _ in range(runs)]
            browser.close()
    page_median, report_median = statistics.median(page_times), statistics.median(report_times)
    size = len(answer.content)
    print(f"model page, {windows} windows x 25 features ({cells} cells): to a painted heatmap "
          f"median {page_median:.3f} s (runs: {', '.join(f'{t:.3f}' for t in page_times)})")  # fmt: skip
    print(f"report: {size:,} bytes ({size / 1024 / 1024:.2f} MiB), served in {served:.2f} s; "
          f"opened from disk offline: median {report_median:.3f} s to a painted heatmap")  # fmt: skip
    ok_page, ok_size = page_median < TARGET_SECONDS, size < TARGET_BYTES
    print(f"{'PASS' if ok_page else 'FAIL'} model page heatmap drawn in < {TARGET_SECONDS} s")
    print(f"{'PASS' if ok_size else 'FAIL'} report < {TARGET_BYTES // 1024 // 1024} MB")
    if args.quick:
        print("(quick run: too small to judge the targets by)")
    return 0 if (ok_page and ok_size) else 1


if __name__ == "__main__":
    sys.exit(main())
