"""The join and label buffers' byte budgets: the estimate of an entry's size, its
calibration against traced memory, exact byte accounting and the order of evictions."""

from __future__ import annotations

import gc
import random
import tracemalloc
from sys import getsizeof
from typing import Any

import orjson
import pytest

from monitor.buffer_bytes import (
    JOIN_ENTRY_BYTES,
    LABEL_ENTRY_BYTES,
    NUMBER_BYTES,
    label_entries_bytes,
    label_entry_bytes,
    record_bytes,
    value_bytes,
)
from monitor.joins import JoinBuffer, Pending
from monitor.label_buffer import LabelBuffer
from monitor.records import Record


# -- the estimate ----------------------------------------------------------------------------
def test_strings_count_their_length_times_their_character_width_numbers_a_constant() -> None:
    # CPython 3.11, 64-bit: a string's header, then 1, 2 or 4 bytes per character.
    assert value_bytes("x" * 1000) == 1049
    assert value_bytes("é" * 1000) == 1073
    assert value_bytes("€" * 1000) == 2074
    assert value_bytes("😀" * 1000) == 4076  # a wide string cannot pass at a quarter of its cost
    assert NUMBER_BYTES == 32
    assert {value_bytes(v) for v in (0.5, 7, 2**62, True, None)} == {NUMBER_BYTES}


def test_a_dict_is_its_table_plus_its_keys_and_values() -> None:
    flat = {"a": "xyz", "b": 1}
    assert value_bytes(flat) == getsizeof(flat) + 2 * 50 + 52 + NUMBER_BYTES == 368
    nested = {"a": {"b": [1.0, "x"]}}
    inner = getsizeof(nested["a"]) + 50 + getsizeof(nested["a"]["b"]) + NUMBER_BYTES + 50
    assert value_bytes(nested) == getsizeof(nested) + 50 + inner


def test_a_record_and_a_label_entry() -> None:
    record = Record(model="m", id="r1", inputs={"f": "x" * 10}, label="yes", has_label=True, segment={"r": "eu"})
    inputs, segment = getsizeof(record.inputs) + 50 + 59, getsizeof(record.segment) + 50 + 51
    assert record_bytes(record) == JOIN_ENTRY_BYTES + 50 + 51 + inputs + 52 + segment
    assert label_entry_bytes(("m", "r1"), 0.5) == LABEL_ENTRY_BYTES + 50 + 51 + NUMBER_BYTES
    # Column-wise, the same sizes, whatever the batch holds (each shape takes its own path).
    batches: list[tuple[list[tuple[str, str]], list[Any]]] = [
        ([("m", "r1"), ("m", "request-2")], [0.5, 1]),
        ([("m", "r1"), ("m", "request-2")], ["yes", "no" * 40]),
        ([("m", "r1"), ("model", "request-2"), ("m", "r3")], [0.5, {"a": 0.1}, "yes"]),
        ([("m", "r1"), ("m", "réquest-2"), ("m", "😀")], ["é", "€", 3]),  # wide characters
        ([], []),
    ]
    for keys, predictions in batches:
        want = [label_entry_bytes(k, p) for k, p in zip(keys, predictions, strict=True)]
        assert label_entries_bytes(keys, predictions).tolist() == want


# -- calibration: the estimate holds at least the traced memory, and not much more ----------
def _traced(build: Any) -> tuple[int, int]:
    """(bytes traced while ``build()`` ran and still held after it, its estimate)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        held, estimate = build()
        gc.collect()
        traced = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    del held
    return traced, estimate


def _label_entries(columnar: bool, n: int) -> tuple[LabelBuffer, int]:
    buffer = LabelBuffer(n, 1e9)
    estimate = 0
    for b in range(n // 1000):
        body = [{"model": "m", "id": f"req-{b * 1000 + j:010d}", "p": j * 0.001, "t": 1.7e9 + j} for j in range(1000)]
        items = orjson.loads(orjson.dumps(body))  # distinct objects, as a request's
        if columnar:
            keys = [("m", item["id"]) for item in items]
            predictions = [item["p"] for item in items]
            buffer.remember_all(keys, predictions, [item["t"] for item in items], None, float(b))
            estimate += sum(label_entries_bytes(keys, predictions))
        else:
            for item in items:
                key = (item["model"], item["id"])
                buffer.remember_values(key, item["p"], item["t"], False, float(b))
                estimate += label_entry_bytes(key, item["p"])
    return buffer, estimate


def _join_entries(n: int, numbers: int, strings: int, length: int, prediction: bool = False) -> tuple[JoinBuffer, int]:
    buffer = JoinBuffer(10**9, 1e9)
    estimate = 0
    for i in range(n):
        inputs = {
            **{f"num_{j:04d}": i + j * 0.5 for j in range(numbers)},
            **{f"cat_{j:04d}": "c" * length for j in range(strings)},
        }
        item = orjson.loads(
            orjson.dumps({"model": "m", "id": f"req-{i:010d}", "t": 1.7e9 + i, "inputs": inputs, "p": 0.5 + i})
        )
        if prediction:
            record = Record(item["model"], item["id"], timestamp=item["t"], prediction=item["p"], has_prediction=True)
        else:
            record = Record(item["model"], item["id"], timestamp=item["t"], inputs=item["inputs"], latency_ms=1.0 + i)
        buffer.offer(record, float(i))
        estimate += record_bytes(record)
    return buffer, estimate


@pytest.mark.parametrize(
    "case",
    [
        "label entries, columnar",
        "label entries, one by one",
        "join: prediction only",
        "join: 25 features",
        "join: 5 features",
        "join: 1,024 features of 1,000 characters",
    ],
)
def test_the_estimate_holds_the_traced_memory(case: str) -> None:
    builds = {
        "label entries, columnar": lambda: _label_entries(True, 20_000),
        "label entries, one by one": lambda: _label_entries(False, 5_000),
        "join: prediction only": lambda: _join_entries(5_000, 0, 0, 0, prediction=True),
        "join: 25 features": lambda: _join_entries(2_000, 20, 5, 8),
        "join: 5 features": lambda: _join_entries(2_000, 4, 1, 8),
        "join: 1,024 features of 1,000 characters": lambda: _join_entries(20, 0, 1024, 1000),
    }
    traced, estimate = _traced(builds[case])
    # Never less than what is really held; at most twice it (feature names that the JSON
    # parser shares between records are counted for each record).
    assert traced <= estimate <= 2 * traced, (traced, estimate, estimate / traced)


# -- the join buffer ---------------------------------------------------------------------------
def _part(i: int, length: int = 100, **fields: Any) -> Record:
    return Record(model="m", id=f"{i:03d}", inputs={"f": "x" * length}, **fields)


def test_join_buffer_counts_bytes_and_evicts_the_oldest_first() -> None:
    size = record_bytes(_part(0))
    assert size == JOIN_ENTRY_BYTES + 50 + 52 + getsizeof({"f": ""}) + 50 + 149
    buffer = JoinBuffer(capacity=100, ttl=60.0, max_bytes=3 * size + size // 2)
    assert [buffer.offer(_part(i), float(i))[2] for i in range(3)] == [[], [], []]
    assert buffer.bytes == 3 * size
    _, _, evicted = buffer.offer(_part(3), 3.0)
    assert [(cause, r.id) for cause, r in evicted] == [("bytes", "000")]
    _, _, evicted = buffer.offer(_part(4, length=100 + size), 4.0)  # room for it: two go
    assert [(cause, r.id) for cause, r in evicted] == [("bytes", "001"), ("bytes", "002")]
    assert list(buffer._pending) == [("m", "003"), ("m", "004")]
    assert buffer.bytes == size + record_bytes(_part(4, length=100 + size)) == 3 * size
    # The entry limit still holds, counted apart.
    small = JoinBuffer(capacity=2, ttl=60.0, max_bytes=10**6)
    evicted = [small.offer(_part(i), float(i))[2] for i in range(3)][2]
    assert [(cause, r.id) for cause, r in evicted] == [("entries", "000")] and small.bytes == 2 * size


def test_join_buffer_refuses_a_record_larger_than_its_budget_and_keeps_the_others() -> None:
    size = record_bytes(_part(0))
    buffer = JoinBuffer(capacity=100, ttl=60.0, max_bytes=3 * size)
    for i in range(3):
        buffer.offer(_part(i), float(i))
    big = _part(9, length=3 * size)
    assert buffer.offer(big, 9.0) == (None, [], [("oversize", big)])
    assert list(buffer._pending) == [("m", "000"), ("m", "001"), ("m", "002")] and buffer.bytes == 3 * size


def test_join_buffer_counts_what_a_merged_part_adds() -> None:
    size = record_bytes(_part(0))
    buffer = JoinBuffer(capacity=100, ttl=60.0, max_bytes=4 * size)
    for i in range(3):
        buffer.offer(_part(i), float(i))
    label = Record(model="m", id="002", label="y" * size, has_label=True)
    completed, repeated, evicted = buffer.offer(label, 3.0)  # 002 grows past the budget: 000 goes
    assert (completed, repeated, [(c, r.id) for c, r in evicted]) == (None, [], [("bytes", "000")])
    grown = size + value_bytes("y" * size)
    assert buffer._pending[("m", "002")].size == grown and buffer.bytes == size + grown
    # A part that makes its record larger than the whole budget: that record leaves, alone.
    huge = Record(model="m", id="001", label="z" * 4 * size, has_label=True)
    _, _, evicted = buffer.offer(huge, 4.0)
    assert [(c, r.id, r.label == huge.label) for c, r in evicted] == [("oversize", "001", True)]
    assert buffer.bytes == grown
    # Completion takes the record out, with its bytes.
    completed, _, _ = buffer.offer(Record(model="m", id="002", prediction=1, has_prediction=True), 5.0)
    assert completed is not None and completed.id == "002" and buffer.bytes == 0 and len(buffer) == 0


def test_join_buffer_bytes_follow_expiry_drain_removal_and_put_back() -> None:
    size = record_bytes(_part(0))
    buffer = JoinBuffer(capacity=100, ttl=10.0, max_bytes=2 * size + size // 2)
    buffer.offer(_part(0), 0.0)
    buffer.offer(_part(1), 1.0)
    assert [r.id for r in buffer.expire(10.5)] == ["000"] and buffer.bytes == size
    other = Record(model="o", id="1", inputs={"f": 1})
    assert size // 2 < record_bytes(other) <= size + size // 2  # with 001 it fits; with 001 and 002 not
    buffer.offer(other, 3.0)
    taken = buffer.of_model("m")
    buffer.remove_model("m")
    assert buffer.bytes == record_bytes(other)
    # Put back (sizes recomputed: a checkpoint carries none) within the budget: the oldest
    # go first, a record over the whole budget is not taken.
    restored = [Pending(p.record, p.arrived) for p in taken]
    restored += [Pending(_part(2), 2.0), Pending(_part(7, length=3 * size), 9.0)]
    evicted = buffer.put_back(restored)
    assert [(c, r.id) for c, r in evicted] == [("bytes", "1"), ("oversize", "007")]
    assert list(buffer._pending) == [("m", "001"), ("m", "002")] and buffer.bytes == 2 * size
    assert len(buffer.drain()) == 2 and buffer.bytes == 0


# -- the label buffer --------------------------------------------------------------------------
def _key(i: int) -> tuple[str, str]:
    return ("m", f"{i:03d}")


def test_label_buffer_counts_bytes_and_evicts_the_oldest_first() -> None:
    entry = label_entry_bytes(_key(0), 0.5)
    assert entry == LABEL_ENTRY_BYTES + 50 + 52 + NUMBER_BYTES
    buffer = LabelBuffer(capacity=100, ttl=50.0, max_bytes=3 * entry + entry // 2)
    assert buffer.remember_all([_key(0), _key(1)], [0.5, 0.5], [1.0, 1.0], [True, False], 1.0) == {}
    assert buffer.remember_values(_key(2), 0.5, 2.0, False, 2.0) == {}
    assert buffer.bytes == 3 * entry
    # Two more: 000 (labelled: not lost for a label) and 001 make room.
    assert buffer.remember_all([_key(3), _key(4)], [0.5, 0.5], [3.0, 3.0], None, 3.0) == {"bytes": [_key(1)]}
    assert buffer._order[buffer._head :] == [_key(2), _key(3), _key(4)] and buffer.bytes == 3 * entry
    # A larger one, one record at a time: it pushes out as many as its size needs.
    wide = "w" * (2 * entry)
    assert buffer.remember_values(_key(5), wide, 4.0, False, 4.0) == {"bytes": [_key(2), _key(3), _key(4)]}
    assert buffer.bytes == label_entry_bytes(_key(5), wide) and len(buffer) == 1
    # The entry limit still holds, counted apart.
    small = LabelBuffer(capacity=2, ttl=50.0, max_bytes=10**6)
    assert small.remember_all([_key(i) for i in range(3)], [0, 0, 0], [1.0] * 3, None, 1.0) == {"entries": [_key(0)]}
    assert small.bytes == 2 * label_entry_bytes(_key(1), 0)


def test_label_buffer_refuses_an_entry_larger_than_its_budget() -> None:
    entry = label_entry_bytes(_key(0), 0.5)
    buffer = LabelBuffer(capacity=100, ttl=50.0, max_bytes=3 * entry)
    huge = "h" * (3 * entry)
    keys = [_key(i) for i in range(4)]
    lost = buffer.remember_all(keys, [0.5, huge, 0.5, huge], [1.0] * 4, [False, False, False, True], 1.0)
    assert lost == {"oversize": [_key(1)]}  # 003 was labelled: nothing lost for a label
    assert buffer._order[buffer._head :] == [_key(0), _key(2)] and buffer.bytes == 2 * entry
    assert buffer.remember_values(_key(5), huge, 2.0, False, 2.0) == {"oversize": [_key(5)]}
    assert _key(5) not in buffer and buffer.bytes == 2 * entry


def test_label_buffer_bytes_follow_expiry_removal_and_put_back() -> None:
    entry = label_entry_bytes(_key(0), 0.5)
    buffer = LabelBuffer(capacity=100, ttl=50.0, max_bytes=4 * entry)
    buffer.remember_all([_key(0), _key(1)], [0.5, 0.5], [1.0, 1.0], None, 1.0)
    buffer.remember_values(("o", "1"), 0.5, 2.0, False, 2.0)
    assert buffer.expire(51.5) == [_key(0), _key(1)] and buffer.bytes == label_entry_bytes(("o", "1"), 0.5)
    buffer.remember_all([_key(2), _key(3)], [0.5, 0.5], [60.0, 60.0], None, 60.0)
    entries = buffer.entries_of("m")
    buffer.remove_model("m")
    assert buffer.bytes == label_entry_bytes(("o", "1"), 0.5)
    buffer.remember_values(_key(9), 0.5, 61.0, False, 61.0)
    # Put back before the others, as the oldest: over the budget they are the first to go.
    extra = [["004", 0.5, 0.0, 0.0, False], ["005", "h" * 5 * entry, 0.0, 0.0, False]]
    assert buffer.put_back("m", [*entries, *extra]) == {"oversize": [_key(5)], "bytes": [_key(2)]}
    assert buffer._order[buffer._head :] == [_key(3), _key(4), ("o", "1"), _key(9)]
    assert buffer.bytes == 3 * entry + label_entry_bytes(("o", "1"), 0.5)


@pytest.mark.parametrize("capacity", [10_000, 40])
def test_label_buffer_batches_evict_as_one_record_at_a_time(capacity: int) -> None:
    """remember_all holds the same entries and loses the same keys as one remember_values
    per record, with the byte budget binding (and, with capacity 40, the entry limit too)."""
    rng = random.Random(5)
    budget = 40 * LABEL_ENTRY_BYTES
    batched = LabelBuffer(capacity=capacity, ttl=1e9, max_bytes=budget)
    single = LabelBuffer(capacity=capacity, ttl=1e9, max_bytes=budget)
    n = 0
    for step in range(300):
        size = rng.randint(1, 60)
        keys = [("m", str(n + i)) for i in range(size)]
        n += size
        predictions = [rng.choice([0.5, 1, "c" * rng.randint(0, 3 * LABEL_ENTRY_BYTES)]) for _ in keys]
        labelled = [rng.random() < 0.2 for _ in keys]
        got = batched.remember_all(
            keys, predictions, [float(step)] * size, labelled, float(step), ["m", None][step % 2]
        )
        want: dict[str, list] = {}
        for key, prediction, flag in zip(keys, predictions, labelled, strict=True):
            for cause, lost in single.remember_values(key, prediction, float(step), flag, float(step)).items():
                want.setdefault(cause, []).extend(lost)
        assert batched._awaiting == single._awaiting and batched.bytes == single.bytes <= budget
        assert sorted(k for lost in got.values() for k in lost) == sorted(k for lost in want.values() for k in lost)
        if capacity == 10_000:  # only the byte budget binds: the same causes too
            assert got == want
        held = batched._order[batched._head :]
        assert batched.bytes == sum(label_entry_bytes(k, batched._awaiting[k][0]) for k in held)
