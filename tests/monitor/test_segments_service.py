"""Segments end to end through a real ``monitor serve``: a reference CSV with a region
column, records with ``segment`` over HTTP, the shifted region's rows from
``/v1/models/{m}/results?segment=region:r3``, the whole population unflagged, the metrics."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import numpy as np
import orjson
import pandas as pd
from support import ServiceProcess, config, scrape, wait_for

from monitor.detection import with_version
from monitor.model_snapshots import dump_model, load_model
from monitor.model_state import ModelState
from monitor.records import Record
from monitor.reference_files import reference_from_file
from monitor.settings import settings_from_mapping

FEATURES = ("f0", "f1", "f2", "f3")
REGIONS = [f"r{i}" for i in range(10)]
WINDOW = 2_000
ROUNDS, SHIFT_FROM = 4, 2  # region windows; r3 shifted by 1 of its SDs on f0 and f1 from round 2 on


def _rows(rng: np.random.Generator, per_region: int, shift: float = 0.0) -> pd.DataFrame:
    parts = []
    for i, region in enumerate(REGIONS):
        scale = 1.0 + i / 10
        x = rng.normal(3.0 * i, scale, size=(per_region, len(FEATURES)))
        if i == 3:
            x[:, :2] += shift * scale
        part = pd.DataFrame(x, columns=list(FEATURES))
        part["region"] = region
        parts.append(part)
    # Interleaved: each run of 10 rows holds one row of every region, in random order, so that
    # every window has the same mix of regions (a random mix moves all features of a window
    # together by about the minimum effect: that is not the shift under test).
    regions = np.argsort(rng.random((per_region, len(REGIONS))), axis=1)  # a permutation per run
    order = regions * per_region + np.arange(per_region)[:, None]
    frame = pd.concat(parts, ignore_index=True).iloc[order.ravel()]
    frame["prediction"] = 0.5 * frame["f2"]
    return frame.reset_index(drop=True)


def _records(frame: pd.DataFrame, start: int) -> list[dict]:
    return [
        {"model": "shop", "id": f"r{start + j}", "timestamp": 1.7e9 + start + j,
         "inputs": {f: float(row[f]) for f in FEATURES}, "prediction": float(row["prediction"]),
         "segment": {"region": row["region"]}}
        for j, row in enumerate(frame.to_dict("records"))
    ]  # fmt: skip


def test_segment_results_metrics_and_filter_through_a_real_service(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    reference = tmp_path / "reference.csv"
    _rows(rng, 5_000).to_csv(reference, index=False)
    model = {
        "features": {f: {"type": "numeric"} for f in FEATURES},
        "prediction": {"kind": "regression"},
        "reference": {"file": str(reference)},
        "window": {"size": WINDOW, "sample_size": WINDOW},
        "segments": {"keys": ["region"], "max_values": 10, "min_reference_rows": 500},
    }
    data = config(tmp_path, models={"shop": model})
    with ServiceProcess(tmp_path, data) as service, httpx.Client(base_url=service.url, timeout=60) as http:
        sent = 0
        # 2,000 records of 2,000 unknown regions: all 10 slots are the reference's, so they are pooled
        pooled = _rows(rng, 200).assign(region=[f"new-{j}" for j in range(2_000)])
        assert http.post("/v1/records", json=_records(pooled, sent)).json()["accepted"] == 2_000
        sent += 2_000
        for round_ in range(ROUNDS):
            frame = _rows(rng, WINDOW, shift=1.0 if round_ >= SHIFT_FROM else 0.0)
            for part in range(0, len(frame), 2_500):
                body = _records(frame.iloc[part : part + 2_500], sent)
                assert http.post("/v1/records", json=body).json()["accepted"] == len(body)
                sent += len(body)
        assert sent == 2_000 + ROUNDS * 10 * WINDOW

        def evaluated() -> dict[str, float] | None:
            samples = scrape(service.url)
            whole = samples.get('monitor_windows_evaluated_total{kind="drift",model="shop"}')
            slices = samples.get('monitor_windows_evaluated_total{kind="segment_drift",model="shop"}')
            return samples if (whole, slices) == (sent // WINDOW, 10 * ROUNDS + 1) else None

        samples = wait_for(evaluated, 120, "every whole and slice window evaluated")

        def drifted(**query: str) -> list[tuple[int, str]]:
            rows = http.get("/v1/models/shop/results", params={"kind": "feature_drift", **query}).json()["results"]
            return sorted({(r["window_seq"], r["feature"]) for r in rows if r["drift"]})

        assert drifted() == []  # the whole population: diluted, not flagged
        assert drifted(segment="region:r3") == [(s, f) for s in range(SHIFT_FROM, ROUNDS) for f in ("f0", "f1")]
        for region in REGIONS:
            if region != "r3":
                assert drifted(segment=f"region:{region}") == [], region
        rows = http.get("/v1/models/shop/results", params={"segment": "region:r3", "kind": "dataset_drift"}).json()
        assert [(r["window_seq"], r["segment"], r["detail"]["reference_slice"]) for r in rows["results"]] == [
            (s, "region:r3", "region:r3") for s in range(ROUNDS)
        ]
        other = http.get("/v1/models/shop/results", params={"segment": "region:__other__", "kind": "dataset_drift"})
        assert [(r["n_current"], r["detail"]["reference_slice"]) for r in other.json()["results"]] == [(2_000, "whole")]
        whole = http.get("/v1/models/shop/results", params={"kind": "dataset_drift"}).json()["results"]
        assert {r["segment"] for r in whole} == {""} and len(whole) == sent // WINDOW
        page = http.get("/ui/segments", params={"model": "shop"})
        assert page.status_code == 200
        grid = {
            cells[0]: cells[1:]
            for cells in (re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", page.text))
            if cells
        }  # segment -> reference, window, f0..f3 cells
        assert sorted(grid) == sorted([*(f"region:{r}" for r in REGIONS), "region:__other__"])
        assert [c.startswith('<span class="drift"') for c in grid["region:r3"][2:]] == [True, True, False, False]
        assert grid["region:r3"][:2] == ["region:r3", str(ROUNDS - 1)] and grid["region:__other__"][0] == "whole"
        assert not any('class="drift"' in c for name, cells in grid.items() if name != "region:r3" for c in cells)
        bad = http.get("/v1/models/shop/results", params={"segment": "region"})
        assert bad.status_code == 422 and "a segment is 'key:value'" in bad.text

    def gauge(name: str, **labels: str) -> float:
        shown = ",".join(f'{k}="{v}"' for k, v in sorted({"model": "shop", **labels}.items()))  # as exposed
        return samples[f"{name}{{{shown}}}"]

    assert gauge("monitor_segment_feature_drift", segment="region:r3", feature="f0") == 1.0
    assert gauge("monitor_segment_feature_drift", segment="region:r3", feature="f2") == 0.0
    assert gauge("monitor_segment_feature_drift", segment="region:r0", feature="f0") == 0.0
    assert gauge("monitor_segment_drifted_features", segment="region:r3") == 2.0
    assert gauge("monitor_segment_records_pooled_total", key="region") == 2_000.0
    assert gauge("monitor_dataset_drift") == 0.0
    segments = {
        k.split('segment="')[1].split('"')[0] for k in samples if k.startswith("monitor_segment_window_records")
    }
    assert segments == {*(f"region:{r}" for r in REGIONS), "region:__other__"}


class _Collect:
    """A result sink that keeps what it is given (the real sink protocol, no server needed)."""

    def __init__(self) -> None:
        self.results: list[dict] = []

    def publish(self, model: str, reference_version: str, result: object) -> None:
        self.results.append(result.to_dict())  # type: ignore[attr-defined]


def _state(reference: Path, sink: _Collect) -> ModelState:
    model = {
        "features": {f: {"type": "numeric"} for f in FEATURES},
        "prediction": {"kind": "regression"},
        "window": {"size": WINDOW, "sample_size": WINDOW},
        "segments": ["region"],
    }
    config = settings_from_mapping({"models": {"shop": model}}).models["shop"]
    state = ModelState("shop", config, [sink])
    profile, summary = reference_from_file(reference, config)
    state.set_reference(with_version(profile, "1"), summary)
    return state


def test_a_checkpoint_carries_the_slices_and_a_restored_state_goes_on_identically(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    reference = tmp_path / "reference.jsonl"  # JSONL records: the tags in a segment object
    lines = [orjson.dumps(r).decode() for r in _records(_rows(rng, 1_000), 0)]
    reference.write_text("\n".join(lines) + "\n")
    one_sink, two_sink = _Collect(), _Collect()
    one = _state(reference, one_sink)
    assert sorted(one.detector.reference.slices) == [f"region:{r}" for r in REGIONS]  # type: ignore[union-attr]
    first = _records(_rows(rng, 1_500, shift=1.0), 0)  # 1,500 a region: no slice window closes yet
    one.observe([validated(r) for r in first], complete=True)
    one.feed()
    assert one_sink.results and all("segment" not in r for r in one_sink.results)  # whole windows only so far
    slice_detectors = one.segments.detectors.detectors["region"]  # type: ignore[union-attr]
    assert {v: d.open_records for v, d in slice_detectors.items()} == dict.fromkeys(REGIONS, 1_500)  # precondition
    data = dump_model(one, [], {})
    two = _state(reference, two_sink)
    load_model(two, data, {})
    assert two.segments is not None and two.segments.to_bytes() == one.segments.to_bytes()  # type: ignore[union-attr]
    one_sink.results.clear()
    rest = [validated(r) for r in _records(_rows(rng, 1_000, shift=1.0), 15_000)]
    for state in (one, two):
        state.observe(rest, complete=True)
        state.feed()
    slices = [r for r in one_sink.results if "segment" in r]
    assert len(slices) == 10 and two_sink.results == one_sink.results
    r3 = next(r for r in slices if r["segment"] == "region:r3")
    drifted = sorted(f["feature"] for f in r3["drift"]["features"] if f["drift"])
    assert r3["reference_slice"] == "region:r3" and drifted == ["f0", "f1"]


def validated(item: dict) -> Record:
    return Record(
        "shop", item["id"], None, item["timestamp"], item["inputs"], item["prediction"], None, None,
        item["segment"], True, False,
    )  # fmt: skip
