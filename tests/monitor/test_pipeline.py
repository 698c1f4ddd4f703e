"""The pipeline: counting, joining partial records by (model, id), labels, bounds."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from alerts.metrics import Metrics
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
    assert value(registry, "monitor_join_evicted_total", model="m") == 2
    assert pipeline.models["m"].incomplete == 2
    # 0 was evicted, so its prediction waits (evicting 2); 4 is still there and completes.
    pipeline.ingest([prediction(0), prediction(4)], [], "http")
    assert (pipeline.models["m"].records, pipeline.models["m"].incomplete, pipeline.buffered) == (1, 3, 2)


def test_label_buffer_is_bounded(clock: Clock) -> None:
    pipeline, registry, _ = make(clock, label_buffer_size=2)
    pipeline.ingest([complete(i) for i in range(3)], [], "http")
    assert value(registry, "monitor_label_buffer_evicted_total", model="m") == 1
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
