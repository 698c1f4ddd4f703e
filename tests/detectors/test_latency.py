"""Latency quantiles from the window sketch (within its stated relative error) and the SLO flag."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from detectors.columns import Batch
from detectors.evaluation import EvaluationSettings
from detectors.latency import LatencySettings, check_latency, latency_from_sketch
from detectors.model import DetectorSettings, ModelDetector
from detectors.profiles import ReferenceProfile
from detectors.schema import LATENCY, Schema
from detectors.sketches import QuantileSketch, pack, unpack
from detectors.windows.policies import WindowPolicy
from detectors.windows.state import WindowLayout, WindowState

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


# ---- a reference without a latency channel ------------------------------------------------------
# Users send latency_ms without profiling latency in their reference: the window's sketch must
# still give the quantiles and the SLO verdict (there is no baseline to compare with, and none is needed).
PLAIN_SCHEMA = Schema({"x": "numeric"}, prediction_kind="binary")  # no latency_column
PLAIN_REF = ReferenceProfile.from_frame(
    pd.DataFrame({"x": np.arange(100.0), "prediction": np.linspace(0, 1, 100)}), PLAIN_SCHEMA, version="plain"
)
ONE_TO_THOUSAND = np.random.default_rng(11).permutation(np.arange(1.0, 1001.0))  # arrival order must not matter


def _records(latencies: np.ndarray, first: int = 0) -> list[dict]:
    """Service-shaped records (as monitor.detection.batch_from_records passes them on)."""
    return [
        {"inputs": {"x": float(i % 100)}, "prediction": 0.5, "latency_ms": float(v), "timestamp": float(first + i)}
        for i, v in enumerate(latencies)
    ]


def test_records_latency_is_read_without_a_latency_channel_in_the_schema() -> None:
    assert LATENCY not in PLAIN_REF.channels
    batch = Batch.from_records(_records(np.array([3.0, 7.5])), PLAIN_SCHEMA)
    assert batch.latency_ms.tolist() == [3.0, 7.5] and LATENCY not in batch.status
    # records without latency give an all-NaN column (never None: warm-up batches are concatenated)
    bare = Batch.from_records([{"inputs": {"x": 1.0}, "timestamp": 0.0}] * 3, PLAIN_SCHEMA)
    assert bare.latency_ms.shape == (3,) and np.isnan(bare.latency_ms).all()


def test_latency_quantiles_and_slo_without_a_reference_latency_channel() -> None:
    w = WindowState(WindowLayout(PLAIN_REF))
    w.update(Batch.from_records(_records(ONE_TO_THOUSAND), PLAIN_SCHEMA))
    exact = np.quantile(ONE_TO_THOUSAND, QS, method="lower")
    assert exact.tolist() == [500.0, 950.0, 990.0]
    over = check_latency(w, LatencySettings(slo_ms=950.0))  # p99 990 ms > 950 ms
    got = np.array([over.p50, over.p95, over.p99])
    assert np.all(np.abs(got - exact) <= 0.01 * exact), (got, exact)  # the sketch's documented bound
    assert (over.n, over.quantile, over.slo_ms, over.value, over.breached) == (1000, 0.99, 950.0, over.p99, True)
    under = check_latency(w, LatencySettings(slo_ms=1000.0))
    assert (under.value, under.breached) == (over.value, False)
    median = check_latency(w, LatencySettings(slo_ms=450.0, quantile=0.5))  # p50 500 ms > 450 ms
    assert median.value == over.p50 and median.breached


def test_model_detector_reports_latency_without_a_reference_latency_channel() -> None:
    settings = DetectorSettings(
        policy=WindowPolicy("count", 1000), evaluation=EvaluationSettings(latency=LatencySettings(slo_ms=950.0))
    )
    (evaluation,) = ModelDetector(PLAIN_REF, settings).update(
        Batch.from_records(_records(ONE_TO_THOUSAND), PLAIN_SCHEMA)
    )
    res = evaluation.latency
    assert res is not None and res.n == 1000 and res.breached
    exact = np.array([500.0, 950.0, 990.0])
    assert np.all(np.abs(np.array([res.p50, res.p95, res.p99]) - exact) <= 0.01 * exact)
    assert evaluation.to_dict()["latency"]["breached"] is True
    # a window whose records carried no latency still has no latency verdict
    plain = [{"inputs": {"x": 1.0}, "prediction": 0.5, "timestamp": float(i)} for i in range(1000)]
    (quiet,) = ModelDetector(PLAIN_REF, settings).update(Batch.from_records(plain, PLAIN_SCHEMA))
    assert quiet.latency is None


def test_checkpoints_keep_latency_and_old_ones_still_restore() -> None:
    settings = DetectorSettings(policy=WindowPolicy("count", 1000))
    first, rest = ONE_TO_THOUSAND[:400], ONE_TO_THOUSAND[400:]
    straight = ModelDetector(PLAIN_REF, settings)
    straight.update(Batch.from_records(_records(first), PLAIN_SCHEMA))
    restored = ModelDetector.from_bytes(straight.to_bytes(), PLAIN_REF, settings)
    tail = Batch.from_records(_records(rest, first=400), PLAIN_SCHEMA)
    (a,) = straight.update(tail)
    (b,) = restored.update(tail)
    assert a.latency == b.latency and a.latency.n == 1000  # the restored open window kept its 400 latencies

    # A window checkpoint written before latency was always sketched (no "latency" entry)
    # restores with an empty sketch and goes on counting.
    w = WindowState(WindowLayout(PLAIN_REF))
    w.update(Batch.from_records(_records(first), PLAIN_SCHEMA))
    header, arrays = unpack(w.to_bytes())
    del header["latency"], arrays["lat.slots"], arrays["lat.counts"]
    old = WindowState.from_bytes(pack(header, arrays), w.layout)
    assert (old.n, old.latency.count) == (400, 0)
    old.update(tail)
    assert (old.n, old.latency.count) == (1000, 600)


def test_latency_sketch_memory_is_fixed() -> None:
    w = WindowState(WindowLayout(PLAIN_REF, sample_size=100))
    w.update(Batch.from_records(_records(ONE_TO_THOUSAND), PLAIN_SCHEMA))
    size, stored = w.nbytes, len(w.to_bytes())
    for k in range(5):  # 50,000 more latencies in the same range fill no new memory
        w.update(Batch.from_records(_records(np.tile(ONE_TO_THOUSAND, 10), first=1000 * (k + 1)), PLAIN_SCHEMA))
    assert w.latency.count == 51_000 and w.nbytes == size and len(w.to_bytes()) == stored
