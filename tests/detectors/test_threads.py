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
