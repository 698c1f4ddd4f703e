"""Scale-out: records/s for 1, 2 and 3 `monitor serve` instances in one consumer group
sharing one PostgreSQL, with the ratio to one instance.

    python benchmarks/scale_out.py [--records N] [--per-message K] [--quick]
    ./dev bench scale_out [same options]

Starts a real Kafka-protocol broker (tansu, in-memory storage, tests/kafka_broker.py) and
a throw-away PostgreSQL 15 (tests/postgres_server.py) on free loopback ports and fills a
For N = 1, 2, 3: a fresh database, six-partition topic and consumer group; N instances
(each with a reference of 20,000 records, tumbling windows of 10,000 records, the Kafka
collector checkpointing every second) started and left to settle their group (no
assignment for 4 s); then ``--records`` records (default 360,000) of six models, one model
per partition (keyed by model), ``--per-message`` records per message (default 100: with
fewer, the benchmark's own producer, on the same two cores, becomes the limit), 25
features each (the records of benchmarks/ingest_http.py, encoded beforehand) are produced,
and the time from the first record counted to the last is measured, summed over the
instances' ``/v1/models`` (read every 50 ms). Prints a table; exits non-zero when a run
did not count exactly the records sent.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import orjson
from bench_support import http_bench, start_kafka_service  # before the project's modules: it fixes the import path
from kafka_broker import KafkaBroker
from postgres_server import Databases, PostgresServer

MODELS = [f"model{i}" for i in range(6)]


def encode_messages(records: int, per_message: int) -> list[tuple[int, bytes, bytes, list]]:
    """The messages of a run, encoded before the clock starts: record i of every model in
    turn, ``per_message`` records per message, model m on partition m."""
    factory = http_bench.RecordFactory()
    per_model = records // len(MODELS)
    messages = []
    for start in range(0, per_model, per_message):
        n = min(per_message, per_model - start)
        for p, model in enumerate(MODELS):
            batch = factory.records(n)
            for record in batch:
                record["model"] = model
            messages.append((p, model.encode(), orjson.dumps(batch), []))
    return messages


def start_instance(
    workdir: Path, broker: KafkaBroker, database: str, run: str, index: int
) -> tuple[subprocess.Popen[bytes], str]:
    process, base = start_kafka_service(
        workdir, f"{run}-{index}", broker.bootstrap, f"fleet-{run}", f"scale-{run}", database, MODELS
    )
    return process, f"{base}/v1/models"


def counted(urls: list[str]) -> int:
    total = 0
    for url in urls:
        try:
            total += sum(m["records"] for m in httpx.get(url, timeout=5).json()["models"])
        except (httpx.HTTPError, ValueError, KeyError):
            pass
    return total


def run(instances: int, workdir: Path, broker: KafkaBroker, databases: Databases,
        messages: list[tuple[int, bytes, bytes, list]], expected: int) -> tuple[float, float]:  # fmt: skip
    """(records/s, seconds) with ``instances`` instances in one group."""
    database = databases.create()
    broker.create_topic(f"fleet-{instances}", len(MODELS))
    # The first instance stores the references; the others find them.
    processes = [start_instance(workdir, broker, database, str(instances), 0)]
    wait_ready(processes[0][1])
    processes += [start_instance(workdir, broker, database, str(instances), i) for i in range(1, instances)]
    urls = [url for _, url in processes]
    try:
        for url in urls:
            wait_ready(url)
        wait_settled(urls)  # every member has its partitions before the first record arrives
        # Produced while the instances consume (the clock runs from their first record).
        producer = threading.Thread(target=broker.produce, args=(f"fleet-{instances}", messages))
        producer.start()
        first = None
        deadline = time.monotonic() + 600
        total = 0
        while total < expected:
            for process, _ in processes:
                if process.poll() is not None:
                    raise RuntimeError(f"an instance exited with {process.returncode}; see {workdir}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"stalled at {total} of {expected} records")
            total = counted(urls)
            if total and first is None:
                first, first_total = time.perf_counter(), total
            time.sleep(0.05)
        elapsed = time.perf_counter() - first
        producer.join()
        if first_total >= expected:
            raise RuntimeError("every record was counted within one 50 ms look: use more --records")
        time.sleep(1.0)
        if (final := counted(urls)) != expected:
            raise RuntimeError(f"{instances} instance(s) counted {final} records, {expected} were sent")
        return (expected - first_total) / elapsed, elapsed
    finally:
        for process, _ in processes:
            process.terminate()
        for process, _ in processes:
            process.wait(60)
        databases.drop(database)


def rebalances(url: str) -> float:
    text = httpx.get(url.replace("/v1/models", "/metrics"), timeout=5).text
    for line in text.splitlines():
        if line.startswith("monitor_kafka_rebalances_total "):
            return float(line.split()[1])
    return 0.0


def wait_settled(urls: list[str], quiet: float = 4.0) -> None:
    """Until every instance has had an assignment and none came for ``quiet`` seconds."""
    deadline = time.monotonic() + 120
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = [rebalances(url) for url in urls]
        if now != last:
            last, since = now, time.monotonic()
        elif all(now) and time.monotonic() - since >= quiet:
            return
        time.sleep(0.2)
    raise TimeoutError("the consumer group did not settle")


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url.replace("/v1/models", "/readyz"), timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=360_000, help="records in all (a multiple of 6)")
    parser.add_argument("--per-message", type=int, default=100, help="records per Kafka message")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 36,000 records")
    args = parser.parse_args(argv)
    if args.quick:
        args.records = 36_000
    expected = args.records // len(MODELS) * len(MODELS)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp, PostgresServer() as postgres:
        workdir = Path(tmp)
        databases = Databases(postgres.url(), file_copy=True)
        broker = KafkaBroker(workdir, durable=False).start()
        try:
            messages = encode_messages(expected, args.per_message)
            print(f"six models, {expected:,} records, {args.per_message} per message", flush=True)
            rates = {}
            for instances in (1, 2, 3):
                rate, seconds = run(instances, workdir, broker, databases, messages, expected)
                rates[instances] = rate
                print(f"  {instances} instance(s): {rate:>10,.0f} records/s ({seconds:.1f} s)", flush=True)
        finally:
            broker.stop()
            databases.close()
    print()
    print("| instances | records/s | ratio to 1 |")
    print("|---:|---:|---:|")
    for instances, rate in rates.items():
        print(f"| {instances} | {rate:,.0f} | {rate / rates[1]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
