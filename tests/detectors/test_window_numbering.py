"""Window numbers continue across detectors: ``continue_numbering`` of the windowing policies,
of performance windows and of a model's detector (the service's use: monitor/window_numbering.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from detectors.columns import Batch
from detectors.model import DetectorSettings, ModelDetector, NumberFloors, WindowNumbers
from detectors.performance import PerformanceSettings
from detectors.profiles import ReferenceProfile
from detectors.schema import Schema
from detectors.windows.performance import PerformanceWindows
from detectors.windows.policies import SlidingWindows, TumblingCountWindows, TumblingTimeWindows, WindowPolicy
from detectors.windows.state import WindowLayout

SCHEMA = Schema({"x": "numeric"}, prediction_kind="regression")
REF = ReferenceProfile.from_frame(
    pd.DataFrame({"x": np.random.default_rng(0).normal(0, 1, 2_000), "prediction": np.zeros(2_000)}),
    SCHEMA,
    version="1",
)
LAYOUT = WindowLayout(REF, sample_size=100)


def _at(times: list[float] | np.ndarray) -> Batch:
    t = np.asarray(times, dtype=float)
    return Batch(timestamps=t, inputs={"x": np.linspace(-1, 1, t.size)}, prediction=np.zeros(t.size))


def _rows(n: int) -> Batch:
    return _at(np.arange(n, dtype=float))


def test_count_windows_continue_from_the_given_number_and_renumber_the_open_one() -> None:
    wd = TumblingCountWindows(LAYOUT, 10)
    assert [w.seq for w in wd.update(_rows(25))] == [0, 1] and wd.next_seq == 3
    wd.continue_numbering(7)  # window 2 is open with 5 records: it becomes 7, records kept
    assert (wd.open_window.seq, wd.open_window.n, wd.next_seq) == (7, 5, 8)
    assert [(w.seq, w.n) for w in wd.update(_rows(15))] == [(7, 10), (8, 10)]
    wd.continue_numbering(4)  # lower: nothing changes, numbers never go back
    assert wd.next_seq == 9 and wd.update(_rows(10))[0].seq == 9
    fresh = TumblingCountWindows(LAYOUT, 10)
    fresh.continue_numbering(3)  # no window open: the first one made is 3
    assert [w.seq for w in fresh.update(_rows(20))] == [3, 4]
    with pytest.raises(ValueError, match="next_seq must be a non-negative integer, got -1"):
        fresh.continue_numbering(-1)


def test_time_windows_renumber_the_open_and_the_early_window_consecutively() -> None:
    wd = TumblingTimeWindows(LAYOUT, seconds=60.0, min_records=1, allowed_lateness=30.0)
    wd.update(_at([1.0, 2.0, 70.0]))  # [0, 60) open as 0, [60, 120) early as 1 (watermark 40)
    wd.continue_numbering(5)
    assert (wd.open_window.seq, wd.next_seq) == (5, 7)
    [closed] = wd.update(_at([95.0]))  # watermark 65 closes [0, 60); the early one is now open
    assert (closed.seq, closed.n, wd.open_window.seq, wd.open_window.n) == (5, 2, 6, 2)
    flushed = wd.flush()
    assert flushed is not None and flushed.seq == 6
    wd.update(_at([400.0]))
    assert wd.open_window.seq == 7


def test_sliding_windows_number_emitted_windows_from_the_given_number() -> None:
    wd = SlidingWindows(LAYOUT, 20, 2)
    assert [w.seq for w in wd.update(_rows(30))] == [0, 1]
    wd.continue_numbering(10)
    assert [(w.seq, w.n) for w in wd.update(_rows(20))] == [(10, 20), (11, 20)]


def test_performance_windows_continue_and_renumber_their_open_window() -> None:
    wins = PerformanceWindows(PerformanceSettings("regression", min_labels=5), 10)
    ones = np.ones(15)
    assert [r.window_seq for r in wins.update(ones, ones)] == [0] and wins.next_seq == 2
    wins.continue_numbering(6)
    assert (wins.open_window.seq, wins.open_window.n, wins.next_seq) == (6, 5, 7)
    assert [(r.window_seq, r.n) for r in wins.update(ones[:5], ones[:5])] == [(6, 10)]
    assert [(r.window_seq, r.n) for r in wins.update(ones, ones)] == [(7, 10)]


def test_a_new_detector_continues_the_old_ones_numbers_family_by_family() -> None:
    settings = DetectorSettings(
        policy=WindowPolicy("count", size=10), sample_size=100, performance=PerformanceSettings("regression", min_labels=5),
        performance_window=10,
    )  # fmt: skip
    old = ModelDetector(REF, settings)
    assert len(old.update(_rows(30))) == 3
    ones = np.ones(10)
    assert len(old.observe_labels(ones, ones)) == 1
    assert old.next_numbers() == WindowNumbers(drift=3, performance=1)
    new = ModelDetector(REF, settings)
    new.continue_numbering(old.next_numbers())
    assert [e.window_seq for e in new.update(_rows(20))] == [3, 4]
    assert [r.window_seq for r in new.observe_labels(ones, ones)] == [1]
    # The numbering survives a checkpoint as before (the windower's next number is in it).
    assert ModelDetector.from_bytes(new.to_bytes(), REF, settings).next_numbers() == WindowNumbers(5, 2)


def test_number_floors_keep_the_larger_and_stay_bounded() -> None:
    floors = NumberFloors(limit=2)
    floors.raise_to("a", WindowNumbers(3, 1))
    floors.raise_to("a", WindowNumbers(2, 4))
    floors.raise_to("b", WindowNumbers())  # no window yet: not kept
    assert floors.get("a") == WindowNumbers(3, 4) and dict(floors.items()) == {"a": WindowNumbers(3, 4)}
    floors.raise_to("b", WindowNumbers(1, 0))
    floors.raise_to("c", WindowNumbers(1, 0))  # past the limit: the least recently raised (a) goes
    assert dict(floors.items()) == {"b": WindowNumbers(1, 0), "c": WindowNumbers(1, 0)}
    assert NumberFloors.from_json(floors.to_json()).to_json() == {"b": [1, 0], "c": [1, 0]}
