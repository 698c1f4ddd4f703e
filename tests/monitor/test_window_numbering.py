"""A model's window numbers never repeat: a new reference, a restart without a checkpoint, a
reference attached to a version and a slice after a new reference all continue the numbering
(monitor/window_numbering.py), so the store's newest window is the latest one and
``(model, window_seq)`` names one window."""

from __future__ import annotations

import io
import signal
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from fastapi.testclient import TestClient
from support import ServiceProcess, client, config, settings, wait_for

from detectors.model import WindowNumbers
from monitor.store.database import Store
from monitor.window_numbering import next_numbers

WINDOW = 100
CSV = {"content-type": "text/csv"}


def _model(**extra: Any) -> dict[str, Any]:
    return {
        "features": {"a": {"type": "numeric"}},
        "prediction": {"kind": "regression"},
        "window": {"size": WINDOW, "min_records": 10},
        **extra,
    }


def _csv(rng: np.random.Generator, mean: float, n: int = 2_000, regions: bool = False) -> bytes:
    frame = pd.DataFrame({"a": rng.normal(mean, 1, n), "prediction": rng.normal(0, 1, n)})
    if regions:
        frame["region"] = np.where(np.arange(n) % 2, "eu", "us")
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def _records(rng: np.random.Generator, start: int, n: int, mean: float, **fields: Any) -> list[dict[str, Any]]:
    out = []
    for i in range(start, start + n):
        record = {"model": "m", "id": f"r{i}", "timestamp": 1.7e9 + i, "inputs": {"a": float(rng.normal(mean, 1))},
                  "prediction": 0.1, **fields}  # fmt: skip
        if "segment" in fields:
            record["segment"] = {"region": "eu" if i % 2 else "us"}
        out.append(record)
    return out


def _windows(http: TestClient | httpx.Client, kind: str = "dataset_drift", **query: str) -> list[tuple[int, str]]:
    """(window, reference) of each stored window of ``kind`` (one row per window: a metric of performance)."""
    params = {"kind": kind, **({"method": "mae"} if kind == "performance" else {}), **query}
    rows = http.get("/v1/models/m/results", params=params).json()["results"]
    return [(r["window_seq"], r["reference_version"]) for r in rows]


def _until(
    http: TestClient | httpx.Client, count: int, kind: str = "dataset_drift", **query: str
) -> list[tuple[int, str]]:
    """The stored windows once there are ``count`` of them (no more come: asserted by the caller)."""

    def enough() -> list[tuple[int, str]] | None:
        windows = _windows(http, kind, **query)
        return windows if len(windows) >= count else None

    return wait_for(enough, 60, f"{count} {kind} windows {query}")


def test_a_new_reference_continues_the_numbering_and_the_latest_window_is_the_newest(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    cfg = settings(tmp_path, models={"m": _model()})
    with client(cfg) as (http, _):
        assert http.put("/v1/models/m/reference", content=_csv(rng, 0), headers=CSV).json()["version"] == "1"
        http.post("/v1/records", json=_records(rng, 0, 3 * WINDOW, 0))
        assert _until(http, 3) == [(0, "1"), (1, "1"), (2, "1")]
        assert http.put("/v1/models/m/reference", content=_csv(rng, 5), headers=CSV).json()["version"] == "2"
        http.post("/v1/records", json=_records(rng, 300, 3 * WINDOW // 2, 5))
        assert _until(http, 4) == [(0, "1"), (1, "1"), (2, "1"), (3, "2")]
    with Store(cfg.storage.url) as store:
        latest = {(row["kind"], row["window_seq"], row["reference_version"]) for row in store.latest_results("m")}
        assert ("dataset_drift", 3, "2") in latest and {seq for _, seq, _ in latest} == {3}


def test_a_restart_without_checkpoints_continues_after_the_stored_windows(tmp_path: Path) -> None:
    """Drift and performance windows numbered apart: 3 drift windows and 1 performance window
    before the restart, then 2 of each after it, numbered on from the store's (not 0, 1,
    which the store would have dropped as windows it holds already)."""
    rng = np.random.default_rng(2)
    model = _model(performance={"window_size": WINDOW, "min_labels": 10})
    data = config(tmp_path, models={"m": model}, storage={"checkpoint_seconds": None})
    with ServiceProcess(tmp_path, data) as service, httpx.Client(base_url=service.url, timeout=60) as http:
        assert http.put("/v1/models/m/reference", content=_csv(rng, 0), headers=CSV).status_code == 201
        labelled = _records(rng, 0, WINDOW, 0, label=0.2)
        assert http.post("/v1/records", json=labelled + _records(rng, WINDOW, 2 * WINDOW + 50, 0)).status_code == 200
        assert [seq for seq, _ in _until(http, 3)] == [0, 1, 2]
        assert [seq for seq, _ in _until(http, 1, "performance")] == [0]
        # A clean stop (uvicorn may re-raise the signal); the open window's 50 records are not kept.
        assert service.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
        assert "shut down cleanly" in service.log()
    with ServiceProcess(tmp_path, data) as service, httpx.Client(base_url=service.url, timeout=60) as http:
        numbered = "model m: after the stored windows, numbers go on from 3 (drift) and 1 (performance)"
        assert numbered in service.log()  # the store's numbers, read at start-up
        assert http.post("/v1/records", json=_records(rng, 1_000, 2 * WINDOW, 0, label=0.2)).status_code == 200
        drift = _until(http, 5)
        performance = _until(http, 3, "performance")
        assert [seq for seq, _ in drift] == [0, 1, 2, 3, 4] and [seq for seq, _ in performance] == [0, 1, 2]
        rows = http.get("/v1/models/m/results", params={"kind": "dataset_drift", "since_seq": 3}).json()["results"]
        assert [r["n_current"] for r in rows] == [WINDOW, WINDOW]  # new windows of the new records


def test_a_version_continues_its_numbering_when_a_reference_is_attached(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    cfg = settings(tmp_path, models={"m": _model(versions={"max_active": 2})})
    with client(cfg) as (http, _):
        assert http.put("/v1/models/m/reference", content=_csv(rng, 0), headers=CSV).json()["version"] == "1"
        http.post("/v1/records", json=_records(rng, 0, 2 * WINDOW, 0, version="2"))
        assert _until(http, 2, version="2") == [(0, "1"), (1, "1")]
        put = http.put("/v1/models/m/versions/2/reference", content=_csv(rng, 3), headers=CSV)
        assert put.status_code == 201 and put.json()["version"] == "2"
        http.post("/v1/records", json=_records(rng, 200, 2 * WINDOW, 3, version="2"))
        assert _until(http, 4, version="2") == [(0, "1"), (1, "1"), (2, "2"), (3, "2")]
        assert [seq for seq, _ in _until(http, 4)] == [0, 1, 2, 3]  # the whole population's, apart


def test_a_slice_continues_its_numbering_after_a_new_reference(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    segments = {"keys": ["region"], "min_reference_rows": 100}
    cfg = settings(tmp_path, models={"m": _model(segments=segments)})
    with client(cfg) as (http, _):
        reference = _csv(rng, 0, regions=True)
        assert http.put("/v1/models/m/reference", content=reference, headers=CSV).json()["version"] == "1"
        http.post("/v1/records", json=_records(rng, 0, 4 * WINDOW, 0, segment=True))
        assert _until(http, 2, segment="region:eu") == [(0, "1"), (1, "1")]
        assert _until(http, 2, segment="region:us") == [(0, "1"), (1, "1")]
        assert _until(http, 4) == [(0, "1"), (1, "1"), (2, "1"), (3, "1")]
        new = _csv(rng, 0.5, regions=True)
        assert http.put("/v1/models/m/reference", content=new, headers=CSV).json()["version"] == "2"
        http.post("/v1/records", json=_records(rng, 400, 4 * WINDOW, 0.5, segment=True))
        assert _until(http, 4, segment="region:eu") == [(0, "1"), (1, "1"), (2, "2"), (3, "2")]
        assert _until(http, 8)[4:] == [(4, "2"), (5, "2"), (6, "2"), (7, "2")]


def test_start_up_numbers_come_from_the_store_per_slice_version_and_family(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'm.db'}") as store:
        base = {"model": "m", "reference_version": "1", "feature": "", "method": "x", "drift": False}
        rows = [
            {**base, "kind": "dataset_drift", "window_seq": 6},
            {**base, "kind": "latency", "window_seq": 7},  # a drift window's other kinds count too
            {**base, "kind": "performance", "window_seq": 2},
            {**base, "kind": "dataset_drift", "window_seq": 4, "segment": "region:eu"},
            {**base, "kind": "performance", "window_seq": 9, "segment": "region:eu"},
            {**base, "kind": "dataset_drift", "window_seq": 11, "model_version": "2"},
            {**base, "kind": "dataset_drift", "window_seq": 50, "model": "other"},
        ]
        store.add_results(rows)
        stored = store.window_numbers("m")
    assert stored == {
        ("", "", "dataset_drift"): 6, ("", "", "latency"): 7, ("", "", "performance"): 2,
        ("region:eu", "", "dataset_drift"): 4, ("region:eu", "", "performance"): 9, ("", "2", "dataset_drift"): 11,
    }  # fmt: skip
    assert next_numbers(stored) == (
        WindowNumbers(drift=8, performance=3), {"region:eu": WindowNumbers(5, 10)}, {"2": WindowNumbers(12, 0)}
    )  # fmt: skip
