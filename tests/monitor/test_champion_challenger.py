"""Champion vs challenger through a real ``monitor serve``: shadow traffic (every request id
scored by version 1 and by version 2), first with identical predictions, then with a
challenger that differs on three ids in four. The second record of an id is not a
duplicate (the key holds the version); each whole-population window reports the
divergence (the prediction-drift test on the two versions' predictions) and the
agreement rate, which equals a hand count; the ``version_divergence`` alert fires only
once the challenger differs."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
from scipy import stats
from support import ServiceProcess, config, scrape, wait_for

WINDOW = 1_000  # whole-population rows: 500 ids, each scored by both versions
IDS_PER_WINDOW = WINDOW // 2
SAME, DIFFERENT = 3, 3  # windows of identical predictions, then of a differing challenger
TOLERANCE = 0.1


def _challenger(j: int, champion: float, differs: bool) -> float:
    # Differing: 1 id in 4 within the tolerance (agrees), the others 1.0 away (disagree).
    if not differs:
        return champion
    return champion + (0.05 if j % 4 == 0 else 1.0)


def _shadow(
    rng: np.random.Generator, start: int, n: int, differs: bool
) -> tuple[list[dict], list[tuple[float, float]]]:
    x = rng.normal(0.0, 1.0, size=n)
    body, pairs = [], []
    for j in range(start, start + n):
        a = float(x[j - start])
        b = _challenger(j, a, differs)
        for version, prediction in (("1", a), ("2", b)):
            body.append({"model": "shop", "id": f"req-{j}", "version": version, "timestamp": 1.7e9 + j,
                         "inputs": {"a": a}, "prediction": prediction})  # fmt: skip
        pairs.append((a, b))
    return body, pairs


def test_divergence_and_agreement_of_shadow_traffic_through_a_real_service(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    model = {
        "features": {"a": {"type": "numeric"}},
        "prediction": {"kind": "regression"},
        "reference": {"from_first_records": 200},
        "window": {"size": WINDOW, "min_records": 100},
        "versions": {"champion": "1", "challenger": "2", "agreement_tolerance": TOLERANCE},
    }
    rules = [{"name": "challenger-diverges", "kind": "version_divergence"}]
    data = config(tmp_path, models={"shop": model}, alerts={"rules": rules})
    with ServiceProcess(tmp_path, data) as service, httpx.Client(base_url=service.url, timeout=60) as http:
        # 100 ids (200 records) build the reference from the first records; windows follow.
        warm, _ = _shadow(rng, -100, 100, differs=False)
        assert http.post("/v1/records", json=warm).json() == {"accepted": 200, "rejected": 0, "duplicates": 0,
                                                               "errors": []}  # fmt: skip
        expected: list[list[tuple[float, float]]] = []
        for w in range(SAME + DIFFERENT):
            body, pairs = _shadow(rng, w * IDS_PER_WINDOW, IDS_PER_WINDOW, differs=w >= SAME)
            answer = http.post("/v1/records", json=body).json()
            assert (answer["accepted"], answer["duplicates"]) == (WINDOW, 0)  # the second version is no duplicate
            expected.append(pairs)

        def compared() -> list[dict] | None:
            rows = http.get("/v1/models/shop/results", params={"kind": "version_divergence"}).json()["results"]
            return rows if len({r["window_seq"] for r in rows}) == SAME + DIFFERENT else None

        rows = wait_for(compared, 120, "a divergence result for every window")
        by = {(r["window_seq"], r["method"]): r for r in rows}
        for w, pairs in enumerate(expected):
            agreement = by[(w, "agreement")]
            agreed = sum(abs(a - b) <= TOLERANCE for a, b in pairs)  # the hand count
            assert (agreement["n_current"], agreement["detail"]["agreed"]) == (IDS_PER_WINDOW, agreed)
            assert agreement["statistic"] == agreed / IDS_PER_WINDOW == (1.0 if w < SAME else 0.25)
            ks = by[(w, "ks")]
            a, b = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
            reference = stats.ks_2samp(b, a)
            assert ks["statistic"] == pytest.approx(reference.statistic, abs=1e-12)
            assert ks["pvalue"] == pytest.approx(reference.pvalue, rel=1e-6)
            assert (ks["n_reference"], ks["n_current"]) == (IDS_PER_WINDOW, IDS_PER_WINDOW)
            assert ks["detail"]["champion"] == "1" and ks["detail"]["challenger"] == "2"
            assert ks["drift"] is (w >= SAME), w  # identical: never; differing: every window
        metrics = scrape(service.url)
        assert metrics['monitor_version_divergence{model="shop"}'] == 1
        assert metrics['monitor_version_agreement_ratio{model="shop"}'] == 0.25
        assert metrics['monitor_windows_evaluated_total{kind="version_divergence",model="shop"}'] == SAME + DIFFERENT
        assert metrics.get('monitor_records_duplicate_total{model="shop"}', 0) == 0

        def fired() -> list[dict] | None:
            alerts = http.get("/v1/alerts").json()["alerts"]
            return alerts or None

        # Never while identical: the one alert fired at the first differing window, and stays.
        alerts = wait_for(fired, 60, "the version_divergence alert")
        assert [(a["rule"], a["state"], a["window_seq"], a["detail"]["agreement_rate"]) for a in alerts] == [
            ("challenger-diverges", "firing", SAME, 0.25)
        ]
        transitions = http.get(f"/v1/alerts/{alerts[0]['alert_id']}/transitions").json()["transitions"]
        assert [t["to_state"] for t in transitions] == ["firing"]
