"""The label buffer in the instance checkpoints, written as what changed since the last one
(monitor/label_checkpoints.py), on a real pipeline and a real SQLite store.

After every one of many checkpoints - new predictions across segment boundaries, labels
for old and new ones, evictions by the entry limit, expiry by time-to-live, a model handed
to the Kafka collector, a checkpoint that failed - what the store holds restores exactly
the buffer the checkpoint was taken of (same entries, same order, same values), and a
restart from it recognises retried ids as duplicates.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from support import config

from detectors.sketches import pack, unpack
from monitor.checkpoint_bytes import exact_json, json_chunks, pack_chunks
from monitor.checkpointer import Checkpointer
from monitor.joins import Pending
from monitor.label_checkpoints import SEGMENT_ENTRIES, restore_entries
from monitor.metrics import Metrics
from monitor.model_snapshots import dump_model, load_model
from monitor.pipeline import Pipeline
from monitor.records import Record
from monitor.settings import settings_from_mapping
from monitor.store.database import Store

MODEL = {"features": {"x": {"type": "numeric"}}, "prediction": {"kind": "binary"}}
CAPACITY = 20_000
TTL = 600.0


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def service(tmp_path: Path, clock: Clock, url: str | None = None) -> tuple[Pipeline, Checkpointer, Store, Metrics]:
    """One process's pipeline and checkpointer on the store at ``url`` (SQLite in
    ``tmp_path`` by default; a new one each call: a restart)."""
    data = config(
        tmp_path,
        limits={"label_buffer_size": CAPACITY, "label_ttl_seconds": TTL},
        models={"a": MODEL, "b": MODEL},
    )
    if url is not None:
        data["storage"]["url"] = url
    settings = settings_from_mapping(data)
    metrics = Metrics(CollectorRegistry())
    store = Store(data["storage"]["url"])
    pipeline = Pipeline(settings, metrics, clock=clock)
    return pipeline, Checkpointer(pipeline, store, metrics, "default"), store, metrics


def records(model: str, start: int, n: int) -> list[dict[str, Any]]:
    return [{"model": model, "id": f"{model}{i}", "inputs": {"x": i * 0.5}, "prediction": i % 2} for i in range(start, start + n)]  # fmt: skip


def buffer_of(pipeline: Pipeline) -> tuple[list[tuple[str, str]], list[tuple[Any, float, float, bool]]]:
    """The label buffer's keys and entries, oldest first (white box: the buffer itself)."""
    labels = pipeline._labels
    _, keys, entries = labels.entries_since(labels.head_seq)
    return keys, entries


def stored_buffer(store: Store) -> tuple[list[tuple[str, str]], list[tuple[Any, float, float, bool]]]:
    """What a restart would put back, read without taking the rows."""
    return restore_entries(store.instance_label_segments("default"), {"a", "b"})


def test_the_buffer_restored_is_the_buffer_checkpointed_after_every_incremental_checkpoint(
    tmp_path: Path, store_url: str
) -> None:
    clock = Clock(1_000_000.0)
    pipeline, checkpointer, store, metrics = service(tmp_path, clock, store_url)
    rng = np.random.default_rng(16)
    issued = {"a": 0, "b": 0}
    labelled = 0
    # Batch sizes crossing segment boundaries (4,096 numbers) in every way: 1 record, a few,
    # exactly a segment, more than two, and enough to push the buffer past its 20,000 entries.
    plan = [1, 7, 300, 4096, 5000, 2, 9000, 1, 4096, 12000, 50, 3, 700, 6000, 1, 1, 2500]
    written = []
    for round_, n in enumerate(plan):
        model = "ab"[round_ % 2]
        answer = pipeline.ingest_items(records(model, issued[model], n), "http", clock.now)
        assert answer.accepted == n and answer.duplicates == 0
        issued[model] += n
        # Labels for predictions still held, old and new (entries changed in place), and a
        # partial record completed by its other part (the record-by-record path).
        keys, _ = buffer_of(pipeline)
        picks = sorted(set(rng.choice(len(keys), size=min(len(keys), 40), replace=False).tolist()))
        labels = [{"model": keys[i][0], "id": keys[i][1], "label": 1} for i in picks]
        assert pipeline.ingest_items(labels, "http", clock.now).accepted == len(labels)
        labelled += len(labels)
        extra = f"p{round_}"
        pipeline.ingest_items([{"model": "a", "id": extra, "inputs": {"x": 1.0}}], "http", clock.now)
        pipeline.ingest_items([{"model": "a", "id": extra, "prediction": 1}], "http", clock.now)
        clock.now += 1.0
        if round_ == 5:  # the first rounds' predictions pass their time-to-live
            clock.now += TTL - 5.0
            pipeline.expire()
        assert checkpointer.checkpoint()
        written.append(metrics.registry.get_sample_value("monitor_state_checkpoint_bytes"))
        assert stored_buffer(store) == buffer_of(pipeline), f"after checkpoint {round_ + 1}"

    keys, entries = buffer_of(pipeline)
    # Preconditions: the buffer is full and was evicted from and expired; checkpoints after
    # the first wrote less than the whole buffer; segments of entries gone were deleted.
    assert len(keys) == CAPACITY
    assert sum(issued.values()) + len(plan) > CAPACITY + 10_000
    assert sum(entry[3] for entry in entries) > 0  # labelled entries among them
    segments = store.instance_label_segments("default")
    whole = sum(len(data) for _, data in segments)
    assert written[-3] < whole / 10 and written[-2] < whole / 10  # rounds of one record (and 40 labels)
    numbers = [n for n, _ in segments]
    assert numbers[0] > 0 and numbers == sorted(numbers)
    # The numbers held are those of the entries held, 20,000 in a row: 5 or 6 segments.
    assert 5 <= len(numbers) <= math.ceil(CAPACITY / SEGMENT_ENTRIES) + 1

    # A restart: the same buffer, in the same order; a retry of the last records is duplicates,
    # and a label for a restored prediction joins it.
    restarted, again, _, restarted_metrics = service(tmp_path, Clock(clock.now), store_url)
    assert set(again.restore()) == {"a", "b"}
    assert buffer_of(restarted) == (keys, entries)
    retry = records("b", issued["b"] - 100, 100)
    answer = restarted.ingest_items(retry, "http", clock.now)
    assert (answer.accepted, answer.duplicates) == (100, 100)
    unlabelled = next(key for key, entry in zip(keys, entries, strict=True) if not entry[3])
    restarted.ingest_items([{"model": unlabelled[0], "id": unlabelled[1], "label": 0}], "http", clock.now)
    assert restarted_metrics.registry.get_sample_value("monitor_labels_joined_total", {"model": unlabelled[0]}) == 1
    # Written back at once (the rows were taken as they were read): a second restart has it all too.
    third, third_checkpointer, _, _ = service(tmp_path, Clock(clock.now), store_url)
    assert set(third_checkpointer.restore()) == {"a", "b"}
    assert buffer_of(third) == (keys, entries)


def test_a_model_handed_over_and_a_failed_checkpoint_rewrite_the_buffer_whole(tmp_path: Path, store_url: str) -> None:
    clock = Clock(2_000_000.0)
    pipeline, checkpointer, store, _ = service(tmp_path, clock, store_url)
    for start in range(0, 6000, 1500):
        pipeline.ingest_items(records("a", start, 1500), "http", clock.now)
        pipeline.ingest_items(records("b", start, 1500), "http", clock.now)
        assert checkpointer.checkpoint()
    assert stored_buffer(store) == buffer_of(pipeline)

    # Model b goes to the Kafka collector: its entries leave the buffer (numbered anew) and
    # the next checkpoint holds a's alone.
    pipeline.release("b")
    pipeline.ingest_items(records("a", 6000, 10), "http", clock.now)
    assert checkpointer.checkpoint()
    keys, entries = buffer_of(pipeline)
    assert {key[0] for key in keys} == {"a"} and len(keys) == 6010
    assert restore_entries(store.instance_label_segments("default"), {"a", "b"}) == (keys, entries)

    # A checkpoint that fails (its table is gone: the transaction rolls back) leaves the
    # stored buffer as it was; the next one, once the table is back, writes it whole.
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE instance_label_segments RENAME TO parked"))
    pipeline.ingest_items(records("a", 6010, 5), "http", clock.now)
    with pytest.raises(sa.exc.DBAPIError, match="instance_label_segments"):  # no such table
        checkpointer.checkpoint()
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE parked RENAME TO instance_label_segments"))
    engine.dispose()
    assert restore_entries(store.instance_label_segments("default"), {"a"}) == (keys, entries)
    pipeline.ingest_items(records("a", 6015, 5), "http", clock.now)
    assert checkpointer.checkpoint()
    assert restore_entries(store.instance_label_segments("default"), {"a"}) == buffer_of(pipeline)
    assert [n for n, _ in store.instance_label_segments("default")] == [0, 1]  # rewritten from number 0


def test_pack_chunks_writes_what_unpack_reads() -> None:
    header = {"kind": "x", "n": [1, 2.5, None]}
    arrays = {"f": np.arange(5, dtype="<f8"), "u": np.frombuffer(b"abc", np.uint8)}
    items = [{"k": "v" * (i % 7), "nan": float("nan") if i == 3 else i} for i in range(12_000)]
    chunks = json_chunks(items, [300_000 if i == 5 else 10 for i in range(len(items))], exact_json)
    assert len(chunks) > 4  # encoded in several slices
    data = pack_chunks(header, arrays, {"items": chunks})
    assert chunks == []  # each chunk let go once copied
    got_header, got = unpack(bytes(data))
    assert got_header == header
    assert got["f"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0] and got["u"].tobytes() == b"abc"
    decoded = json.loads(got["items"].tobytes())
    assert math.isnan(decoded[3]["nan"]) and decoded[:3] == items[:3] and decoded[4:] == items[4:]
    # The same bytes as detectors.sketches.pack given the JSON as an array.
    joined = np.frombuffer(exact_json(items), np.uint8)
    assert bytes(data) == pack(header, {**arrays, "items": joined})


def test_partial_records_keep_non_finite_inputs_and_huge_integers(tmp_path: Path) -> None:
    pipeline, _, _, _ = service(tmp_path, Clock(0.0))
    state = pipeline.models["a"]
    parts = [
        Pending(Record(model="a", id="n1", inputs={"x": float("nan")}), 1.0),
        Pending(Record(model="a", id="n2", inputs={"x": float("-inf")}), 2.0),
        Pending(Record(model="a", id="n3", inputs={"x": 2**70}), 3.0),
        Pending(Record(model="a", id="n4", inputs={"x": 0.1}, prediction=1), 4.0),
    ]
    restored, _ = load_model(state, dump_model(state, parts, {}), {})
    assert [(p.record.id, p.arrived) for p in restored] == [("n1", 1.0), ("n2", 2.0), ("n3", 3.0), ("n4", 4.0)]
    assert math.isnan(restored[0].record.inputs["x"]) and restored[1].record.inputs["x"] == float("-inf")
    assert restored[2].record.inputs["x"] == 2**70 and restored[3].record == parts[3].record


def test_model_states_of_format_1_are_still_read(tmp_path: Path) -> None:
    """Checkpoints written before the partial records moved out of the header (format 1)."""
    pipeline, _, _, _ = service(tmp_path, Clock(0.0))
    state = pipeline.models["a"]
    fields = {
        "model": "a", "id": "r1", "version": None, "timestamp": 5.0, "inputs": {"x": 2.0}, "prediction": None,
        "latency_ms": None, "label": None, "segment": None, "has_prediction": False, "has_label": False,
    }  # fmt: skip
    header = {
        "kind": "model_state", "format_version": 1, "model": "a", "reference_version": None, "sinks": {},
        "counts": {"records": 7, "incomplete": 1, "labelled": 0, "windows_evaluated": 0},
        "partials": [[fields, 4.0]], "awaiting": [["r0", 1, 3.0, 3.5, False]],
    }  # fmt: skip
    partials, awaiting = load_model(state, pack(header, {}), {})
    assert state.records == 7 and state.incomplete == 1
    assert [(p.record, p.arrived) for p in partials] == [(Record(**fields), 4.0)]
    assert awaiting == [["r0", 1, 3.0, 3.5, False]]
