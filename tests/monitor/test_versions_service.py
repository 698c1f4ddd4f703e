"""Model versions end to end through a real ``monitor serve``: a reference of the model and
one attached to version 2 (``PUT /v1/models/{m}/versions/2/reference``), a rollout from
version 1 to version 2 over HTTP, each version's windows against its own reference, the
whole population's against the model's, ``GET /v1/models/{m}/versions``, and the attached
reference back after a restart (stored with ``references.model_version``)."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
from support import ServiceProcess, config, scrape, wait_for
from version_traffic import shop_records, shop_reference_csv

WINDOW = 1_000
PER_VERSION = 3 * WINDOW


def _flagged(http: httpx.Client, **query: str) -> list[tuple[int, bool]]:
    rows = http.get("/v1/models/shop/results", params={"kind": "dataset_drift", **query}).json()["results"]
    return [(r["window_seq"], r["drift"]) for r in rows]


def test_rollout_uses_each_versions_reference_through_a_real_service(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    model = {
        "features": {"a": {"type": "numeric"}, "b": {"type": "numeric"}},
        "prediction": {"kind": "regression"},
        "window": {"size": WINDOW, "min_records": 100},
        "versions": {"max_active": 2},
    }
    data = config(tmp_path, models={"shop": model})
    csv = {"content-type": "text/csv"}
    with ServiceProcess(tmp_path, data) as service, httpx.Client(base_url=service.url, timeout=60) as http:
        v1, v2 = shop_reference_csv(rng, 0.0, 5_000), shop_reference_csv(rng, 3.0, 5_000)
        assert http.put("/v1/models/shop/reference", content=v1, headers=csv).json()["version"] == "1"
        put = http.put("/v1/models/shop/versions/2/reference", content=v2, headers=csv)
        assert put.status_code == 201, put.text
        assert put.json() | {"content_hash": None} == {
            "model": "shop",
            "model_version": "2",
            "version": "2",
            "rows": 5_000,
            "content_hash": None,
        }
        # The model's own reference is still the active one: the version's is beside it.
        assert http.get("/v1/models/shop/reference").json()["version"] == "1"
        sent = 0
        for version, mean in (("1", 0.0), ("2", 3.0)):  # the rollout: all of v1, then all of v2
            body = shop_records(rng, mean, version, sent, PER_VERSION)
            assert http.post("/v1/records", json=body).json()["accepted"] == PER_VERSION
            sent += PER_VERSION

        def evaluated() -> bool:
            samples = scrape(service.url)
            whole = samples.get('monitor_windows_evaluated_total{kind="drift",model="shop"}')
            versions = samples.get('monitor_windows_evaluated_total{kind="version_drift",model="shop"}')
            return (whole, versions) == (2 * PER_VERSION // WINDOW, 2 * PER_VERSION // WINDOW)

        wait_for(evaluated, 120, "every whole-population and version window evaluated")
        # Version 2 starts windows of its own (0, 1, 2) against its own reference: no drift;
        # the whole population, against the model's reference, drifts once v2 takes over.
        assert _flagged(http, version="1") == [(0, False), (1, False), (2, False)]
        assert _flagged(http, version="2") == [(0, False), (1, False), (2, False)]
        assert _flagged(http) == [(0, False), (1, False), (2, False), (3, True), (4, True), (5, True)]
        v2 = http.get("/v1/models/shop/results", params={"version": "2", "kind": "dataset_drift"}).json()["results"]
        assert {(r["reference_version"], r["model_version"], r["n_current"]) for r in v2} == {("2", "2", WINDOW)}
        listing = http.get("/v1/models/shop/versions").json()
        assert [(v["version"], v["records"], v["windows_evaluated"], v["reference"], v["own_reference"])
                for v in listing["versions"]] == [("2", PER_VERSION, 3, "2", True), ("1", PER_VERSION, 3, "1", False)]  # fmt: skip
        assert (listing["retired"], listing["max_active"], listing["references"]) == (0, 2, {"2": "2"})
        # A third version past max_active 2 retires the least recently seen (v1), counted.
        assert http.post("/v1/records", json=shop_records(rng, 0.0, "3", sent, 10)).json()["accepted"] == 10

        def retired() -> dict | None:
            body = http.get("/v1/models/shop/versions").json()
            return body if body["retired"] == 1 else None

        listing = wait_for(retired, 60, "version 1 retired")
        assert [v["version"] for v in listing["versions"]] == ["3", "2"]
        missing = http.get("/v1/models/iris/versions")
        assert missing.status_code == 404 and "versions:" in missing.json()["detail"]
        bad = http.put("/v1/models/shop/versions/2/reference", content=b"a,b\nx,1\n", headers=csv)
        assert bad.status_code == 400 and "version '2'" in bad.json()["detail"]
    with ServiceProcess(tmp_path, data) as service, httpx.Client(base_url=service.url, timeout=60) as http:
        # The attached reference is stored: back after a restart, without a new upload.
        assert http.get("/v1/models/shop/versions").json()["references"] == {"2": "2"}
