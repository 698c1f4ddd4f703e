"""The pipeline: counting, joining partial records by (model, id), labels, bounds."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry

from detectors.profiles import ReferenceProfile
from monitor.metrics import Metrics
from monitor.pipeline import PIPELINE_SOURCE, DeadLetterItem, Pipeline
from monitor.records import Reason, Record, Rejection
from monitor.settings import settings_from_mapping


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(clock: Clock, **limits) -> tuple[Pipeline, CollectorRegistry, list[DeadLetterItem]]:
    settings = settings_from_mapping({"models": {"m": {"features": {"x": {}}}}, "limits": limits})
    registry = CollectorRegistry()
    letters: list[DeadLetterItem] = []
    return Pipeline(settings, Metrics(registry), dead_letters=letters.extend, clock=clock), registry, letters


def value(registry: CollectorRegistry, name: str, **labels) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def inputs(i: int, x: float = 1.0) -> Record:
    return Record(model="m", id=str(i), inputs={"x": x})


def prediction(i: int, p: float = 0.5) -> Record:
    return Record(model="m", id=str(i), prediction=p, has_prediction=True)


def label(i: int, y: int = 1) -> Record:
    return Record(model="m", id=str(i), label=y, has_label=True)


def complete(i: int | None) -> Record:
    return Record(model="m", id=None if i is None else str(i), inputs={"x": 1}, prediction=1, has_prediction=True)


def test_complete_records_pass_straight_through(clock: Clock) -> None:
    pipeline, registry, _ = make(clock)
    result = pipeline.ingest([complete(i) for i in range(5)] + [complete(None)], [], "http")
    assert (result.accepted, result.duplicates) == (6, 0)
    assert pipeline.models["m"].records == 6
    assert value(registry, "monitor_records_accepted_total", model="m", source="http") == 6
    assert value(registry, "monitor_records_joined_total", model="m") == 6
    assert pipeline.buffered == 0


def test_parts_join_in_any_order_and_across_calls(clock: Clock) -> None:
    pipeline, registry, _ = make(clock)
    pipeline.ingest([inputs(1), prediction(2)], [], "cloudevents")
    assert pipeline.buffered == 2 and pipeline.models["m"].records == 0
    pipeline.ingest([prediction(1), inputs(2)], [], "cloudevents")
    assert pipeline.buffered == 0 and pipeline.models["m"].records == 2
    assert value(registry, "monitor_records_joined_total", model="m") == 2


def test_labels_join_early_late_and_once(clock: Clock) -> None:
    pipeline, registry, _ = make(clock)
    pipeline.ingest([label(1), complete(1)], [], "http")  # label first, then the record
    pipeline.ingest([complete(2)], [], "http")
    clock.now += 3600  # an hour later: still within the label time-to-live
    result = pipeline.ingest([label(2), label(2), label(3)], [], "http")
    assert result.duplicates == 1  # the second label for id 2
    assert pipeline.models["m"].labelled == 2
    assert value(registry, "monitor_labels_joined_total", model="m") == 2
    clock.now += 61  # label 3 never meets a prediction
    pipeline.expire()
    assert value(registry, "monitor_labels_unmatched_total", model="m") == 1
    deltas = pipeline.take_count_deltas()
    assert deltas[("m", PIPELINE_SOURCE)]["labels_joined"] == 2
    assert deltas[("m", PIPELINE_SOURCE)]["labels_unmatched"] == 1
    assert deltas[("m", PIPELINE_SOURCE)]["duplicates"] == 1


def test_duplicates_are_counted_not_doubled(clock: Clock) -> None:
    pipeline, registry, _ = make(clock)
    pipeline.ingest([complete(1), complete(1), inputs(2), inputs(2), prediction(2), prediction(2)], [], "http")
    assert pipeline.models["m"].records == 2
    assert value(registry, "monitor_records_duplicate_total", model="m") == 3


def test_ttl_releases_incomplete_records_counted(clock: Clock) -> None:
    pipeline, registry, _ = make(clock, join_ttl_seconds=10)
    pipeline.ingest([inputs(1), prediction(2)], [], "http")
    clock.now += 9.9
    pipeline.expire()
    assert pipeline.buffered == 2
    clock.now += 0.2
    pipeline.expire()
    assert pipeline.buffered == 0
    assert pipeline.models["m"].incomplete == 2 and pipeline.models["m"].records == 0
    assert value(registry, "monitor_join_incomplete_total", model="m", missing="prediction") == 1
    assert value(registry, "monitor_join_incomplete_total", model="m", missing="inputs") == 1


def test_full_join_buffer_evicts_oldest_counted(clock: Clock) -> None:
    pipeline, registry, _ = make(clock, join_buffer_size=3)
    pipeline.ingest([inputs(i) for i in range(5)], [], "http")
    assert pipeline.buffered == 3
    assert value(registry, "monitor_join_evicted_total", model="m", cause="entries") == 2
    assert pipeline.models["m"].incomplete == 2
    # 0 was evicted, so its prediction waits (evicting 2); 4 is still there and completes.
    pipeline.ingest([prediction(0), prediction(4)], [], "http")
    assert (pipeline.models["m"].records, pipeline.models["m"].incomplete, pipeline.buffered) == (1, 3, 2)


def test_label_buffer_is_bounded(clock: Clock) -> None:
    pipeline, registry, _ = make(clock, label_buffer_size=2)
    pipeline.ingest([complete(i) for i in range(3)], [], "http")
    assert value(registry, "monitor_label_buffer_evicted_total", model="m", cause="entries") == 1
    assert value(registry, "monitor_label_buffer_records") == 2
    pipeline.ingest([label(0)], [], "http")  # its prediction is gone: waits, then unmatched
    clock.now += 61
    pipeline.expire()
    assert value(registry, "monitor_labels_unmatched_total", model="m") == 1


def test_drain_loses_nothing(clock: Clock) -> None:
    pipeline, _, _ = make(clock)
    pipeline.ingest([inputs(i) for i in range(10)] + [complete(99)], [], "http")
    pipeline.drain()
    state = pipeline.models["m"]
    assert (state.records, state.incomplete, pipeline.buffered) == (1, 10, 0)


def test_rejections_are_counted_and_dead_lettered(clock: Clock) -> None:
    pipeline, registry, letters = make(clock)
    rejections = [
        Rejection(0, "model", Reason.UNKNOWN_MODEL, "model 'zzz' is not configured", {"model": "zzz"}, "zzz"),
        Rejection(1, "inputs.x", Reason.WRONG_TYPE, "must be ...", {"model": "m"}, "m"),
    ]
    result = pipeline.ingest([complete(1)], rejections, "http", raw_bytes=b"raw")
    assert result.accepted == 1 and len(result.rejected) == 2
    # Unknown model names never become label values.
    assert (
        value(registry, "monitor_records_rejected_total", model="_unknown", source="http", reason="unknown_model") == 1
    )
    assert value(registry, "monitor_records_rejected_total", model="m", source="http", reason="wrong_type") == 1
    assert value(registry, "monitor_records_received_total", model="m", source="http") == 2
    assert [(x.rejection.index, x.source, x.raw_bytes) for x in letters] == [(0, "http", b"raw"), (1, "http", b"raw")]
    deltas = pipeline.take_count_deltas()
    assert deltas[("m", "http")]["received"] == 2 and deltas[("m", "http")]["rejected"] == 1
    assert deltas[("_unknown", "http")]["rejected"] == 1
    assert pipeline.take_count_deltas() == {}
    pipeline.restore_count_deltas(deltas)
    assert pipeline.take_count_deltas() == deltas


def test_count_deltas_are_taken_by_source(clock: Clock) -> None:
    # The Kafka collector writes its own with its checkpoints; the periodic flush the rest.
    def accepted(deltas: dict[tuple[str, str], dict[str, int]]) -> dict[tuple[str, str], int]:
        return {key: counts["accepted"] for key, counts in deltas.items() if counts["accepted"]}

    pipeline, _, _ = make(clock)
    pipeline.ingest([complete(1), complete(2)], [], "kafka")
    pipeline.ingest([complete(3)], [], "http")
    assert accepted(pipeline.take_count_deltas(besides="kafka")) == {("m", "http"): 1}
    pipeline.ingest([complete(4)], [], "http")
    assert accepted(pipeline.take_count_deltas("kafka")) == {("m", "kafka"): 2}
    pipeline.ingest([complete(5)], [], "kafka")
    pipeline.drop_count_deltas("m", "kafka")  # a checkpoint failed: those records are read again
    assert accepted(pipeline.take_count_deltas()) == {("m", "http"): 1}


# -- ingest_items: validation and ingestion of decoded items, columnar for batches ---------
def _item(model: str, i: int | None, **extra) -> dict:
    item = {
        "model": model, "timestamp": 1_700_000_000 + (i or 0) / 8, "latency_ms": 2.5 + (i or 0) % 3,
        "inputs": {"x": None if i is not None and i % 11 == 0 else (i or 0) * 0.5, "c": ["a", "b", 3][(i or 0) % 3]},
        "prediction": (i or 0) % 2,
    }  # fmt: skip
    if i is not None:
        item["id"] = str(i)
    item.update(extra)
    return {k: v for k, v in item.items() if v is not None or k == "inputs"}


def _part(model: str, i: int, part: str, value) -> dict:
    return {"model": model, "id": str(i), part: value}


def _calls() -> list[list]:
    """Calls mixing every case: new, repeated and re-sent ids, partial parts before and
    after their counterparts, labels, two models interleaved, rejections, evictions."""
    calls: list[list] = [[_item("m", i) for i in range(30)] + [_item("m", None) for _ in range(5)]]
    calls.append(
        [_item("m", 5), _item("m", 31), _part("m", 100, "inputs", {"x": 1.0, "c": "a"}), _item("m", 32)]
        + [_part("m", 100, "prediction", 1), _part("m", 3, "label", 1), _item("m", 200), _item("m", 200)]
        + [_item("m2" if i % 2 else "m", 300 + i) for i in range(12)]
        + [{"model": "m", "inputs": 1}, "junk", _item("m", 33, label=1), _item("m", 34, extra=1)]
        + [_part("m", 400, "prediction", 0.5), _item("m", 35, inputs={"x": "7", "c": "b"})]
    )
    calls.append(
        [_item("m", 400), _item("m", 100), _part("m", 33, "label", 0)] + [_item("m", i) for i in range(36, 60)]
    )
    calls.append(
        [_item("m", i, id=i) for i in range(60, 70)] + [_part("m", 31, "label", 0), _part("m", 32, "label", 1)]
    )
    calls.append([_item("m", i) for i in range(70, 150)] + [_part("m", 500 + i, "inputs", {"x": 1}) for i in range(25)])
    calls.append([_item("m", i) for i in range(150, 160)])  # single-model batch of new ids, buffers full
    calls.append([_item("m", 155)])  # one item: the item-by-item path
    return calls


def _make_for_items(clock: Clock) -> tuple[Pipeline, CollectorRegistry, list[DeadLetterItem]]:
    model = {
        "features": {"x": {"type": "numeric"}, "c": {"type": "categorical"}},
        "prediction": {"kind": "binary"},
        "reference": {"from_first_records": 1_000_000},  # every batch fed is kept (warm-up)
    }
    settings = settings_from_mapping(
        {"models": {"m": model, "m2": model}, "limits": {"label_buffer_size": 50, "join_buffer_size": 20}}
    )
    registry = CollectorRegistry()
    letters: list[DeadLetterItem] = []
    return Pipeline(settings, Metrics(registry), dead_letters=letters.extend, clock=clock), registry, letters


def _state(pipeline: Pipeline, registry: CollectorRegistry, letters: list[DeadLetterItem]) -> dict:
    samples = sorted(
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    )
    models = {
        name: (state.records, state.incomplete, state.labelled, [len(b) for b in state._warmup])
        for name, state in pipeline.models.items()
    }
    return {
        "samples": samples,
        "models": models,
        "labels": list(pipeline._labels._awaiting.items()),
        "joins": [(key, repr(p.record), p.arrived) for key, p in pipeline._joins._pending.items()],
        "deltas": pipeline.take_count_deltas(),
        "letters": [(d.source, d.rejection.to_dict(), d.rejection.model) for d in letters],
    }


def _assert_same_batches(a: Pipeline, b: Pipeline) -> None:
    import numpy as np

    for name in a.models:
        for x, y in zip(a.models[name]._warmup, b.models[name]._warmup, strict=True):
            np.testing.assert_array_equal(x.timestamps, y.timestamps)
            for ch in x.inputs:
                np.testing.assert_array_equal(x.inputs[ch], y.inputs[ch])
            np.testing.assert_array_equal(x.prediction, y.prediction)
            np.testing.assert_array_equal(x.latency_ms, y.latency_ms)
            assert x.status.keys() == y.status.keys()
            for ch in x.status:
                np.testing.assert_array_equal(x.status[ch], y.status[ch])


def test_ingest_items_is_validate_then_ingest(clock: Clock) -> None:
    """Same answers, counts, metrics, buffers, dead letters and detector batches as
    validating item by item and calling ingest."""
    columnar, registry_a, letters_a = _make_for_items(clock)
    itemwise, registry_b, letters_b = _make_for_items(clock)
    for n, items in enumerate(_calls()):
        clock.now += 1
        got = columnar.ingest_items(items, "http", clock.now)
        outcomes = [itemwise.validator.validate(item, i, clock.now) for i, item in enumerate(items)]
        records = [o for o in outcomes if isinstance(o, Record)]
        rejections = [o for o in outcomes if isinstance(o, Rejection)]
        want = itemwise.ingest(records, rejections, "http")
        assert got.to_dict() == want.to_dict(), n
        assert _state(columnar, registry_a, letters_a) == _state(itemwise, registry_b, letters_b), n
    columnar.drain()
    itemwise.drain()
    assert _state(columnar, registry_a, letters_a) == _state(itemwise, registry_b, letters_b)
    _assert_same_batches(columnar, itemwise)
    assert (
        sum(len(b) for b in columnar.models["m"]._warmup)
        == columnar.models["m"].records + columnar.models["m"].incomplete
    )


def test_ingest_items_keeps_the_indices_and_the_collectors_rejections(clock: Clock) -> None:
    pipeline, _, letters = make(clock)
    earlier = Rejection(1, "", Reason.INVALID_JSON, "line 2 is not valid JSON", "{")
    items = [{"model": "m", "inputs": {"x": i}, "prediction": 1} for i in range(9)] + [{"model": "nope"}]
    result = pipeline.ingest_items(items, "kafka", 5.0, indices=[0, *range(2, 11)], rejections=[earlier])
    assert result.accepted == 9 and [r.index for r in result.rejected] == [1, 10]
    assert [d.rejection.index for d in letters] == [1, 10] and {d.source for d in letters} == {"kafka"}
    assert pipeline.models["m"].records == 9


def test_label_buffer_keeps_arrival_order_through_evictions_and_expiry() -> None:
    """The same entries, order and lost keys as an ordered dict evicting one at a time."""
    import random
    from collections import OrderedDict

    from monitor.label_buffer import LabelBuffer

    rng = random.Random(3)
    buffer, model = LabelBuffer(capacity=300, ttl=50.0), OrderedDict()
    now, next_id = 0.0, 0
    for _ in range(400):
        now += rng.random() * 2
        if rng.random() < 0.5:  # a batch of new keys
            keys = [("m", str(next_id + i)) for i in range(rng.randint(1, 120))]
            next_id += len(keys)
            labelled = [rng.random() < 0.2 for _ in keys]
            assert buffer.all_new(keys)
            got = buffer.remember_all(keys, list(range(len(keys))), [now] * len(keys), labelled, now)
        else:  # one key at a time
            keys, labelled = [("m", str(next_id))], [False]
            next_id += 1
            got = buffer.remember_values(keys[0], 0, now, False, now)
        want: list = []
        for i, (key, flag) in enumerate(zip(keys, labelled, strict=True)):
            while len(model) >= 300:
                old_key, old = model.popitem(last=False)
                want += [] if old[3] else [old_key]
            model[key] = (i if len(keys) > 1 else 0, now, now, flag, None)
        assert got == ({"entries": want} if want else {})
        if rng.random() < 0.3:
            marked = rng.choice(list(model))
            buffer.mark_labelled(marked)
            model[marked] = (*model[marked][:3], True, None)
        if rng.random() < 0.2:
            want = []
            while model and next(iter(model.values()))[2] <= now - 50.0:
                old_key, old = model.popitem(last=False)
                want += [] if old[3] else [old_key]
            assert buffer.expire(now) == want
        assert list(buffer._awaiting.items()) == list(model.items()) and len(buffer) == len(model)
        assert buffer.get(keys[0]) == model[keys[0]] and not buffer.all_new(keys[:1])


def test_a_handover_checkpoint_carries_the_predictions_awaiting_labels(clock: Clock) -> None:
    before, _, _ = make(clock)
    before.ingest([complete(i) for i in range(10)], [], "kafka")
    before.ingest([label(0)], [], "kafka")
    handover = before.checkpoint(["m"], handover=True)["m"]
    periodic = before.checkpoint(["m"])["m"]

    after, registry, _ = make(clock)
    after.restore("m", handover)
    result = after.ingest([label(3), label(7), label(0), complete(5)], [], "kafka")
    # 3 and 7 find their predictions; 0 was labelled already and complete(5) came before:
    # both are duplicates, as they would have been without the handover.
    assert result.duplicates == 2
    assert value(registry, "monitor_labels_joined_total", model="m") == 2
    assert after.models["m"].labelled == 1 + 2 and after.buffered == 0  # the count came with the checkpoint

    crashed, registry, _ = make(clock)
    crashed.restore("m", periodic)  # what the next owner reads after a crash: no buffer
    assert crashed.ingest([label(3), complete(5)], [], "kafka").duplicates == 0
    assert value(registry, "monitor_labels_joined_total", model="m") == 0 and crashed.buffered == 1


def test_predictions_put_back_beyond_the_buffer_are_the_first_evicted(clock: Clock) -> None:
    before, _, _ = make(clock)
    before.ingest([complete(i) for i in range(10)], [], "kafka")
    handover = before.checkpoint(["m"], handover=True)["m"]
    after, registry, _ = make(clock, label_buffer_size=6)
    after.restore("m", handover)  # 10 come back into room for 6: the 4 oldest are dropped
    assert value(registry, "monitor_label_buffer_evicted_total", model="m", cause="entries") == 4
    after.ingest([label(3), label(4), label(9)], [], "kafka")
    assert value(registry, "monitor_labels_joined_total", model="m") == 2 and after.buffered == 1


def test_label_buffer_puts_a_models_entries_back_before_the_others() -> None:
    from monitor.label_buffer import LabelBuffer

    buffer = LabelBuffer(capacity=5, ttl=50.0)
    buffer.remember_values(("a", "1"), 1, 10.0, False, 10.0)
    buffer.remember_values(("b", "1"), 0, 11.0, True, 11.0)
    entries = buffer.entries_of("a")
    assert entries == [["1", 1, 10.0, 10.0, False, None]]  # no segment tags
    buffer.remove_model("a")
    buffer.remember_values(("c", "1"), 0, 12.0, False, 12.0)
    assert buffer.put_back("a", [*entries, ["2", 0, 9.0, 9.0, False]]) == {}  # a row of before the tags
    assert buffer._order[buffer._head :] == [("a", "1"), ("a", "2"), ("b", "1"), ("c", "1")]
    assert buffer.get(("a", "1")) == (1, 10.0, 10.0, False, None)
    # Over capacity, the entries put back are the oldest: the first to go.
    assert buffer.put_back("z", [["1", 0, 1.0, 1.0, False], ["2", 0, 2.0, 2.0, True]]) == {"entries": [("z", "1")]}
    assert len(buffer) == 5 and ("z", "2") in buffer


def test_releasing_a_model_waits_for_the_windows_in_evaluation(clock: Clock) -> None:
    """A window still in evaluation when its model is released (the Kafka collector gives the
    state up after a failed checkpoint) is published before the reset, not onto the state
    restored next: otherwise that window counts twice once its records are read again."""
    settings = settings_from_mapping(
        {"models": {"m": {"features": {"x": {}}, "window": {"size": 100}}}, "server": {"evaluation": "thread"}}
    )
    publishing, go_on = threading.Event(), threading.Event()

    class SlowSink:  # a store that takes its time to answer
        def publish(self, model: str, reference_version: str, result: object) -> None:
            publishing.set()
            go_on.wait()

    pipeline = Pipeline(settings, Metrics(CollectorRegistry()), sinks=[SlowSink()], clock=clock)
    rows = pd.DataFrame({"x": np.linspace(0.0, 2.0, 500), "prediction": np.tile([0, 1], 250)})
    pipeline.set_reference("m", ReferenceProfile.from_frame(rows, pipeline.models["m"].schema, version="1"))
    pipeline.ingest([complete(i) for i in range(100)], [], "kafka")
    pipeline.expire()  # hands the records to the detector: the window closes
    assert publishing.wait(60)  # the window is being published
    release = threading.Thread(target=pipeline.release, args=("m",))
    release.start()
    release.join(2)  # without the wait, the release is over by now
    go_on.set()
    release.join()
    pipeline.evaluator.settle()
    assert pipeline.models["m"].windows_evaluated == 0
    pipeline.close()


# -- byte budgets (monitor/buffer_bytes.py estimates; tests/monitor/test_buffer_bytes.py) -----
def test_join_buffer_byte_budget_counts_each_cause(clock: Clock) -> None:
    from monitor.buffer_bytes import record_bytes

    size = record_bytes(inputs(0))
    pipeline, registry, _ = make(clock, join_buffer_bytes=2 * size + size // 2)
    pipeline.ingest([inputs(i) for i in range(4)], [], "http")  # room for two: 0 and 1 go
    big = Record(model="m", id="big", inputs={"x": "y" * 3 * size})
    pipeline.ingest([big], [], "http")  # alone over the budget: not buffered, the others stay
    assert value(registry, "monitor_join_evicted_total", model="m", cause="bytes") == 2
    assert value(registry, "monitor_join_evicted_total", model="m", cause="oversize") == 1
    assert value(registry, "monitor_join_incomplete_total", model="m", missing="prediction") == 3
    assert value(registry, "monitor_join_buffer_bytes") == 2 * size and pipeline.buffered == 2
    assert pipeline.models["m"].incomplete == 3
    assert pipeline.take_count_deltas()[("m", PIPELINE_SOURCE)]["evicted"] == 3
    pipeline.ingest([prediction(2), prediction(3)], [], "http")  # the two kept still join
    assert pipeline.models["m"].records == 2 and value(registry, "monitor_join_buffer_bytes") == 0


def test_label_buffer_byte_budget_counts_each_cause(clock: Clock) -> None:
    from monitor.buffer_bytes import label_entry_bytes

    entry = label_entry_bytes(("m", "0"), 1)
    pipeline, registry, _ = make(clock, label_buffer_bytes=3 * entry, label_ttl_seconds=60)
    pipeline.ingest([complete(i) for i in range(5)], [], "http")
    wide = Record(model="m", id="wide", inputs={"x": 1}, prediction="p" * 3 * entry, has_prediction=True)
    pipeline.ingest([wide], [], "http")
    assert value(registry, "monitor_label_buffer_evicted_total", model="m", cause="bytes") == 2
    assert value(registry, "monitor_label_buffer_evicted_total", model="m", cause="oversize") == 1
    assert value(registry, "monitor_label_buffer_bytes") == 3 * entry
    assert value(registry, "monitor_label_buffer_records") == 3
    clock.now += 61
    pipeline.expire()
    assert value(registry, "monitor_label_buffer_evicted_total", model="m", cause="ttl") == 3
    assert value(registry, "monitor_label_buffer_bytes") == 0


def test_checkpoint_entries_put_back_are_held_to_the_byte_budgets(clock: Clock) -> None:
    from monitor.buffer_bytes import label_entry_bytes, record_bytes

    before, _, _ = make(clock)
    before.ingest([complete(i) for i in range(10)] + [inputs(i) for i in range(20, 25)], [], "kafka")
    handover = before.checkpoint(["m"], handover=True)["m"]
    entry, part = label_entry_bytes(("m", "0"), 1), record_bytes(inputs(20))
    after, registry, _ = make(clock, label_buffer_bytes=6 * entry, join_buffer_bytes=3 * part)
    after.restore("m", handover)  # 10 predictions into room for 6, 5 parts into room for 3
    assert value(registry, "monitor_label_buffer_evicted_total", model="m", cause="bytes") == 4
    assert value(registry, "monitor_join_evicted_total", model="m", cause="bytes") == 2
    assert value(registry, "monitor_label_buffer_bytes") == 6 * entry
    assert value(registry, "monitor_join_buffer_bytes") == 3 * part and after.buffered == 3
    after.ingest([label(3), label(4), label(9)], [], "kafka")  # 3 was among the oldest, evicted
    assert value(registry, "monitor_labels_joined_total", model="m") == 2
