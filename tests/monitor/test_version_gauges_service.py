"""Per-version gauges, alert rules and page through a real ``monitor serve``: two versions
of one model, version 2 shifted on feature ``a`` against the model's reference (it has no
reference of its own), so only version 2's windows drift, on ``a`` and the predictions.
The ``monitor_version_*`` gauges hold exactly each version's latest window; a rule with
``versions: ["2"]`` fires for version 2 only, keyed ``a@version:2``; a third version past
``max_active: 2`` retires version 1 and its series go; a restart restores the rest."""

from __future__ import annotations

import io
import re
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from support import ServiceProcess, config, scrape, wait_for

WINDOW = 1_000
WINDOWS = 2  # per version
VERSION_FAMILIES = (
    "monitor_version_feature_drift", "monitor_version_feature_drift_score", "monitor_version_drifted_features",
    "monitor_version_prediction_drift", "monitor_version_quality_breach", "monitor_version_window_records",
)  # fmt: skip


def _reference(rng: np.random.Generator, n: int = 5_000) -> bytes:
    x = rng.normal(0.0, 1.0, size=(n, 2))
    buffer = io.StringIO()
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "prediction": x[:, 0] / 2}).to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def _records(rng: np.random.Generator, shift: float, version: str, start: int, n: int) -> list[dict]:
    x = rng.normal(0.0, 1.0, size=(n, 2))
    x[:, 0] += shift
    return [
        {"model": "shop", "id": f"r{start + j}", "version": version, "timestamp": 1.7e9 + start + j,
         "inputs": {"a": float(x[j, 0]), "b": float(x[j, 1])}, "prediction": float(x[j, 0] / 2)}
        for j in range(n)
    ]  # fmt: skip


def _version_samples(samples: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in samples.items() if k.split("{")[0] in VERSION_FAMILIES}


def _gauge(samples: dict[str, float], name: str, **labels: str) -> float:
    shown = ",".join(f'{k}="{v}"' for k, v in sorted({"model": "shop", **labels}.items()))  # as exposed
    return samples[f"{name}{{{shown}}}"]


def _versions_shown(samples: dict[str, float]) -> set[str]:
    return {m.group(1) for k in _version_samples(samples) if (m := re.search(r'version="([^"]*)"', k))}


def test_version_gauges_rules_and_page_through_a_real_service(tmp_path: Path) -> None:
    rng = np.random.default_rng(20)
    model = {
        "features": {"a": {"type": "numeric"}, "b": {"type": "numeric"}},
        "prediction": {"kind": "regression"},
        "window": {"size": WINDOW, "min_records": 100},
        "versions": {"max_active": 2},
    }
    rules = [
        {"name": "v2-drift", "kind": "feature_drift", "versions": ["2"]},
        {"name": "any-version-predictions", "kind": "prediction_drift", "versions": ["*"]},
        {"name": "whole-drift", "kind": "feature_drift"},
    ]
    data = config(tmp_path, models={"shop": model}, alerts={"rules": rules})
    with ServiceProcess(tmp_path, data) as service, httpx.Client(base_url=service.url, timeout=60) as http:
        put = http.put("/v1/models/shop/reference", content=_reference(rng), headers={"content-type": "text/csv"})
        assert put.status_code == 201, put.text
        sent = 0
        for version, shift in (("1", 0.0), ("2", 3.0)):  # v1 first: it is the least recently seen after
            body = _records(rng, shift, version, sent, WINDOWS * WINDOW)
            assert http.post("/v1/records", json=body).json()["accepted"] == len(body)
            sent += len(body)

        def evaluated(n: int) -> dict[str, float] | None:
            samples = scrape(service.url)
            done = samples.get('monitor_windows_evaluated_total{kind="version_drift",model="shop"}')
            return samples if done == n else None

        samples = wait_for(lambda: evaluated(2 * WINDOWS), 120, "both versions' windows evaluated")
        # Each version's latest window, from the stored results (the gauges' source of truth).
        for version, drifted in (("1", set()), ("2", {"a"})):
            rows = http.get("/v1/models/shop/results", params={"version": version, "since_seq": WINDOWS - 1}).json()
            latest = [r for r in rows["results"] if r["window_seq"] == WINDOWS - 1]
            effects = {
                r["feature"]: r for r in latest if r["kind"] == "feature_drift" and r["detail"]["role"] == "effect"
            }
            assert {f for f, r in effects.items() if r["drift"]} == drifted
            for feature in ("a", "b"):
                labels = {"version": version, "feature": feature}
                assert _gauge(samples, "monitor_version_feature_drift", **labels) == float(feature in drifted)
                score = _gauge(
                    samples, "monitor_version_feature_drift_score", **labels, method=effects[feature]["method"]
                )
                assert score == effects[feature]["statistic"]
            assert _gauge(samples, "monitor_version_drifted_features", version=version) == len(drifted)
            assert _gauge(samples, "monitor_version_prediction_drift", version=version) == float(version == "2")
            assert _gauge(samples, "monitor_version_window_records", version=version) == WINDOW
            checks = {(r["feature"], r["method"]): float(r["drift"]) for r in latest if r["kind"] == "quality"}
            shown = {(f, c): _gauge(samples, "monitor_version_quality_breach", version=version, feature=f, check=c)
                     for f, c in checks}  # fmt: skip
            assert len(checks) == 3 * 4 and shown == checks  # a, b, prediction x 4 checks
        breaches = {k for k, v in samples.items() if k.startswith("monitor_version_quality_breach{") and v == 1.0}
        assert breaches == {  # version 2's shifted `a`, and its predictions (a / 2)
            f'monitor_version_quality_breach{{check="out_of_range",feature="{f}",model="shop",version="2"}}'
            for f in ("a", "prediction")
        }
        assert _versions_shown(samples) == {"1", "2"}

        # Rules: v2-drift only for version 2's `a`, every window; the any-version rule for
        # version 2's predictions; the whole-population rule never sees a version's window.
        firing = http.get("/v1/alerts", params={"model": "shop", "state": "firing"}).json()["alerts"]
        keyed = sorted((a["rule"], a["feature"]) for a in firing if a["rule"] != "whole-drift")
        assert keyed == [("any-version-predictions", "@version:2"), ("v2-drift", "a@version:2")]
        whole = {a["feature"] for a in firing if a["rule"] == "whole-drift"}
        assert all("@" not in feature for feature in whole)

        # The page: one row per version, the newest first, `a` flagged for version 2 only.
        page = http.get("/ui/versions", params={"model": "shop"})
        assert page.status_code == 200
        grid = [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", page.text)]
        grid = [cells for cells in grid if cells]
        assert [re.sub(r"<[^>]+>", "", cells[0]) for cells in grid] == ["2", "1"]
        assert [cells[2:4] for cells in grid] == [[str(WINDOWS - 1), str(WINDOW)]] * 2
        assert [[c.startswith('<span class="drift"') for c in cells[6:]] for cells in grid] == [
            [True, False],
            [False, False],
        ]
        assert 'href="/ui/versions?model=shop"' in http.get("/ui/model", params={"model": "shop"}).text
        # A version's alert on the alerts page leads to the versions view.
        alerts_page = http.get("/ui/alerts", params={"model": "shop"}).text
        assert '<a href="/ui/versions?model=shop">shop / a@version:2</a>' in alerts_page

        # A third version past max_active 2 retires version 1: its series go when version 3's
        # first window is shown.
        body = _records(rng, 0.0, "3", sent, WINDOW)
        assert http.post("/v1/records", json=body).json()["accepted"] == WINDOW
        sent += WINDOW
        listing = wait_for(lambda: (body := http.get("/v1/models/shop/versions").json())["retired"] and body, 60,
                           "version 1 retired")  # fmt: skip
        assert (listing["retired"], [v["version"] for v in listing["versions"]]) == (1, ["3", "2"])  # precondition
        samples = wait_for(lambda: evaluated(2 * WINDOWS + 1), 120, "version 3's window evaluated")
        assert _versions_shown(samples) == {"2", "3"}
        assert _gauge(samples, "monitor_version_window_records", version="3") == WINDOW
        assert _gauge(samples, "monitor_version_drifted_features", version="3") == 0.0
        before = _version_samples(samples)
    with ServiceProcess(tmp_path, data) as service:  # no traffic: the gauges come from the store
        after = _version_samples(scrape(service.url))
    assert after == before
