"""Slice performance compared with the slice's own reference metrics: a labelled reference
where region a's accuracy is 0.9 and region b's 0.6 (hand-made, exact counts) gives each
slice its own metrics (the reference summary's ``segment_performance``); traffic where a
drops to 0.6 and b stays at 0.6 reports a drop for a only, a value without a reference
slice (the ``__other__`` pool) is compared with the whole reference's 0.75, and each result
says whose metrics it was compared with. Alert rules with ``segments:`` fire per slice;
the metrics survive the store round trip of a restart."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from support import ServiceProcess, config, scrape, settings, wait_for

from alerts.rules import AlertRuleConfig, signals
from detectors.segments import SegmentDetectors, SegmentSpec, tag_columns
from monitor.detection import detector_settings
from monitor.reference_files import build_reference

# Per region of the reference: (positives, correct ones, negatives, correct ones).
REFERENCE = {"a": (100, 90, 100, 90), "b": (100, 60, 100, 60)}
# Per region of the traffic: every region at 0.6. "c" has no reference slice.
TRAFFIC = {"a": (50, 30, 50, 30), "b": (50, 30, 50, 30), "c": (50, 30, 50, 30)}
MODEL: dict[str, Any] = {
    "features": {"x": {"type": "numeric"}},
    "prediction": {"kind": "binary"},
    "window": {"size": 10_000},
    "performance": {"window_size": 100, "min_labels": 10},
    "segments": {"keys": ["region"], "max_values": 2, "min_reference_rows": 100},
}


def _rows(plan: dict[str, tuple[int, int, int, int]]) -> list[dict[str, Any]]:
    """Rows whose score (0.9 or 0.1) is right for the planned count of each class."""
    out = []
    for region, (positives, right_positives, negatives, right_negatives) in plan.items():
        for j in range(positives):
            out.append({"region": region, "prediction": 0.9 if j < right_positives else 0.1, "label": 1})
        for j in range(negatives):
            out.append({"region": region, "prediction": 0.1 if j < right_negatives else 0.9, "label": 0})
    return out


def _reference_csv(path: Path) -> Path:
    rows = _rows(REFERENCE)
    x = np.random.default_rng(3).normal(size=len(rows))
    pd.DataFrame([{"x": v, **row} for v, row in zip(x, rows, strict=True)]).to_csv(path, index=False)
    return path


def test_the_summary_has_each_reference_slice_s_own_metrics(tmp_path: Path) -> None:
    path = _reference_csv(tmp_path / "reference.csv")
    model_config = settings(tmp_path, models={"shop": MODEL}).models["shop"]
    _profile, summary = build_reference(path.read_bytes(), "csv", model_config, label_column="label")
    # Hand counts: a 180 of 200 right, b 120 of 200, both 300 of 400. With scores 0.9 / 0.1,
    # ROC AUC = P(right positive) * P(right negative) + half the ties (both right or both wrong).
    assert summary["performance"]["accuracy"] == 0.75
    assert summary["segments"] == {"region:a": 200, "region:b": 200}
    a, b = summary["segment_performance"]["region:a"], summary["segment_performance"]["region:b"]
    assert (a["accuracy"], a["precision"], a["recall"], a["f1"]) == (0.9, 0.9, 0.9, 0.9)
    assert (b["accuracy"], b["precision"], b["recall"], b["f1"]) == (0.6, 0.6, 0.6, 0.6)
    assert a["roc_auc"] == pytest.approx(0.81 + 0.5 * 0.18, abs=1e-12)
    assert b["roc_auc"] == pytest.approx(0.36 + 0.5 * 0.48, abs=1e-12)
    # Without labels: neither the whole's metrics nor the slices'.
    _profile, unlabelled = build_reference(path.read_bytes(), "csv", model_config)
    assert "performance" not in unlabelled and "segment_performance" not in unlabelled


def _slice_results(detectors: SegmentDetectors) -> dict[str, Any]:
    rows = _rows(TRAFFIC)
    predictions = np.array([r["prediction"] for r in rows])
    labels = np.array([r["label"] for r in rows], dtype=object)
    tags = tag_columns([{"region": r["region"]} for r in rows], ["region"])
    results = detectors.observe_labels(predictions, labels, np.zeros(len(rows)), tags)
    return {r.segment: r for r in results}


def _labelled_slices(tmp_path: Path) -> tuple[Any, dict[str, Any], Any, SegmentSpec]:
    """The labelled reference's profile and summary, the detector settings and the slices by region."""
    path = _reference_csv(tmp_path / "reference.csv")
    model_config = settings(tmp_path, models={"shop": MODEL}).models["shop"]
    profile, summary = build_reference(path.read_bytes(), "csv", model_config, label_column="label")
    spec = SegmentSpec(("region",), max_values=2, min_reference_rows=100)
    return profile, summary, detector_settings(model_config, summary["performance"]), spec


def test_a_slice_drop_against_its_own_metrics_and_the_pool_against_the_whole(tmp_path: Path) -> None:
    profile, summary, base, spec = _labelled_slices(tmp_path)
    detectors = SegmentDetectors(profile, base, spec, summary["segment_performance"])
    by = _slice_results(detectors)
    assert sorted(by) == ["region:__other__", "region:a", "region:b"]
    a, b, other = by["region:a"], by["region:b"], by["region:__other__"]
    assert (a.metrics["accuracy"], a.reference["accuracy"], a.drop["accuracy"]) == (0.6, 0.9, 0.9 - 0.6)
    assert (a.degraded, a.degraded_metrics, a.reference_slice) == (True, ("accuracy", "roc_auc"), "region:a")
    assert (b.metrics["accuracy"], b.reference["accuracy"], b.drop["accuracy"]) == (0.6, 0.6, 0.0)
    assert (b.degraded, b.reference_slice) == (False, "region:b")
    assert b.drop["roc_auc"] == pytest.approx(0.0, abs=1e-12)
    assert (other.reference["accuracy"], other.drop["accuracy"], other.reference_slice) == (0.75, 0.75 - 0.6, "whole")
    assert other.degraded

    # Alert rules with segments: one signal per slice, breaching for a and the pool only.
    rule = AlertRuleConfig(name="slices", kind="performance_drop", segments=["region:*"])
    whole_rule = AlertRuleConfig(name="whole", kind="performance_drop")
    got = {s.feature: (s.breaching, s.detail["reference_slice"]) for r in by.values() for s in signals(rule, "shop", r)}
    assert got == {"@region:a": (True, "region:a"), "@region:b": (False, "region:b"),
                   "@region:__other__": (True, "whole")}  # fmt: skip
    assert [s for r in by.values() for s in signals(whole_rule, "shop", r)] == []  # slices are not the whole's


def test_a_restored_checkpoint_compares_with_the_metrics_now_given(tmp_path: Path) -> None:
    # A checkpoint taken before slices had reference metrics: its windows take them on restore.
    profile, summary, base, spec = _labelled_slices(tmp_path)
    old = SegmentDetectors(profile, base, spec)  # no slice metrics, and (as before) none of the whole's
    for detector in (old._detector("region", "a"), old._detector("region", "b")):
        assert detector.performance is not None
        detector.performance.reference = None
    restored = SegmentDetectors.from_bytes(old.to_bytes(), profile, base, spec, summary["segment_performance"])
    by = _slice_results(restored)
    assert (by["region:a"].reference["accuracy"], by["region:a"].degraded) == (0.9, True)
    assert (by["region:b"].reference["accuracy"], by["region:b"].degraded) == (0.6, False)


def _post_traffic(http: httpx.Client, start: int) -> None:
    """Each region's 100 labelled predictions in a request of its own (whole windows of one region each)."""
    rows = _rows(TRAFFIC)
    for region in TRAFFIC:
        body = [
            {"model": "shop", "id": f"p{start + i}", "inputs": {"x": 0.0}, "prediction": row["prediction"],
             "label": row["label"], "segment": {"region": region}}
            for i, row in enumerate(rows) if row["region"] == region
        ]  # fmt: skip
        start += len(body)
        assert http.post("/v1/records", json=body).json()["accepted"] == len(body)


def _performance(http: httpx.Client, segment: str) -> list[tuple[float, float, float, bool, str | None]]:
    params = {"kind": "performance", **({"segment": segment} if segment else {})}
    rows = http.get("/v1/models/shop/results", params=params).json()["results"]
    return sorted(
        (r["statistic"], r["detail"]["reference"], r["detail"]["drop"], r["drift"], r["detail"].get("reference_slice"))
        for r in rows
        if r["method"] == "accuracy"
    )


def test_slice_drops_through_a_real_service_and_a_restart(tmp_path: Path) -> None:
    reference = _reference_csv(tmp_path / "reference.csv")
    model = {**MODEL, "reference": {"file": str(reference), "label_column": "label"}}
    rules = [
        {"name": "slice-performance", "kind": "performance_drop", "segments": ["region:*"], "metrics": ["accuracy"]},
        {"name": "performance", "kind": "performance_drop", "metrics": ["accuracy"]},
    ]
    data = config(tmp_path, models={"shop": model}, alerts={"rules": rules})
    a = (0.6, 0.9, 0.9 - 0.6, True, "region:a")
    b = (0.6, 0.6, 0.0, False, "region:b")
    other = (0.6, 0.75, 0.75 - 0.6, True, "whole")
    whole = (0.6, 0.75, 0.75 - 0.6, True, None)
    for rounds in (1, 2):  # the second round after a restart: the reference comes from the store
        with ServiceProcess(tmp_path, data) as service, httpx.Client(base_url=service.url, timeout=60) as http:
            if rounds == 2:  # precondition: the restart did not rebuild the reference from the file
                versions = http.get("/v1/models/shop/references").json()["references"]
                assert len(versions) == 1
                assert versions[0]["summary"]["segment_performance"]["region:a"]["accuracy"] == 0.9
            _post_traffic(http, 1_000 * rounds)

            def closed(n: int = 3 * rounds) -> dict[str, float] | None:
                samples = scrape(service.url)
                slices = samples.get('monitor_windows_evaluated_total{kind="segment_performance",model="shop"}')
                return samples if slices == 3 and len(_performance(http, "")) == n else None

            samples = wait_for(closed, 120, "the slices' and the whole population's performance windows")
            assert _performance(http, "region:a") == [a] * rounds
            assert _performance(http, "region:b") == [b] * rounds
            assert _performance(http, "region:__other__") == [other] * rounds
            assert _performance(http, "") == [whole] * 3 * rounds  # as before: the whole reference's 0.75
            for segment in ("region:a", "region:b", "region:__other__"):
                shown = f'monitor_segment_performance{{metric="accuracy",model="shop",segment="{segment}"}}'
                assert samples[shown] == 0.6

            def alerts() -> list[tuple[str, str, str]] | None:
                listed = http.get("/v1/alerts").json()["alerts"]
                found = sorted((x["rule"], x["feature"], x["state"]) for x in listed)
                return found if len(found) == 3 else None

            assert wait_for(alerts, 60, "the three performance alerts") == [
                ("performance", "", "firing"),
                ("slice-performance", "@region:__other__", "firing"),
                ("slice-performance", "@region:a", "firing"),
            ]
            assert service.stop(signal.SIGTERM) in (0, -signal.SIGTERM)  # uvicorn may re-raise the signal
