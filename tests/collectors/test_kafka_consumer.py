"""The Kafka consumer's child process, without a broker: how a poll's messages travel, and
what the monitor hears when the child cannot start."""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from collectors.kafka_consumer import ConsumerProcess, ConsumerProcessError, Message, _columns
from monitor import pipes


def record(offset: int, value: bytes | None, headers: list[tuple[str, bytes]] | None = None) -> ConsumerRecord:
    return ConsumerRecord(
        "t", 2, -1, offset, 1_700_000_000_000 + offset, 0, b"key%d" % offset, value, headers or [], None,
        5, -1 if value is None else len(value), -1,
    )  # fmt: skip


def test_a_poll_travels_field_by_field_and_each_message_comes_back_whole(tmp_path: Path) -> None:
    tp = TopicPartition("t", 2)
    records = [record(10, b"{}"), record(11, None, [("ce_type", b"x")]), record(13, b"[1]")]
    path = tmp_path / "pipe"
    with path.open("wb") as out:
        pipes.write(out, _columns({tp: records}))
    with path.open("rb") as back:
        fetched = pipes.read(back)[tp]
    assert fetched.offsets == [10, 11, 13] and fetched.values == [b"{}", None, b"[1]"]
    assert fetched.headers == {1: [("ce_type", b"x")]}  # only the messages that have any
    assert [fetched.message(i) for i in range(3)] == [
        Message("t", 2, r.offset, r.timestamp, r.key, r.value, r.headers) for r in records
    ]


def consumer_children() -> list[int]:
    pids = [int(pid) for task in Path("/proc/self/task").iterdir() for pid in (task / "children").read_text().split()]
    return [pid for pid in pids if b"collectors.kafka_consumer" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def test_a_consumer_that_cannot_be_built_says_why_and_leaves_no_process() -> None:
    with pytest.raises(ConsumerProcessError, match="no_such_option"):
        ConsumerProcess({"bootstrap_servers": ["127.0.0.1:9"], "no_such_option": 1})
    assert consumer_children() == []
