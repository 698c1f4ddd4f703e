"""Fixtures of the collector tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kafka_broker import KafkaBroker


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    # In-memory storage: no test on this broker restarts it (the broker-restart test starts a
    # durable one of its own), and S3 storage served by moto costs CPU on every produce and fetch.
    # (A CI timeout once blamed on it was a test expecting an exact rebalance count, which
    # kafka-python 3.0.12 can skip: see test_a_rebalance_while_records_flow_... .)
    kafka = KafkaBroker(tmp_path_factory.mktemp("kafka"), durable=False).start()
    try:
        yield kafka
    finally:
        kafka.stop()
