"""Reservoir, quantile sketch and state codec: uniformity, error bounds, merging, exact restore."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from detectors.sketches import QuantileSketch, Reservoir, pack, unpack


def _stream(n: int, start: int = 0) -> np.ndarray:
    return np.arange(start, start + n, dtype=np.float64)[:, None]


# ---- codec ---------------------------------------------------------------------------------------
def test_pack_roundtrip_keeps_header_and_arrays() -> None:
    arrays = {
        "f": np.array([1.5, np.nan, -np.inf]),
        "i": np.arange(6, dtype=np.int64).reshape(2, 3),
        "b": np.array([True, False]),
        "e": np.empty((0, 4)),
    }
    header, back = unpack(pack({"x": 1, "s": "é", "inf": float("inf")}, arrays))
    assert header == {"x": 1, "s": "é", "inf": float("inf")}
    for k, v in arrays.items():
        np.testing.assert_array_equal(back[k], v)
        assert back[k].dtype == v.dtype and back[k].flags.writeable


def test_pack_refuses_object_arrays_and_unpack_refuses_garbage() -> None:
    with pytest.raises(TypeError, match="unsupported dtype"):
        pack({}, {"o": np.array(["a"], dtype=object)})
    good = pack({"a": 1}, {"x": np.arange(10.0)})
    with pytest.raises(ValueError, match="magic"):
        unpack(b"XXXX" + good[4:])
    with pytest.raises(ValueError, match="inconsistent"):
        unpack(good[:-16])
    with pytest.raises(ValueError, match="too short"):
        unpack(b"MM")


# ---- reservoir -----------------------------------------------------------------------------------
def test_reservoir_keeps_everything_until_full_then_stays_bounded() -> None:
    r = Reservoir(capacity=100, width=1, seed=1)
    r.add(_stream(60))
    np.testing.assert_array_equal(r.sample[:, 0], np.arange(60))
    r.add(_stream(10_000, start=60))
    assert r.seen == 10_060 and r.size == 100 and r.nbytes == 100 * 8


def test_reservoir_is_uniform_over_the_stream() -> None:
    # 200,000 rows in batches of 1,000 into 10,000 slots: each of 20 index ranges
    # should hold ~500 sampled rows; chi-square goodness of fit at a fixed seed.
    r = Reservoir(capacity=10_000, width=1, seed=7)
    for start in range(0, 200_000, 1_000):
        r.add(_stream(1_000, start))
    idx = r.sample[:, 0]
    assert np.unique(idx).size == 10_000  # without replacement
    observed = np.bincount((idx // 10_000).astype(int), minlength=20)
    assert stats.chisquare(observed).pvalue > 0.001
    # and the sampled values follow the stream's distribution (uniform on [0, 200000))
    assert stats.kstest(idx, stats.uniform(0, 200_000).cdf).pvalue > 0.001


def test_reservoir_vectorised_equals_sequential_algorithm_r_with_the_same_draws() -> None:
    # Small capacity so several rows of one batch draw the same slot: the last must win.
    cap, n0, m = 5, 5, 200
    r = Reservoir(capacity=cap, width=1, seed=11)
    r.add(_stream(n0))
    rng_copy = np.random.Generator(np.random.PCG64(0))
    rng_copy.bit_generator.state = r._rng.bit_generator.state
    draws = rng_copy.integers(0, np.arange(n0, n0 + m) + 1)
    expected = list(range(n0))
    for k, j in enumerate(draws):
        if j < cap:
            expected[j] = n0 + k
    assert np.bincount(draws[draws < cap]).max() > 1  # the case under test really happens
    r.add(_stream(m, start=n0))
    np.testing.assert_array_equal(r.sample[:, 0], expected)


def test_reservoir_sample_does_not_depend_on_batch_boundaries() -> None:
    a, b = Reservoir(500, 1, seed=3), Reservoir(500, 1, seed=3)
    a.add(_stream(20_000))
    for s in range(0, 20_000, 777):
        b.add(_stream(min(777, 20_000 - s), s))
    np.testing.assert_array_equal(a.sample, b.sample)


def test_reservoir_merge_is_uniform_over_the_union() -> None:
    # A saw 3,000 rows, B 1,000. Over 300 merges (k=100 each) the merged sample must
    # take 3/4 of its rows from A, and be uniform over the 4,000 union indices.
    taken = []
    for seed in range(300):
        a, b = Reservoir(100, 1, seed=seed), Reservoir(100, 1, seed=10_000 + seed)
        a.add(_stream(3_000))
        b.add(_stream(1_000, start=3_000))
        m = a.merge(b, seed=seed)
        assert m.seen == 4_000 and m.size == 100
        assert np.unique(m.sample[:, 0]).size == 100
        taken.append(m.sample[:, 0])
    allv = np.concatenate(taken)
    frac_a = np.mean(allv < 3_000)
    assert abs(frac_a - 0.75) < 0.01  # sd of the mean ~0.0025
    observed = np.bincount((allv // 500).astype(int), minlength=8)
    assert stats.chisquare(observed).pvalue > 0.001


def test_reservoir_merge_of_small_streams_keeps_all_rows_and_can_continue() -> None:
    a, b = Reservoir(100, 2, seed=1), Reservoir(100, 2, seed=2)
    a.add(np.ones((30, 2)))
    b.add(np.zeros((20, 2)))
    m = a.merge(b, seed=5)
    assert m.seen == 50 and m.size == 50 and m.sample.sum() == 60
    m.add(np.full((100, 2), 9.0))
    assert m.seen == 150 and m.size == 100
    with pytest.raises(ValueError, match="different capacity or width"):
        a.merge(Reservoir(100, 3))


def test_reservoir_restore_continues_identically() -> None:
    a = Reservoir(1_000, 3, seed=42)
    a.add(np.random.default_rng(0).normal(size=(5_000, 3)))
    b = Reservoir.from_bytes(a.to_bytes())
    more = np.random.default_rng(1).normal(size=(7_000, 3))
    a.add(more)
    b.add(more)
    assert a.to_bytes() == b.to_bytes()


def test_reservoir_validates_parameters() -> None:
    with pytest.raises(ValueError, match="capacity must be a positive integer, got 0"):
        Reservoir(0, 1)
    with pytest.raises(ValueError, match="width must be a non-negative integer, got -1"):
        Reservoir(5, -1)
    with pytest.raises(ValueError, match=r"rows must have shape \(m, 2\)"):
        Reservoir(5, 2).add(np.zeros((3, 1)))


# ---- quantile sketch -----------------------------------------------------------------------------
QS = [0.0, 0.01, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0]


def test_sketch_quantiles_within_stated_relative_error() -> None:
    x = np.random.default_rng(3).lognormal(mean=3.0, sigma=1.0, size=100_000)  # latency-like, ms
    s = QuantileSketch(relative_accuracy=0.01)
    for chunk in np.array_split(x, 100):
        s.update(chunk)
    est = s.quantiles(QS)
    true = np.quantile(x, QS, method="lower")
    assert np.all(np.abs(est - true) <= 0.01 * true * (1 + 1e-9))
    # against numpy's default (linear) quantile: within the bound plus the gap between neighbours
    lin = np.quantile(x, [0.5, 0.95, 0.99])
    assert np.all(np.abs(s.quantiles([0.5, 0.95, 0.99]) - lin) <= 0.011 * lin)


def test_sketch_merge_equals_sketch_of_union_and_serialises() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.exponential(50, 20_000), rng.exponential(200, 5_000)
    a, b, u = QuantileSketch(), QuantileSketch(), QuantileSketch()
    a.update(x)
    b.update(y)
    u.update(np.concatenate([x, y]))
    m = a.merge(b)
    np.testing.assert_array_equal(m.counts, u.counts)
    assert (m.min, m.max, m.count) == (u.min, u.max, u.count)
    back = QuantileSketch.from_bytes(m.to_bytes())
    np.testing.assert_array_equal(back.quantiles(QS), m.quantiles(QS))
    with pytest.raises(ValueError, match="different parameters"):
        a.merge(QuantileSketch(relative_accuracy=0.02))


def test_sketch_edge_values() -> None:
    s = QuantileSketch(min_value=1e-3, max_value=1e4)
    assert np.isnan(s.quantile(0.5))
    s.update(np.array([0.0, 0.0, 0.0, np.nan, np.inf, -5.0, 5.0, 2e6]))
    assert s.count == 5 and s.negative == 1
    assert s.quantile(0.0) == 0.0 and s.quantile(0.5) == 0.0
    assert abs(s.quantile(0.75) - 5.0) <= 0.05
    assert s.quantile(1.0) == 2e6  # above max_value: the exact maximum
    with pytest.raises(ValueError, match="relative_accuracy must be in"):
        QuantileSketch(relative_accuracy=0)
    with pytest.raises(ValueError, match=r"quantile probabilities must be in \[0, 1\]"):
        s.quantiles([1.5])
