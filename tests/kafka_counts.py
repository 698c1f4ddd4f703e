"""What the Kafka collector tests (tests/collectors/test_kafka*.py) send and count: three
models m0..m2, record i of model m{i % 3} on partition i % 3 (producers key by model),
windows of 1,000 records and a reference file, so "window counts" are checkable: for each
model, windows evaluated x 1,000 + records in the open window == records counted == records
sent."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import sqlalchemy as sa
from kafka_broker import KafkaBroker, kafka_service_config
from support import ServiceProcess

from monitor.store import tables as t

MODELS = ("m0", "m1", "m2")
WINDOW = 1_000


def service_config(tmp_path: Path, broker: KafkaBroker, topic: str, **kafka: Any) -> dict[str, Any]:
    return kafka_service_config(tmp_path, broker, topic, MODELS, window=WINDOW, **kafka)


def record_messages(start: int, stop: int, seed: int = 0) -> Iterator[tuple[int, bytes, bytes, list]]:
    """Records i in [start, stop): model m{i % 3} on partition i % 3, keyed by model. Those
    of m2 have no timestamp: they get their message's."""
    rng = random.Random(seed * 1_000_003 + start)
    for i in range(start, stop):
        p = i % 3
        record = {
            "model": f"m{p}", "id": f"r{i}", "inputs": {"x": rng.gauss(0, 1), "c": rng.choice("abc")},
            "prediction": int(rng.random() < 0.3),
        }  # fmt: skip
        if p != 2:
            record["timestamp"] = 1_780_000_000 + i / 1000
        yield p, f"m{p}".encode(), orjson.dumps(record), []


def expected_per_model(total: int) -> dict[str, int]:
    return {f"m{p}": len(range(p, total, 3)) for p in range(3)}


def models_of(service: ServiceProcess) -> dict[str, dict[str, int]]:
    return {m["name"]: m for m in httpx.get(f"{service.url}/v1/models", timeout=5).json()["models"]}


def owned_counts(services: list[ServiceProcess]) -> dict[str, int]:
    """Records per model across instances (an instance that gave a model away shows 0)."""
    totals = dict.fromkeys(MODELS, 0)
    for service in services:
        for name, model in models_of(service).items():
            totals[name] += model["records"]
    return totals


def wait_for_counts(services: list[ServiceProcess], expected: dict[str, int], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        counts = owned_counts(services)
        if counts == expected:
            time.sleep(2.0)  # and no more: nothing counted twice
            counts = owned_counts(services)
            assert counts == expected
            return
        assert all(counts[m] <= expected[m] for m in MODELS), f"counted twice: {counts} > {expected}"
        time.sleep(0.2)
    raise AssertionError(f"counts {counts} never reached {expected}:\n" + "\n".join(s.log()[-3000:] for s in services))


def stored_counts(url: str) -> dict[str, int]:
    """Records accepted from Kafka per model, in the ``record_counts`` table."""
    c = t.record_counts.c
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return {m: int(n) for m, n in conn.execute(sa.select(c.model, c.accepted).where(c.source == "kafka"))}
    finally:
        engine.dispose()


def assert_windows_consistent(service: ServiceProcess, expected: dict[str, int]) -> None:
    """Closed windows x WINDOW + the open window == the records counted, per model."""
    for name, model in models_of(service).items():
        if model["records"]:
            assert model["windows_evaluated"] * WINDOW + model["open_window_records"] == expected[name], model
