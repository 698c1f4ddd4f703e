"""Performance per segment through a real ``monitor serve``: predictions tagged with a
region wait in the label buffer with their tags, survive a kill -9 in the instance
checkpoints, and their labels - posted alone after the restart, and some with the
prediction before it - fill each region's performance window. Each slice's accuracy equals
a hand count of its predictions and labels; a value without a slot counts in the key's
``__other__`` slice; untagged predictions count in the whole population only."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from support import ServiceProcess, config, scrape, wait_for

# region -> (predictions, correct ones); None: no segment tag. "apac" has no reference
# rows and max_values is 2, so its predictions go to region:__other__.
PLAN: dict[str | None, tuple[int, int]] = {"eu": (100, 90), "us": (100, 70), "apac": (100, 40), None: (50, 25)}
INLINE = 20  # eu predictions whose label comes with them, before the kill


def _traffic(rng: np.random.Generator) -> list[dict[str, Any]]:
    """Records in random order of regions; each says whether the model was right."""
    items = []
    for region, (n, correct) in PLAN.items():
        for j in range(n):
            positive = bool(rng.random() < 0.5)
            label = int(positive) if j < correct else int(not positive)
            items.append({"region": region, "score": 0.9 if positive else 0.1, "label": label})
    order = rng.permutation(len(items))
    return [{**items[i], "id": f"p{k}"} for k, i in enumerate(order)]


def _record(item: dict[str, Any], with_label: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"model": "shop", "id": item["id"], "inputs": {"x": 1.0}, "prediction": item["score"]}
    if item["region"] is not None:
        out["segment"] = {"region": item["region"]}
    if with_label:
        out["label"] = item["label"]
    return out


def _accuracy(items: list[dict[str, Any]]) -> float:
    """The hand count: predictions whose class (score >= 0.5) is the label, over all."""
    return sum(int(i["score"] >= 0.5) == i["label"] for i in items) / len(items)


def test_each_slice_gets_the_accuracy_of_its_own_labelled_predictions_across_a_kill(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    reference = tmp_path / "reference.csv"
    regions = np.array(["eu", "us"] * 300)
    pd.DataFrame({"x": rng.normal(size=600), "prediction": rng.random(600), "region": regions}).to_csv(
        reference, index=False
    )
    model = {
        "features": {"x": {"type": "numeric"}},
        "prediction": {"kind": "binary"},
        "reference": {"file": str(reference)},
        "window": {"size": 10_000},
        "performance": {"window_size": 100, "min_labels": 10},
        "segments": {"keys": ["region"], "max_values": 2, "min_reference_rows": 200},
    }
    # Acknowledged only once in a checkpoint: what the kill finds stored is everything sent.
    storage = {"ack_after_checkpoint": True, "checkpoint_seconds": 0.2}
    data = config(tmp_path, models={"shop": model}, storage=storage)
    items = _traffic(rng)
    inline = [i for i in items if i["region"] == "eu"][:INLINE]
    inline_ids = {i["id"] for i in inline}
    singles = items[-10:]  # one request each (the record path rather than the columnar one)
    service = ServiceProcess(tmp_path, data).start()
    try:
        with httpx.Client(base_url=service.url, timeout=60) as http:
            batch = [_record(i, i["id"] in inline_ids) for i in items[:-10]]
            assert http.post("/v1/records", json=batch).json()["accepted"] == len(batch)
            for item in singles:
                assert http.post("/v1/records", json=_record(item, item["id"] in inline_ids)).status_code == 200
        stored = scrape(service.url)
        # Precondition: the inline labels were counted before the kill (the rest wait in the buffer).
        assert stored['monitor_labels_joined_total{model="shop"}'] == INLINE
        assert service.stop(signal.SIGKILL) == -signal.SIGKILL
    finally:
        service.__exit__()

    with ServiceProcess(tmp_path, data) as again, httpx.Client(base_url=again.url, timeout=60) as http:
        labels = [{"model": "shop", "id": i["id"], "label": i["label"]} for i in items if i["id"] not in inline_ids]
        assert http.post("/v1/records", json=labels).json()["accepted"] == len(labels)

        def closed() -> dict[str, float] | None:
            samples = scrape(again.url)
            slices = samples.get('monitor_windows_evaluated_total{kind="segment_performance",model="shop"}')
            return samples if slices == 3 else None

        samples = wait_for(closed, 120, "the three slices' performance windows")
        assert samples['monitor_labels_joined_total{model="shop"}'] == len(labels)  # none unmatched after the kill

        def accuracy(segment: str) -> list[tuple[int, float, int]]:
            params = {"kind": "performance", **({"segment": segment} if segment else {})}
            rows = http.get("/v1/models/shop/results", params=params).json()["results"]
            return [(r["window_seq"], r["statistic"], r["n_current"]) for r in rows if r["method"] == "accuracy"]

        expected = {
            "region:eu": _accuracy([i for i in items if i["region"] == "eu"]),
            "region:us": _accuracy([i for i in items if i["region"] == "us"]),
            "region:__other__": _accuracy([i for i in items if i["region"] == "apac"]),
        }
        assert expected == {"region:eu": 0.9, "region:us": 0.7, "region:__other__": 0.4}  # as planned
        for segment, value in expected.items():
            assert accuracy(segment) == [(0, value, 100)], segment
            shown = f'monitor_segment_performance{{metric="accuracy",model="shop",segment="{segment}"}}'
            assert samples[shown] == value
        # The whole population: 350 labels in windows of 100, in the order they came.
        labelled = inline + [i for i in items if i["id"] not in inline_ids]
        whole = [(0, _accuracy(labelled[:100]), 100), (1, _accuracy(labelled[100:200]), 100),
                 (2, _accuracy(labelled[200:300]), 100)]  # fmt: skip
        assert accuracy("") == whole
        # /v1/models lists the slices with windows (restored from the checkpoint) and the pooled rows.
        models = {m["name"]: m for m in http.get("/v1/models").json()["models"]}
        assert models["car_loan"]["segments"] is None  # configured without segments
        listed = models["shop"]["segments"]
        assert sorted(listed["slices"], key=lambda s: s["segment"]) == [
            {"segment": "region:__other__", "reference": "whole", "open_window_records": 100},
            {"segment": "region:eu", "reference": "region:eu", "open_window_records": 100},
            {"segment": "region:us", "reference": "region:us", "open_window_records": 100},
        ]
        assert (listed["keys"], listed["max_values"], listed["pooled"]) == (["region"], 2, {"region": 100})
