"""Window states and windowing policies: exact counts, merging, restore, boundaries, bounded memory."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from detectors.columns import Batch
from detectors.profiles import ReferenceProfile
from detectors.schema import LATENCY, PREDICTION, Schema
from detectors.windows.policies import SlidingWindows, TumblingCountWindows, TumblingTimeWindows, Windower
from detectors.windows.state import WindowLayout, WindowState

SCHEMA = Schema(
    {"x": "numeric", "idx": "numeric", "c": "categorical"}, prediction_kind="binary", latency_column="latency_ms"
)


def _reference(n: int = 5_000) -> ReferenceProfile:
    rng = np.random.default_rng(0)
    cats = ["a"] * 50 + ["b"] * 30 + ["c"] * 10 + ["d"] * 5 + ["e"] * 5
    df = pd.DataFrame(
        {
            "x": rng.normal(0, 1, n),
            "idx": np.arange(n, dtype=float),
            "c": rng.choice(cats, n),
            "prediction": rng.random(n),
            "latency_ms": rng.gamma(2, 10, n),
        }
    )
    return ReferenceProfile.from_frame(df, SCHEMA, version="r1", top_k=3)  # a, b, c kept; d, e are the tail


REF = _reference()


def _batch(n: int, start: int = 0, seed: int = 0, t0: float = 0.0, dt: float = 1.0) -> Batch:
    rng = np.random.default_rng(seed)
    return Batch(
        timestamps=t0 + dt * np.arange(start, start + n, dtype=float),
        inputs={
            "x": rng.normal(0.3, 1.2, n),
            "idx": np.arange(start, start + n, dtype=float),
            "c": rng.choice(np.array(["a", "b", "c", "d", "zz"], dtype=object), n),
        },
        prediction=rng.random(n),
        latency_ms=rng.gamma(2, 12, n),
    )


def _concat(batches: list[Batch]) -> Batch:
    return Batch(
        timestamps=np.concatenate([b.timestamps for b in batches]),
        inputs={k: np.concatenate([b.inputs[k] for b in batches]) for k in batches[0].inputs},
        prediction=np.concatenate([b.prediction for b in batches]),
        latency_ms=np.concatenate([b.latency_ms for b in batches]),
    )


def _hand_bins(values: np.ndarray, edges: np.ndarray) -> list[int]:
    cuts = [-math.inf, *edges.tolist(), math.inf]
    return [int(np.sum((values > lo) & (values <= hi))) for lo, hi in zip(cuts[:-1], cuts[1:], strict=True)]


def _same_state(a: WindowState, b: WindowState) -> None:
    for name in ("bin_counts", "num_counters", "num_min", "num_max", "cat_counts", "cat_wrong"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    np.testing.assert_allclose(a.num_sum, b.num_sum, rtol=1e-12)
    np.testing.assert_array_equal(a.latency.counts, b.latency.counts)
    assert (a.n, a.min_ts, a.max_ts) == (b.n, b.min_ts, b.max_ts)


# ---- window state --------------------------------------------------------------------------------
def test_counts_match_hand_computed_bins_and_categories() -> None:
    lay = WindowLayout(REF)
    w = WindowState(lay)
    batches = [_batch(1_000, i * 1_000, seed=i) for i in range(3)]
    for b in batches:
        w.update(b)
    allb = _concat(batches)
    for ch in ("x", "idx"):
        assert w.counts(ch).tolist() == _hand_bins(allb.inputs[ch], REF.channels[ch].edges)
        assert w.reference_counts(ch).tolist() == REF.channels[ch].counts.tolist()
    assert w.counts(PREDICTION).tolist() == _hand_bins(allb.prediction, REF.channels[PREDICTION].edges)
    c = allb.inputs["c"]
    top = [int(np.sum(c == k)) for k in ("a", "b", "c")]
    assert w.counts("c").tolist() == top + [3_000 - sum(top)]  # other includes the unseen 'zz'
    q = w.quality("c")
    assert (q["other"], q["unseen"], q["null"]) == (int(np.sum((c == "d") | (c == "zz"))), int(np.sum(c == "zz")), 0)
    assert w.reference_counts("c").tolist() == REF.channels["c"].aligned_counts().tolist()
    assert w.n == 3_000 and (w.min_ts, w.max_ts) == (0.0, 2_999.0)
    assert w.value_range("idx") == (0.0, 2_999.0)
    lat = w.latency_quantiles((0.5, 0.99))
    true = np.quantile(allb.latency_ms, [0.5, 0.99], method="lower")
    assert np.all(np.abs(lat - true) <= 0.01 * true + 1e-12)


def test_quality_counts_nan_inf_none_wrong_type_unseen_exactly() -> None:
    rows = [
        {"inputs": {"x": 0.5, "idx": 1, "c": "a"}, "prediction": 0.5, "latency_ms": 3, "timestamp": 1},
        {"inputs": {"x": None, "idx": float("inf"), "c": None}, "prediction": 1.5, "latency_ms": None, "timestamp": 2},
        {"inputs": {"x": "oops", "idx": float("nan"), "c": {"k": 1}}, "prediction": "p", "timestamp": 3},
        {"inputs": {"x": 1e9, "idx": -float("inf"), "c": "never-seen"}, "prediction": -0.1, "timestamp": 4},
        {"inputs": {"idx": -1e9, "c": "e"}, "prediction": None, "latency_ms": "slow", "timestamp": 5},
        {"inputs": {"x": -1e9, "idx": 10, "c": "never-seen"}, "prediction": 0.0, "latency_ms": 1, "timestamp": 6},
    ]
    w = WindowState(WindowLayout(REF))
    w.update(Batch.from_records(rows, SCHEMA))
    assert w.quality("x") == {
        "count": 6,
        "null": 2,
        "nonfinite": 0,
        "wrong_type": 1,
        "below_range": 1,
        "above_range": 1,
        "out_of_range": 2,
    }
    assert w.quality("idx") == {
        "count": 6,
        "null": 0,
        "nonfinite": 3,
        "wrong_type": 0,
        "below_range": 1,
        "above_range": 0,
        "out_of_range": 1,
    }
    assert w.quality("c") == {"count": 6, "null": 1, "wrong_type": 1, "other": 3, "unseen": 2}
    assert w.quality(PREDICTION) == {
        "count": 6,
        "null": 1,
        "nonfinite": 0,
        "wrong_type": 1,
        "below_range": 1,
        "above_range": 1,
        "out_of_range": 2,
    }  # binary score bounds are [0, 1]
    assert w.quality(LATENCY)["null"] == 3 and w.quality(LATENCY)["wrong_type"] == 1
    assert w.counts("x").sum() == 3 and w.counts("idx").tolist()[0] == 3 and w.counts("c").tolist() == [1, 0, 0, 3]
    assert w.sample("idx").tolist() == [1.0, -1e9, 10.0]


def test_bounds_inferred_with_margin_or_given() -> None:
    p = REF.channels["x"]
    lay = WindowLayout(REF, range_margin=0.5, bounds={"idx": (0.0, 10.0)})
    j = lay.num_index["x"]
    assert lay.lo[j] == pytest.approx(p.min - 0.5 * (p.max - p.min))
    assert lay.lo[lay.num_index[LATENCY]] == 0.0  # latency bounds never go below zero
    w = WindowState(lay)
    w.update(_batch(100))
    assert w.quality("idx")["above_range"] == 89
    with pytest.raises(ValueError, match=r"bounds given for unknown or non-numeric channels: \['c'\]"):
        WindowLayout(REF, bounds={"c": (0, 1)})
    with pytest.raises(ValueError, match="sample_size must be a positive integer, got 0"):
        WindowLayout(REF, sample_size=0)


def test_merge_counts_equal_the_window_over_the_union() -> None:
    lay = WindowLayout(REF, sample_size=500)
    a, b, u = WindowState(lay, seed=1), WindowState(lay, seed=2), WindowState(lay, seed=3)
    ba, bb = _batch(2_000, 0, seed=1), _batch(700, 2_000, seed=2)
    a.update(ba)
    b.update(bb)
    u.update(ba)
    u.update(bb)
    m = a.merge(b)
    _same_state(m, u)
    assert m.reservoir.seen == 2_700 and m.reservoir.size == 500
    assert a.n == 2_000 and b.n == 700  # inputs unchanged


def test_merged_window_sample_is_uniform_over_union() -> None:
    lay = WindowLayout(REF, sample_size=2_000)
    a, b = WindowState(lay, seed=10), WindowState(lay, seed=20)
    for i in range(30):
        a.update(_batch(1_000, i * 1_000, seed=i))
    for i in range(30, 40):
        b.update(_batch(1_000, i * 1_000, seed=i))
    idx = a.merge(b).sample("idx")
    assert idx.size == 2_000 and np.unique(idx).size == 2_000
    assert abs(np.mean(idx < 30_000) - 0.75) < 0.03  # hypergeometric sd ~0.0095
    assert stats.chisquare(np.bincount((idx // 5_000).astype(int), minlength=8)).pvalue > 0.001


def test_window_restore_then_continue_equals_uninterrupted() -> None:
    lay = WindowLayout(REF, sample_size=1_000)
    a = WindowState(lay, seq=4, seed=99)
    for i in range(3):
        a.update(_batch(1_000, i * 1_000, seed=i))
    b = WindowState.from_bytes(a.to_bytes(), lay)
    for i in range(3, 6):
        a.update(_batch(1_000, i * 1_000, seed=i))
        b.update(_batch(1_000, i * 1_000, seed=i))
    assert a.to_bytes() == b.to_bytes()
    other = WindowLayout(REF, sample_size=999)
    with pytest.raises(ValueError, match="saved with layout"):
        WindowState.from_bytes(a.to_bytes(), other)


def test_window_memory_does_not_grow_with_traffic() -> None:
    lay = WindowLayout(REF, sample_size=1_000)
    w = WindowState(lay)
    b = _batch(1_000)
    for _ in range(2):
        w.update(b)
    size_small, bytes_small = w.nbytes, len(w.to_bytes())
    for _ in range(50):
        w.update(b)
    assert w.n == 52_000 and w.nbytes == size_small and len(w.to_bytes()) == bytes_small


# ---- policies ------------------------------------------------------------------------------------
def test_tumbling_count_windows_close_exactly_at_boundaries() -> None:
    wd = TumblingCountWindows(WindowLayout(REF, sample_size=100), 5_000)
    closed = []
    for start in range(0, 12_345, 1_000):
        closed += wd.update(_batch(min(1_000, 12_345 - start), start, seed=start))
    assert [w.n for w in closed] == [5_000, 5_000] and [w.seq for w in closed] == [0, 1]
    assert [w.value_range("idx") for w in closed] == [(0.0, 4_999.0), (5_000.0, 9_999.0)]
    assert [(w.start, w.end) for w in closed] == [(0.0, 4_999.0), (5_000.0, 9_999.0)]
    assert wd.open_window.n == 2_345 and wd.open_window.value_range("idx") == (10_000.0, 12_344.0)
    last = wd.flush()
    assert last.n == 2_345 and last.seq == 2 and wd.open_window is None
    with pytest.raises(ValueError, match="size must be a positive integer, got 0"):
        TumblingCountWindows(WindowLayout(REF), 0)


def test_tumbling_time_windows_extend_small_windows_and_take_late_records() -> None:
    lay = WindowLayout(REF, sample_size=100)
    wd = TumblingTimeWindows(lay, seconds=60.0, min_records=500)
    # records per 60 s period: period 0: 600; 1: 100 (too few); 2: 450; 3, 4: none; 5: 700; 6: 10
    parts, start = [], 0
    for period, n in [(0, 600), (1, 100), (2, 450), (5, 700), (6, 10)]:
        parts.append(_batch(n, start, seed=period, t0=period * 60.0 - start * (60.0 / n), dt=60.0 / n))
        start += n
    allb = _concat(parts)
    closed = []
    for s in range(0, len(allb), 400):
        closed += wd.update(allb.select(slice(s, s + 400)))
    # [60, 120) had 100 < 500 records: extended over period 2 -> [60, 180) with 550.
    # Empty periods 3 and 4 produce nothing; [300, 360) closes when period 6 arrives.
    assert [(w.seq, w.start, w.end, w.n, w.late) for w in closed] == [
        (0, 0.0, 60.0, 600, 0),
        (1, 60.0, 180.0, 550, 0),
        (2, 300.0, 360.0, 700, 0),
    ]
    for w, (lo, hi) in zip(closed, [(0, 599), (600, 1_149), (1_150, 1_849)], strict=True):
        assert w.value_range("idx") == (lo, hi)
    assert (wd.open_window.start, wd.open_window.end, wd.open_window.n) == (360.0, 420.0, 10)
    assert wd.flush().n == 10 and wd.open_window is None  # flush returns it whatever its size
    # a record for a period before the open window's start is late and joins the open window
    wd.update(_batch(600, 0, t0=1_000.0, dt=0.01))
    wd.update(_batch(5, 0, t0=10.0))
    assert wd.open_window.late == 5 and wd.open_window.n == 605 and wd.open_window.start == 960.0
    with pytest.raises(ValueError, match="min_records must be a positive integer, got 0"):
        TumblingTimeWindows(lay, 60.0, 0)
    with pytest.raises(ValueError, match="seconds must be a positive finite number, got -1"):
        TumblingTimeWindows(lay, -1, 10)


def test_tumbling_time_windows_group_an_out_of_order_batch_by_period() -> None:
    wd = TumblingTimeWindows(WindowLayout(REF, sample_size=100), seconds=60.0, min_records=1)
    b = _batch(4, 0)
    b.timestamps = np.array([70.0, 10.0, 130.0, 20.0])
    closed = wd.update(b)
    assert [(w.start, w.n) for w in closed] == [(0.0, 2), (60.0, 1)]
    assert sorted(closed[0].sample("idx").tolist()) == [1.0, 3.0]
    assert (wd.open_window.start, wd.open_window.n) == (120.0, 1)
    b.timestamps[0] = np.nan
    with pytest.raises(ValueError, match="finite timestamps"):
        wd.update(b)


def test_sliding_count_windows_cover_the_last_panes() -> None:
    wd = SlidingWindows(WindowLayout(REF, sample_size=200), size=3_000, panes=3)
    closed = []
    for start in range(0, 9_000, 1_000):
        closed += wd.update(_batch(1_000, start, seed=start))
    # panes close at 1000, 2000, ...; windows exist from the third pane on
    assert [w.n for w in closed] == [3_000] * 7 and [w.seq for w in closed] == list(range(7))
    assert [w.value_range("idx") for w in closed] == [(k * 1_000.0, k * 1_000.0 + 2_999.0) for k in range(7)]
    u = WindowState(WindowLayout(REF, sample_size=200))
    for start in range(6_000, 9_000, 1_000):
        u.update(_batch(1_000, start, seed=start))
    _same_state(closed[-1], u)
    with pytest.raises(ValueError, match="size must be a multiple of panes"):
        SlidingWindows(WindowLayout(REF), size=1_000, panes=3)


def test_sliding_time_windows() -> None:
    wd = SlidingWindows(WindowLayout(REF, sample_size=200), size=300.0, panes=3, unit="seconds", min_records=150)
    closed = []
    for k in range(10):  # 100 records per 100 s pane, nothing in [500, 700)
        if k in (5, 6):
            continue
        closed += wd.update(_batch(100, k * 100, seed=k, t0=0.0))
    assert [(w.start, w.end, w.n) for w in closed] == [
        (-100.0, 200.0, 200),
        (0.0, 300.0, 300),
        (100.0, 400.0, 300),
        (200.0, 500.0, 300),
        (600.0, 900.0, 200),
    ]  # the window ending at 800 held 100 records only: below min_records


@pytest.mark.parametrize(
    "make",
    [
        lambda lay: TumblingCountWindows(lay, 2_500, seed=3),
        lambda lay: TumblingTimeWindows(lay, 700.0, 300, seed=4),
        lambda lay: SlidingWindows(lay, 3_000, 3, seed=5),
        lambda lay: SlidingWindows(lay, 1_500.0, 3, unit="seconds", seed=6),
        # with lateness, the checkpoint (latest time 4,999 s) holds an early window: [4,900, 5,600)
        # resp. the pane [4,800, 5,400), the watermark (4,849 s, 4,549 s) not past the one before
        lambda lay: TumblingTimeWindows(lay, 700.0, 300, allowed_lateness=150.0, seed=7),
        lambda lay: SlidingWindows(lay, 1_800.0, 3, unit="seconds", allowed_lateness=450.0, seed=8),
    ],
)
def test_windower_checkpoint_restore_continue_is_identical(make) -> None:
    lay = WindowLayout(REF, sample_size=300)
    batches = [_batch(1_000, i * 1_000, seed=i) for i in range(12)]
    plain, ckpt = make(lay), make(lay)
    out_plain = [w for b in batches for w in plain.update(b)]
    out_ckpt = [w for b in batches[:5] for w in ckpt.update(b)]
    timed = ckpt._inner if isinstance(ckpt, SlidingWindows) else ckpt
    if isinstance(timed, TumblingTimeWindows) and timed.allowed_lateness:
        assert timed._early is not None and timed._early.n > 0  # the precondition: state beyond the open window
    ckpt = Windower.from_bytes(ckpt.to_bytes(), lay)
    out_ckpt += [w for b in batches[5:] for w in ckpt.update(b)]
    assert len(out_plain) >= 2
    assert [w.to_bytes() for w in out_plain] == [w.to_bytes() for w in out_ckpt]
    assert plain.to_bytes() == ckpt.to_bytes()


def test_new_reference_starts_new_windows() -> None:
    ref2 = _reference(4_000)
    a = TumblingCountWindows(WindowLayout(REF), 100)
    a.update(_batch(50))
    with pytest.raises(ValueError, match="saved with layout"):
        Windower.from_bytes(a.to_bytes(), WindowLayout(ref2))
    b = TumblingCountWindows(WindowLayout(ref2), 100)
    assert b.open_window is None


# ---- watermark: time windows close when the latest event time minus the lateness passes their end
def _at(times: list[float], start: int = 0) -> Batch:
    b = _batch(len(times), start)
    b.timestamps = np.array(times, dtype=float)
    return b


def test_allowed_lateness_keeps_a_window_open_for_stragglers() -> None:
    """60 s windows, 20 s lateness: a record at 65 s opens the next window early but leaves
    [0, 60) open (watermark 45); a straggler at 50 s still counts in it, not as late; the
    record at 85 s moves the watermark to 65 and closes it."""
    wd = TumblingTimeWindows(WindowLayout(REF, sample_size=100), seconds=60.0, min_records=1, allowed_lateness=20.0)
    assert wd.update(_at([10.0, 30.0, 65.0, 70.0], 0)) == [] and wd.watermark == 50.0
    assert wd.update(_at([50.0], 4)) == []
    [closed] = wd.update(_at([85.0], 5))
    assert (closed.seq, closed.start, closed.end, closed.n, closed.late) == (0, 0.0, 60.0, 3, 0)
    assert sorted(closed.sample("idx").tolist()) == [0.0, 1.0, 4.0]
    assert (wd.open_window.seq, wd.open_window.start, wd.open_window.n) == (1, 60.0, 3)
    # Now 40 s is behind the watermark: late, into the open window, counted.
    assert wd.update(_at([40.0], 6)) == [] and (wd.open_window.n, wd.open_window.late) == (4, 1)
    # Without lateness the record at 65 s closes [0, 60) at once and the one at 50 s is late.
    plain = TumblingTimeWindows(WindowLayout(REF, sample_size=100), seconds=60.0, min_records=1)
    [first] = plain.update(_at([10.0, 30.0, 65.0, 70.0], 0))
    assert first.n == 2 and plain.update(_at([50.0], 4)) == [] and plain.open_window.late == 1


def test_a_small_window_folds_the_early_one_in_and_numbers_stay_consecutive() -> None:
    wd = TumblingTimeWindows(WindowLayout(REF, sample_size=100), seconds=60.0, min_records=5, allowed_lateness=30.0)
    wd.update(_at([1.0, 2.0, 3.0], 0))  # 3 < 5 records in [0, 60)
    wd.update(_at([70.0, 71.0], 3))  # early window for [60, 120); watermark 41
    closed = wd.update(_at([95.0], 5))  # watermark 65 passes 60: too few, extended over [60, 120)
    assert closed == [] and (wd.open_window.seq, wd.open_window.start, wd.open_window.end, wd.open_window.n) == (
        0, 0.0, 120.0, 6,
    )  # fmt: skip
    closed = wd.update(_at([130.0, 131.0, 155.0], 6))  # early [120, 180) then watermark 125: closes [0, 120)
    assert [(w.seq, w.start, w.end, w.n) for w in closed] == [(0, 0.0, 120.0, 6)]
    assert (wd.open_window.seq, wd.open_window.start, wd.open_window.n) == (1, 120.0, 3)
    # 5 records early in [180, 240) (watermark 155); then 240 s: watermark 210 passes 180 with 3
    # records in [120, 180): the early window is folded in, and 240 s opens [240, 300) early.
    closed = wd.update(_at([181.0, 182.0, 183.0, 184.0, 185.0, 240.0], 9))
    assert closed == [] and (wd.open_window.seq, wd.open_window.start, wd.open_window.end, wd.open_window.n) == (
        1, 120.0, 240.0, 8,
    )  # fmt: skip
    flushed = wd.flush()  # the early window folded in: one window, and its number is free again
    assert flushed is not None and (flushed.seq, flushed.start, flushed.end, flushed.n) == (1, 120.0, 300.0, 9)
    wd.update(_at([400.0], 15))
    assert wd.open_window.seq == 2


def test_one_record_ahead_only_moves_the_watermark_that_far() -> None:
    """A record 300 s ahead (limits.max_future_seconds lets no more through) opens its
    window; the records of the present are then late into it, and windows go on closing
    once event time passes it: 5 periods of 60 s give 5 windows either way, one later."""

    def run(poison: bool) -> list[tuple[int, float, int, int]]:
        wd = TumblingTimeWindows(WindowLayout(REF, sample_size=100), seconds=60.0, min_records=10)
        closed: list[WindowState] = []
        for k in range(12):  # 12 batches of 30 records, 20 s apart: 6 periods of 60 s
            times = [k * 20.0 + j * 0.5 for j in range(30)]
            if poison and k == 3:
                times.append(k * 20.0 + 300.0)
            closed += wd.update(_at(times, k * 31))
        closed += wd.update(_at([1_000.0] * 10, 500))  # time moves on
        return [(w.seq, w.start, w.n, w.late) for w in closed]

    assert run(False) == [(0, 0.0, 90, 0), (1, 60.0, 90, 0), (2, 120.0, 90, 0), (3, 180.0, 90, 0)]
    # The record at 360 s closes [60, 120) with the 30 records it had and opens [360, 420); the
    # 240 records of 80 to 240 s are late into that one, which closes when event time passes it.
    assert run(True) == [(0, 0.0, 90, 0), (1, 60.0, 30, 0), (2, 360.0, 241, 240)]


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda lay: TumblingTimeWindows(lay, 60.0, 1, allowed_lateness=60.0), "allowed_lateness must be >= 0 and less than seconds (60.0), got 60.0"),
        (lambda lay: TumblingTimeWindows(lay, 60.0, 1, allowed_lateness=-1), "allowed_lateness must be >= 0"),
        (lambda lay: SlidingWindows(lay, 300.0, 3, unit="seconds", allowed_lateness=100.0), "less than seconds (100.0)"),
        (lambda lay: SlidingWindows(lay, 300, 3, allowed_lateness=5.0), "allowed_lateness applies to time panes only"),
    ],
)  # fmt: skip
def test_allowed_lateness_must_be_below_a_period(make, error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        make(WindowLayout(REF))


def test_sliding_time_windows_close_panes_on_the_watermark() -> None:
    wd = SlidingWindows(
        WindowLayout(REF, sample_size=200), size=300.0, panes=3, unit="seconds", min_records=1, allowed_lateness=50.0
    )
    assert wd.update(_at([10.0, 120.0], 0)) == []  # watermark 70: the pane [0, 100) stays open
    assert wd.update(_at([90.0], 2)) == []  # a straggler still in its pane
    [w] = wd.update(_at([160.0], 3))  # watermark 110: [0, 100) closes with 2 records
    assert (w.start, w.end, w.n, w.late) == (-200.0, 100.0, 2, 0)


def test_checkpoints_of_before_the_watermark_still_load() -> None:
    """A checkpoint written before the watermark (no max_ts, no allowed_lateness) restores:
    the latest time seen is taken from the open window, and it continues as before."""
    from detectors.sketches import pack, unpack

    lay = WindowLayout(REF, sample_size=300)
    batches = [_batch(1_000, i * 1_000, seed=i) for i in range(12)]
    plain, old = TumblingTimeWindows(lay, 700.0, 300, seed=4), TumblingTimeWindows(lay, 700.0, 300, seed=4)
    out_plain = [w for b in batches for w in plain.update(b)]
    out_old = [w for b in batches[:5] for w in old.update(b)]
    header, arrays = unpack(old.to_bytes())
    assert header["state"].pop("max_ts") == 4_999.0 and "allowed_lateness" not in header["params"]
    restored = Windower.from_bytes(pack(header, arrays), lay)
    assert restored.watermark == 4_999.0
    out_old += [w for b in batches[5:] for w in restored.update(b)]
    assert [w.to_bytes() for w in out_plain] == [w.to_bytes() for w in out_old]
