"""Latency quantiles from the window sketch (within its stated relative error) and the SLO flag."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from detectors.columns import Batch, Schema
from detectors.latency import LatencySettings, check_latency, latency_from_sketch
from detectors.reference import ReferenceProfile
from detectors.sketches import QuantileSketch
from detectors.window import WindowLayout, WindowState

SCHEMA = Schema({"x": "numeric"}, latency_column="latency_ms")
REF = ReferenceProfile.from_frame(
    pd.DataFrame({"x": np.arange(100.0), "latency_ms": np.linspace(1, 100, 100)}), SCHEMA, version="r1"
)
QS = (0.5, 0.95, 0.99)


def _window(latency: np.ndarray) -> WindowState:
    w = WindowState(WindowLayout(REF))
    w.update(Batch(timestamps=np.zeros(latency.size), inputs={"x": np.zeros(latency.size)}, latency_ms=latency))
    return w


def test_quantiles_within_the_sketch_relative_error() -> None:
    rng = np.random.default_rng(7)
    lat = np.concatenate([rng.gamma(2.0, 15.0, 20_000), rng.lognormal(6, 0.5, 300)])  # a slow tail
    res = check_latency(_window(lat))
    assert res is not None and res.n == lat.size and res.relative_accuracy == 0.01
    exact = np.quantile(lat, QS, method="lower")  # the sketch estimates the lower quantile
    got = np.array([res.p50, res.p95, res.p99])
    # the sketch's guarantee (detectors.sketches): relative value error <= relative_accuracy
    assert np.all(np.abs(got - exact) <= 0.01 * exact), (got, exact)
    assert res.value == res.p99 and res.quantile == 0.99 and res.slo_ms is None and not res.breached


def test_slo_breach_flag() -> None:
    lat = np.arange(1.0, 1001.0)  # exact lower p99 = 990 ms, p90 = 900 ms
    w = _window(lat)
    assert check_latency(w, LatencySettings(slo_ms=1000.0)).breached is False
    hit = check_latency(w, LatencySettings(slo_ms=950.0))
    assert hit.breached and abs(hit.value - 990.0) <= 9.9
    p90 = check_latency(w, LatencySettings(slo_ms=950.0, quantile=0.9))
    assert not p90.breached and abs(p90.value - 900.0) <= 9.0 and p90.p99 == hit.p99


def test_no_latency_values_gives_none() -> None:
    assert check_latency(_window(np.array([np.nan, np.nan]))) is None
    assert latency_from_sketch(QuantileSketch()) is None
    no_latency = ReferenceProfile.from_frame(pd.DataFrame({"x": [1.0, 2.0]}), Schema({"x": "numeric"}), version=1)
    assert check_latency(WindowState(WindowLayout(no_latency))) is None


def test_negative_latencies_are_counted_not_summarised() -> None:
    sk = QuantileSketch()
    sk.update(np.array([-5.0, 10.0, 20.0, 30.0]))
    res = latency_from_sketch(sk, LatencySettings(slo_ms=25.0, quantile=0.5))
    assert res.n == 3 and res.negative == 1 and abs(res.p50 - 20.0) <= 0.2 and not res.breached
    d = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert d["slo_ms"] == 25.0 and d["negative"] == 1


def test_merged_windows_give_the_quantiles_of_the_union() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.gamma(2, 10, 3_000), rng.gamma(2, 40, 1_000)
    merged = check_latency(_window(a).merge(_window(b)))
    exact = np.quantile(np.concatenate([a, b]), QS, method="lower")
    assert np.all(np.abs(np.array([merged.p50, merged.p95, merged.p99]) - exact) <= 0.01 * exact)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"slo_ms": 0}, r"slo_ms must be a finite number of milliseconds > 0 or None, got 0"),
        ({"slo_ms": float("inf")}, r"slo_ms must be .* got inf"),
        ({"quantile": 0.0}, r"quantile must be in \(0, 1\], got 0.0"),
        ({"quantile": 1.01}, r"quantile must be in \(0, 1\], got 1.01"),
    ],
)
def test_settings_are_validated(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LatencySettings(**kwargs)
