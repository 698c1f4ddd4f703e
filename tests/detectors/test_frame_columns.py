"""Batch.from_frame reads columns through numpy arrays and category codes, and gives
exactly the batch that reading the same values one by one gives (Batch.from_columns)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from detectors.columns import Batch
from detectors.frame_columns import frame_list
from detectors.schema import Schema

N = 12


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "f64": [0.5, np.nan, 3.0, -1.0, np.inf, 2.0] * 2,
            "i64": np.arange(N),
            "nullable": pd.array([1, None, 3, 4, None, 6] * 2, dtype="Int64"),
            "bools": [True, False] * 6,
            "text": ["a", None, "b", "a", "c", None] * 2,
            "str_dtype": pd.array(["x", None, "y", "x", "z", "y"] * 2, dtype="string"),
            "arrow": pd.array(["p", None, "q"] * 4, dtype=pd.ArrowDtype(pa.string())),
            "cat": pd.Categorical(["lo", "hi", None, "lo", "hi", "lo"] * 2),
            "floats": [3.0, 0.5, np.nan, 3.0, 2.25, 1.0] * 2,
            "mixed": [True, 1, "1", None, 2.0, {"a": 1}] * 2,
            "text_num": ["1.5", 2.0, None, 3, "x", 4.5] * 2,
        }
    )


NUMERIC = ["f64", "i64", "nullable", "bools", "text_num"]
CATEGORICAL = ["text", "str_dtype", "arrow", "cat", "floats", "mixed", "bools", "i64"]


@pytest.mark.parametrize("kind,columns", [("numeric", NUMERIC), ("categorical", CATEGORICAL)])
def test_frame_path_equals_value_by_value(kind: str, columns: list[str]) -> None:
    frame = _frame()
    for name in columns:
        schema = Schema(features={name: kind})
        fast = Batch.from_frame(frame[[name]], schema, default_timestamp=0.0)
        slow = Batch.from_columns(schema, np.zeros(N), {name: frame_list(frame[name])})
        got, want = fast.inputs[name], slow.inputs[name]
        assert got.dtype == want.dtype, name
        if kind == "numeric":
            np.testing.assert_array_equal(got, want, err_msg=name)
        else:
            assert got.tolist() == want.tolist(), name
        fast_status, slow_status = fast.status.get(name), slow.status.get(name)
        if kind == "numeric" and slow_status is not None and fast_status is None:
            # from raw Python values a NaN is a genuine value; from a numeric column, null
            continue
        assert (None if fast_status is None else fast_status.tolist()) == (
            None if slow_status is None else slow_status.tolist()
        ), name


def test_categories_share_one_string_per_distinct_value() -> None:
    frame = pd.DataFrame({"c": pd.array(["alpha", "beta"] * 50_000, dtype="string")})
    batch = Batch.from_frame(frame, Schema(features={"c": "categorical"}), default_timestamp=0.0)
    column = batch.inputs["c"]
    assert len({id(v) for v in column.tolist()}) == 2  # no Python string per row
    assert column[:3].tolist() == ["alpha", "beta", "alpha"]


def test_a_float64_column_is_read_without_a_copy() -> None:
    values = np.arange(1_000, dtype=np.float64)
    frame = pd.DataFrame({"x": values}, copy=False)
    batch = Batch.from_frame(frame, Schema(features={"x": "numeric"}), default_timestamp=0.0)
    assert np.shares_memory(batch.inputs["x"], frame["x"].to_numpy())


def test_window_category_counts_alike_with_and_without_factorising() -> None:
    from detectors.profiles import ReferenceProfile
    from detectors.windows.state import WindowLayout, WindowState

    rng = np.random.default_rng(3)
    names = np.array([f"c{i}" for i in range(60)] + ["never-seen", None], dtype=object)
    schema = Schema(features={"c": "categorical"})
    reference = ReferenceProfile.from_frame(pd.DataFrame({"c": names[rng.integers(0, 60, 5_000)]}), schema, version=1)
    layout = WindowLayout(reference)
    values = names[rng.integers(0, 62, 6_000)]
    whole, pieces = WindowState(layout), WindowState(layout)
    whole.update(Batch(timestamps=np.zeros(6_000), inputs={"c": values}))  # factorised (>= 1,024 rows)
    for start in range(0, 6_000, 500):  # a dict look-up per value
        pieces.update(Batch(timestamps=np.zeros(500), inputs={"c": values[start : start + 500]}))
    assert whole.counts("c").tolist() == pieces.counts("c").tolist()
    assert whole.quality("c") == pieces.quality("c")
    assert whole.quality("c")["null"] == int(np.sum(values == None))  # noqa: E711


def test_profile_edges_and_counts_equal_numpys_quantiles() -> None:
    from detectors.profiles import numeric_profile

    rng = np.random.default_rng(0)
    for trial in range(500):
        n, bins = int(rng.integers(1, 3_000)), int(rng.integers(1, 25))
        v = rng.integers(0, int(rng.integers(1, 50)), n).astype(float) if trial % 2 else rng.normal(size=n)
        edges = np.unique(np.quantile(v, np.arange(1, bins) / bins, method="inverted_cdf"))
        edges = edges[edges < v.max()]
        counts = np.bincount(np.searchsorted(edges, v, side="left"), minlength=edges.size + 1)
        profile = numeric_profile(v, None, bins=bins)
        assert profile.edges.tolist() == edges.tolist() and profile.counts.tolist() == counts.tolist()


def _coded_frame(n: int, seed: int, new: str = "rare") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    text = np.array(["a", "b", "c", None, "d", new], dtype=object)
    return pd.DataFrame(
        {
            "text": text[rng.integers(0, 6, n)],
            "arrow": pd.array(text[rng.integers(0, 6, n)], dtype=pd.ArrowDtype(pa.string())),
            "cat": pd.Categorical(text[rng.integers(0, 5, n)], categories=["a", "b", "c", "d", "unused"]),
            # NaN is null; 3 and 3.0 are one category, as are 2.5 and 2.50
            "numbers": np.array([3, 3.0, 2.5, np.nan, 7], dtype=object)[rng.integers(0, 5, n)],
            "bools": rng.random(n) < 0.3,
        }
    )


def test_batches_from_frames_carry_the_codes_of_their_category_columns() -> None:
    frame = _coded_frame(3_000, 0)
    schema = Schema(features=dict.fromkeys(frame.columns, "categorical"))
    batch = Batch.from_frame(frame, schema, default_timestamp=0.0)
    assert sorted(batch.codes) == sorted(frame.columns)
    for name, (codes, names) in batch.codes.items():
        assert [names[c] for c in codes.tolist()] == batch.inputs[name].tolist(), name
    mixed = Batch.from_frame(
        pd.DataFrame({"m": [True, 1, "1", {"a": 1}]}), Schema({"m": "categorical"}), default_timestamp=0.0
    )
    assert mixed.codes == {}  # read value by value: no codes
    # rows selected, and batches of one column's chunks joined, keep codes that still hold
    part = batch.select(np.arange(10, 2_000, 7))
    assert [part.codes["text"][1][c] for c in part.codes["text"][0].tolist()] == part.inputs["text"].tolist()
    joined = Batch.concat([part, batch.select(slice(0, 5))])
    assert joined.inputs["text"].tolist() == [*part.inputs["text"].tolist(), *batch.inputs["text"][:5].tolist()]
    assert [joined.codes["text"][1][c] for c in joined.codes["text"][0].tolist()] == joined.inputs["text"].tolist()
    other = Batch.from_frame(_coded_frame(50, 1), schema, default_timestamp=0.0)  # other names: codes dropped
    assert "text" not in Batch.concat([batch, other]).codes
    with pytest.raises(ValueError, match=r"codes\[.text.\] must be integers with shape \(3000,\)"):
        Batch(
            timestamps=np.zeros(3_000),
            inputs={"text": batch.inputs["text"]},
            codes={"text": (np.zeros(2, np.intp), batch.codes["text"][1])},
        )


def test_windows_count_codes_as_they_count_values() -> None:
    from detectors.profiles import ReferenceProfile
    from detectors.windows.state import WindowLayout, WindowState

    frame = _coded_frame(20_000, 2)
    schema = Schema(features=dict.fromkeys(frame.columns, "categorical"))
    layout = WindowLayout(ReferenceProfile.from_frame(frame, schema, version=1, top_k=3, max_tracked_categories=2))
    current = Batch.from_frame(_coded_frame(9_000, 3, new="never seen"), schema, default_timestamp=0.0)
    with_codes, without = WindowState(layout), WindowState(layout)
    for start in range(0, 9_000, 4_000):
        rows = current.select(slice(start, start + 4_000))
        with_codes.update(rows)
        without.update(Batch(timestamps=rows.timestamps, inputs=rows.inputs, status=rows.status))
    for name in frame.columns:
        assert with_codes.counts(name).tolist() == without.counts(name).tolist(), name
        assert with_codes.quality(name) == without.quality(name), name
    assert with_codes.quality("text")["unseen"] > 0 and with_codes.quality("numbers")["null"] > 0


def test_large_batches_bin_by_channel_as_small_ones_bin_together() -> None:
    from detectors.profiles import ReferenceProfile
    from detectors.windows.state import _BIN_BY_CHANNEL_FROM, WindowLayout, WindowState

    rng = np.random.default_rng(4)
    n = 3 * _BIN_BY_CHANNEL_FROM
    schema = Schema(features={"x": "numeric", "y": "numeric", "z": "numeric"})

    def frame(size: int, shift: float) -> pd.DataFrame:
        x = rng.normal(shift, 1.0, size)
        x[rng.random(size) < 0.01] = np.nan
        x[rng.integers(0, size, 20)] = rng.choice([np.inf, -np.inf], 20)
        return pd.DataFrame({"x": x, "y": rng.integers(0, 4, size).astype(float), "z": rng.exponential(1.0, size)})

    layout = WindowLayout(ReferenceProfile.from_frame(frame(5_000, 0.0), schema, version=1, bins=7))
    big, small = WindowState(layout), WindowState(layout)
    batch = Batch.from_frame(frame(n, 0.3), schema, default_timestamp=0.0)
    big.update(batch)
    for start in range(0, n, _BIN_BY_CHANNEL_FROM // 4):
        small.update(batch.select(slice(start, start + _BIN_BY_CHANNEL_FROM // 4)))
    for name in schema.features:
        assert big.counts(name).tolist() == small.counts(name).tolist(), name
        assert big.quality(name) == small.quality(name), name
        assert big.value_range(name) == small.value_range(name), name
        # the reservoir reads a large batch's rows from its columns, a small one's from a matrix
        assert big.sample(name).tobytes() == small.sample(name).tobytes(), name
    assert (big.reservoir.seen, big.reservoir.size) == (n, layout.sample_size)
    finite = batch.inputs["x"][np.isfinite(batch.inputs["x"])]
    edges = layout.edges[layout.num_index["x"]]
    assert big.counts("x").tolist() == np.bincount(np.searchsorted(edges, finite), minlength=edges.size + 1).tolist()
