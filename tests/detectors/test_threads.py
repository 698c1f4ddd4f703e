"""Per-column work on several threads (detectors.threads.Workers) gives what one thread
gives: profiles and windows byte for byte; numpy's error state reaches the helper threads."""

from __future__ import annotations

import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from detectors.columns import Batch
from detectors.evaluation import evaluate_window
from detectors.profiles import ReferenceProfile
from detectors.schema import Schema
from detectors.threads import Workers, map_columns
from detectors.windows.state import WindowLayout, WindowState

SCHEMA = Schema(features={"x": "numeric", "y": "numeric", "z": "numeric", "c": "categorical", "t": "categorical"})


def _frame(n: int, seed: int, shift: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, n)
    x[rng.random(n) < 0.01] = np.nan
    x[rng.integers(0, n, 30)] = rng.choice([np.inf, -np.inf, -0.0, 0.0], 30)
    text = np.array(["a", "b", None, "c", "rare"], dtype=object)
    return pd.DataFrame(
        {
            "x": x,
            "y": rng.integers(0, 5, n).astype(float),
            "z": rng.exponential(1.0 + shift, n),
            "c": pd.array(text[rng.integers(0, 5, n)], dtype="str"),
            "t": text[rng.integers(0, 4, n)],
        }
    )


def test_profiles_windows_and_decisions_on_threads_equal_one_thread() -> None:
    reference = Batch.from_frame(_frame(30_000, 1, 0.0), SCHEMA, default_timestamp=0.0)
    current = Batch.from_frame(_frame(20_000, 2, 0.2), SCHEMA, default_timestamp=0.0)
    assert sorted(reference.codes) == ["c", "t"]  # the categories are counted through codes
    with Workers(2) as pool:
        threaded = ReferenceProfile.from_batch(reference, SCHEMA, version=1, workers=pool)
        plain = ReferenceProfile.from_batch(reference, SCHEMA, version=1)
        assert threaded.to_bytes() == plain.to_bytes()
        layout = WindowLayout(plain, sample_size=5_000)
        windows = WindowState(layout, seed=4), WindowState(layout, seed=4)
        for start in range(0, 20_000, 8_000):  # two batches counted by column, the last 4,000 rows as a matrix
            windows[0].update(current.select(slice(start, start + 8_000)), pool)
            windows[1].update(current.select(slice(start, start + 8_000)))
        assert windows[0].to_bytes() == windows[1].to_bytes()
        # the features of a window tested side by side: the same decision
        assert evaluate_window(windows[0], workers=pool).to_dict() == evaluate_window(windows[1]).to_dict()
        # a window sampling categorical slots: the reservoir takes the rows once they are counted
        coded = WindowLayout(plain, sample_size=5_000, coded_categorical=["c"])
        pair = WindowState(coded, seed=4), WindowState(coded, seed=4)
        pair[0].update(current, pool)
        pair[1].update(current)
        assert pair[0].to_bytes() == pair[1].to_bytes()
        assert pair[0].reservoir.sample[:, -1].min() >= 0  # the precondition: slots were sampled


def _left_to_codes(batch: Batch) -> Batch:
    """``batch`` as a table is read only to be counted: its coded columns not spelled out."""
    inputs = {name: col for name, col in batch.inputs.items() if name not in batch.codes}
    return Batch(timestamps=batch.timestamps, inputs=inputs, status=batch.status, codes=batch.codes)


def test_columns_left_to_their_codes_count_as_spelled_out() -> None:
    spelled = Batch.from_frame(_frame(12_000, 6, 0.0), SCHEMA, default_timestamp=0.0)
    lean = _left_to_codes(spelled)
    assert sorted(lean.codes) == ["c", "t"] and "c" not in lean.inputs  # the precondition
    for name in ("c", "t"):
        assert np.array_equal(lean.column(name), spelled.column(name))  # type: ignore[arg-type]
    want = ReferenceProfile.from_batch(spelled, SCHEMA, version=1)
    assert ReferenceProfile.from_batch(lean, SCHEMA, version=1).to_bytes() == want.to_bytes()
    layout = WindowLayout(want, sample_size=2_000)
    windows = WindowState(layout, seed=1), WindowState(layout, seed=1)
    windows[0].update(lean)
    windows[1].update(spelled)
    assert windows[0].to_bytes() == windows[1].to_bytes()
    # rows of two reads (different codes for the same names): spelled out where they are joined
    other = _left_to_codes(Batch.from_frame(_frame(500, 7, 0.0).iloc[::-1], SCHEMA, default_timestamp=0.0))
    joined = Batch.concat([lean.select(slice(0, 300)), other])
    head, tail = spelled.column("c"), other.column("c")
    assert head is not None and tail is not None and joined.column("c") is not None
    assert joined.column("c").tolist() == [*head[:300].tolist(), *tail.tolist()]  # type: ignore[union-attr]


def test_work_started_on_a_helper_leaves_the_rest_to_the_caller() -> None:
    helper_busy, release = threading.Event(), threading.Event()
    ran_on: dict[int, int] = {}

    def double(i: int) -> int:
        ran_on[i] = threading.get_ident()
        if i == 1:  # the helper's first item holds it until the caller reaches item 2
            helper_busy.set()
            assert release.wait(60)
        if i == 2:
            release.set()
        return 2 * i

    with Workers(2) as workers:
        started = workers.start(double, [1, 2, 3])
        assert helper_busy.wait(60)
        # A map meanwhile: its helper is queued behind the busy one, so the caller does every
        # item and withdraws it instead of waiting (else this would wait for item 1: 60 s, and fail).
        assert workers.map(lambda i: i + 1, range(5)) == [1, 2, 3, 4, 5]
        assert not release.is_set()
        assert started.results() == [2, 4, 6]
    me = threading.get_ident()
    assert ran_on[2] == ran_on[3] == me and ran_on[1] != me


def test_numpy_error_state_reaches_the_helpers_and_errors_come_back() -> None:
    huge = np.array([1e308, 1e308])
    with warnings.catch_warnings(), ThreadPoolExecutor(1) as bare, Workers(2) as workers:
        warnings.simplefilter("error")
        with np.errstate(over="ignore"):
            with pytest.raises(RuntimeWarning, match="overflow"):
                bare.submit(huge.sum).result()  # a plain thread does not see the caller's np.errstate
            assert workers.submit(huge.sum).result() == np.inf
            assert map_columns(workers, np.sum, [huge] * 8) == [np.inf] * 8
        with pytest.raises(RuntimeWarning, match="overflow"):
            workers.map(np.sum, [huge] * 8)
    with pytest.raises(ValueError, match="workers must be an integer >= 1, got 0"):
        Workers(0)


def test_a_number_of_threads_profiles_as_one() -> None:
    batch = Batch.from_frame(_frame(12_000, 3, 0.0), SCHEMA, default_timestamp=0.0)
    want = ReferenceProfile.from_batch(batch, SCHEMA, version=1).to_bytes()
    for workers in (1, 3):
        assert ReferenceProfile.from_batch(batch, SCHEMA, version=1, workers=workers).to_bytes() == want
    with pytest.raises(ValueError, match="workers must be an integer >= 1, got -1"):
        ReferenceProfile.from_batch(batch, SCHEMA, version=1, workers=-1)


def test_the_caller_and_a_helper_share_the_items() -> None:
    barrier = threading.Barrier(2, timeout=60)
    arrived: set[int] = set()

    def square(i: int) -> tuple[int, int]:
        me = threading.get_ident()
        if me not in arrived:
            arrived.add(me)
            barrier.wait()  # each thread's first item waits for the other's: both take a share
        return i * i, me

    with Workers(2) as workers:
        results = workers.map(square, range(6))
    assert [value for value, _ in results] == [0, 1, 4, 9, 16, 25]
    assert threading.get_ident() in {thread for _, thread in results} and len({t for _, t in results}) == 2
