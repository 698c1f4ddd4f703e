"""Fixtures of the collector tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kafka_broker import KafkaBroker


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    # Durable (S3 via moto) storage, as before the Kafka tests were split: with tansu's
    # in-memory storage the rebalance-while-flowing test timed out once in CI ("Kafka broker
    # unreachable" right after the partitions came back), cause not yet known.
    kafka = KafkaBroker(tmp_path_factory.mktemp("kafka")).start()
    try:
        yield kafka
    finally:
        kafka.stop()
