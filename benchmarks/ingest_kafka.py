"""Kafka ingestion: the service's Kafka collector against a bare kafka-python consumer.

    python benchmarks/ingest_kafka.py [--messages N] [--batched-messages M] [--quick]
    ./dev bench ingest_kafka [same options]

Starts a real Kafka-protocol broker (tansu, in-memory storage, tests/kafka_broker.py) on
a free loopback port and fills two one-partition topics with the records of
benchmarks/ingest_http.py (25 features: 20 numeric + 5 categorical, string id, ISO 8601
timestamp, prediction, latency_ms; every id distinct):

* ``one``: one JSON record per message (``--messages``, default 300,000);
* ``hundred``: a JSON array of 100 records per message (``--batched-messages``, default
  5,000, i.e. 500,000 records).

Each service run lasts several seconds, past the point where the label buffer (200,000
ids) is full and every new record evicts one: the steady state of a long-running service.

Then, for each topic, in the same run and in the order bare, service, service, bare (so
that a drift in machine load hits both alike):

* **bare**: a kafka-python 3 consumer in this process, assigned the partition from the
  beginning, that polls and ``orjson.loads`` each message value, counting records;
* **service**: ``monitor serve`` in a subprocess with the Kafka collector on (its own
  consumer group, SQLite in a temp dir, log level warning, reference of 20,000 records,
  tumbling windows of 10,000 records): records are validated, joined, counted and applied
  to the windows, closed windows evaluated, and state checkpointed with the offsets.
  Progress is read from ``/v1/models`` every 50 ms.

Rates are records per second from the first record seen to the last (the consumer-group
join before the first record is not counted: it is a once-per-start cost). The service's
CPU time per 1,000 records (utime + stime from /proc, its evaluation and Kafka consumer
children included) is reported too: on a shared machine it is steadier than wall-clock
rates.
Targets: service >= 0.7 x bare with one record per message; service >= 100,000
records/s with 100 records per message. Exit status 0 when both pass, 1 otherwise.
``--quick`` is a smoke run with small topics.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import orjson
from bench_support import http_bench, start_kafka_service  # before the project's modules: it fixes the import path
from kafka import KafkaConsumer, TopicPartition
from kafka_broker import KafkaBroker

TARGET_RATIO_SINGLE = 0.7
TARGET_BATCHED_RECORDS_PER_S = 100_000


def fill_topics(broker: KafkaBroker, singles: int, batched: int) -> None:
    factory = http_bench.RecordFactory()
    broker.create_topic("one", 1)
    broker.create_topic("hundred", 1)
    chunk = 10_000
    for start in range(0, singles, chunk):
        records = factory.records(min(chunk, singles - start))
        broker.produce("one", ((0, b"bench", orjson.dumps(r), []) for r in records))
    for start in range(0, batched, 100):
        messages = [(0, b"bench", orjson.dumps(factory.records(100)), []) for _ in range(min(100, batched - start))]
        broker.produce("hundred", messages)


def bare(broker: KafkaBroker, topic: str, expected: int) -> tuple[float, float]:
    """(records/s, seconds) of a consumer that only decodes."""
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, max_poll_records=5_000)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    count, first = 0, None
    while count < expected:
        for messages in consumer.poll(timeout_ms=200).values():
            if first is None:
                first = time.perf_counter()
            for message in messages:
                document = orjson.loads(message.value)
                count += len(document) if type(document) is list else 1
    elapsed = time.perf_counter() - first
    consumer.close()
    return count / elapsed, elapsed


def service(broker: KafkaBroker, topic: str, expected: int, workdir: Path, run: int) -> tuple[float, float, float]:
    """(records/s, seconds, CPU ms per 1,000 records) of ``monitor serve`` consuming ``topic``."""
    process, base = start_kafka_service(
        workdir,
        f"{topic}-{run}",
        broker.bootstrap,
        topic,
        f"bench-{topic}-{run}",
        f"sqlite:///{workdir / f'monitor-{topic}-{run}.db'}",
    )
    url = f"{base}/v1/models"
    try:
        first = cpu_first = None
        deadline = time.monotonic() + 300
        count = 0
        while count < expected:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"service stopped or stalled at {count} records; see {workdir}")
            try:
                count = httpx.get(url, timeout=5).json()["models"][0]["records"]
            except httpx.HTTPError:
                count = 0
            if count and first is None:
                first, cpu_first, first_count = time.perf_counter(), http_bench.process_cpu_seconds(process.pid), count
            time.sleep(0.05)
        elapsed = time.perf_counter() - first
        cpu = http_bench.process_cpu_seconds(process.pid) - cpu_first
        counted = expected - first_count
        if counted <= 0:
            raise RuntimeError(f"{topic}: every record was applied within one 50 ms look; use a bigger topic")
        return counted / elapsed, elapsed, 1_000 * 1_000 * cpu / counted
    finally:
        process.terminate()
        process.wait(30)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=300_000, help="messages of one record")
    parser.add_argument("--batched-messages", type=int, default=5_000, help="messages of 100 records")
    parser.add_argument("--quick", action="store_true", help="a smoke run with small topics")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.batched_messages = 20_000, 300
    with tempfile.TemporaryDirectory(prefix="bench-kafka-") as tmp:
        workdir = Path(tmp)
        broker = KafkaBroker(workdir, durable=False).start()
        try:
            print(f"filling topics: {args.messages:,} x 1 record, {args.batched_messages:,} x 100 records", flush=True)
            fill_topics(broker, args.messages, args.batched_messages)
            results = {}
            for topic, expected in (("one", args.messages), ("hundred", args.batched_messages * 100)):
                bare_rates, service_rates, cpu = [], [], []
                for run, kind in enumerate(("bare", "service", "service", "bare")):
                    if kind == "bare":
                        rate, seconds = bare(broker, topic, expected)
                        bare_rates.append(rate)
                    else:
                        rate, seconds, per_1000 = service(broker, topic, expected, workdir, run)
                        service_rates.append(rate)
                        cpu.append(per_1000)
                    print(f"  {topic:8s} {kind:8s} {rate:>10,.0f} records/s ({seconds:.2f} s)", flush=True)
                results[topic] = (max(service_rates), max(bare_rates), min(cpu))
        finally:
            broker.stop()
    print()
    print("| records per message | service (records/s) | bare (records/s) | ratio | service CPU per 1,000 records |")
    print("|---|---:|---:|---:|---:|")
    for topic, per in (("one", 1), ("hundred", 100)):
        svc, base, cpu = results[topic]
        print(f"| {per} | {svc:,.0f} | {base:,.0f} | {svc / base:.2f} | {cpu:.1f} ms |")
    ratio = results["one"][0] / results["one"][1]
    batched = results["hundred"][0]
    ok_ratio, ok_batched = ratio >= TARGET_RATIO_SINGLE, batched >= TARGET_BATCHED_RECORDS_PER_S
    print()
    print(
        f"one record per message: {ratio:.2f} x bare (target >= {TARGET_RATIO_SINGLE}): {'PASS' if ok_ratio else 'FAIL'}"
    )
    print(f"100 records per message: {batched:,.0f} records/s (target >= {TARGET_BATCHED_RECORDS_PER_S:,}): "
          f"{'PASS' if ok_batched else 'FAIL'}")  # fmt: skip
    return 0 if ok_ratio and ok_batched else 1


if __name__ == "__main__":
    sys.exit(main())
