"""The Kafka collector against a real Kafka-protocol broker (tansu, tests/kafka_broker.py)
and real `monitor serve` processes: every record reaches the windows exactly once through
crashes, restarts, rebalances, bad messages and a broker restart.

Each model has its own partition (producers key by model), windows of 1,000 records, and a
reference file, so "window counts" are checkable: for each model, windows evaluated x 1,000
+ records in the open window == records counted == records sent.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
import yaml
from kafka_broker import KafkaBroker, kafka_service_config
from postgres_server import Databases
from support import PYTHON, ROOT, ServiceProcess, free_port, wait_for

from monitor.store import tables as t

pytestmark = pytest.mark.slow
MODELS = ("m0", "m1", "m2")
WINDOW = 1_000
KILL_ATTEMPTS = 5  # kills tried before a test whose kill must land mid-way fails


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    kafka = KafkaBroker(tmp_path_factory.mktemp("kafka")).start()
    try:
        yield kafka
    finally:
        kafka.stop()


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


def consumer_process(service: ServiceProcess) -> int:
    """The pid of the service's Kafka consumer process (collectors.kafka_consumer)."""
    assert service.process is not None
    task = Path(f"/proc/{service.process.pid}/task")
    pids = {int(pid) for thread in task.iterdir() for pid in (thread / "children").read_text().split()}
    found = [pid for pid in pids if b"collectors.kafka_consumer" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert len(found) == 1, found
    return found[0]


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; whoever adopted it may not have reaped it yet


class PacedProducer:
    """Produces :func:`record_messages` from 0 on, ``step`` records every ``pause`` seconds on
    a thread, until :meth:`stop`: records keep arriving, so a kill lands while the consumer
    polls and applies."""

    def __init__(self, broker: KafkaBroker, topic: str, step: int = 300, pause: float = 0.1):
        self.broker, self.topic, self.step, self.pause = broker, topic, step, pause
        self.produced = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.produced += self.broker.produce(self.topic, record_messages(self.produced, self.produced + self.step))
            self._stop.wait(self.pause)

    def start(self) -> PacedProducer:
        self._thread.start()
        return self

    def stop(self) -> int:
        """Stop; how many records were produced (all acknowledged)."""
        self._stop.set()
        self._thread.join(120)
        assert not self._thread.is_alive()
        return self.produced


def kill(service: ServiceProcess) -> dict[str, int]:
    """SIGKILL ``service`` (no shutdown, no final checkpoint; its consumer process ends with
    it); returns the records each model had applied just before."""
    applied = owned_counts([service])
    consumer = consumer_process(service)
    assert service.stop(signal.SIGKILL) == -signal.SIGKILL
    wait_for(lambda: not running(consumer), 60, "the consumer process to end with its monitor")
    return applied


def past_checkpoint(service: ServiceProcess, url: str, group: str) -> bool:
    """Whether ``service`` has applied records of some model that its group's stored
    checkpoint does not cover yet."""
    stored = checkpointed(url, group)
    applied = owned_counts([service])
    return any(applied[m] > stored[m] for m in MODELS)


def checkpointed(url: str, group: str) -> dict[str, int]:
    """Records of each model covered by the group's stored checkpoint: the next offset stored
    for its partition (in these tests every message of partition p is one record of m{p})."""
    o = t.kafka_offsets.c
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(o.partition, o.next_offset).where(o.group_id == group)).all()
    finally:
        engine.dispose()
    return dict.fromkeys(MODELS, 0) | {f"m{partition}": int(offset) for partition, offset in rows}


def half_written_checkpoint(engine: sa.Engine) -> int | None:
    """The PostgreSQL backend of a checkpoint transaction that has written its kafka_offsets
    rows and waits for a lock on model_checkpoints, if there is one."""
    with engine.connect() as conn:
        return conn.execute(sa.text("""
            SELECT a.pid FROM pg_stat_activity a
            WHERE a.datname = current_database() AND a.wait_event_type = 'Lock'
              AND a.query LIKE 'UPDATE model_checkpoints%'
              AND EXISTS (SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                          WHERE l.pid = a.pid AND l.granted AND c.relname = 'kafka_offsets'
                            AND l.mode = 'RowExclusiveLock')
        """)).scalar()  # fmt: skip


def backend_alive(engine: sa.Engine, pid: int) -> bool:
    with engine.connect() as conn:
        return (
            conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}).scalar() == 1
        )


def assert_windows_consistent(service: ServiceProcess, expected: dict[str, int]) -> None:
    """Closed windows x WINDOW + the open window == the records counted, per model."""
    for name, model in models_of(service).items():
        if model["records"]:
            assert model["windows_evaluated"] * WINDOW + model["open_window_records"] == expected[name], model


def test_records_in_a_three_partition_topic_reach_the_windows_exactly_once(broker: KafkaBroker, tmp_path: Path) -> None:
    broker.create_topic("exactly-once", 3)
    assert broker.produce("exactly-once", record_messages(0, 20_000)) == 20_000
    with ServiceProcess(tmp_path, service_config(tmp_path, broker, "exactly-once")) as service:
        expected = expected_per_model(20_000)
        wait_for_counts([service], expected)
        assert_windows_consistent(service, expected)
        metrics = httpx.get(f"{service.url}/metrics").text
        assert 'monitor_kafka_messages_total{topic="exactly-once"} 20000.0' in metrics
        for p in range(3):
            assert f'monitor_kafka_consumer_lag{{partition="{p}",topic="exactly-once"}} 0.0' in metrics
        assert httpx.get(f"{service.url}/readyz").json() == {"status": "ready", "store": "ok", "kafka": "ok"}
        assert service.stop() in (0, -signal.SIGTERM)
    assert "shut down cleanly" in service.log()


def test_two_instances_in_one_group_split_the_partitions_and_count_each_record_once(
    broker: KafkaBroker, tmp_path: Path
) -> None:
    broker.create_topic("split", 3)
    config = service_config(tmp_path, broker, "split")
    with ServiceProcess(tmp_path, config) as first, ServiceProcess(tmp_path, config) as second:
        broker.produce("split", record_messages(0, 20_000))
        expected = expected_per_model(20_000)
        wait_for_counts([first, second], expected)
        owners = {name: [i for i, s in enumerate((first, second)) if models_of(s)[name]["records"]] for name in MODELS}
        assert all(len(o) == 1 for o in owners.values()), owners  # each model on one instance
        assert {o[0] for o in owners.values()} == {0, 1}  # and both instances got work
        assert_windows_consistent(first, expected)
        assert_windows_consistent(second, expected)


def test_a_kill_while_polling_with_records_past_the_checkpoint_ends_with_exact_counts(
    broker: KafkaBroker, tmp_path: Path
) -> None:
    """kill -9 while a paced producer keeps the consumer polling and applying, at a moment
    when the windows hold records the stored checkpoint does not (checked after the kill;
    killed again, a bounded number of times, until that is so): those are read again and
    counted once."""
    broker.create_topic("killed", 3)
    config = service_config(tmp_path, broker, "killed")
    url, group = config["storage"]["url"], config["kafka"]["group_id"]
    producer = PacedProducer(broker, "killed").start()
    try:
        for attempt in range(1, KILL_ATTEMPTS + 1):
            with ServiceProcess(tmp_path, config) as service:
                # Kill as soon as the windows hold more than the stored checkpoint (a checkpoint
                # may still come first: the test checks what was stored after the kill).
                wait_for(lambda: past_checkpoint(service, url, group), 60, "records applied past the checkpoint")  # noqa: B023
                applied = kill(service)
            stored = checkpointed(url, group)
            print(f"kill {attempt}: applied {applied}, checkpointed {stored}")
            if any(applied[m] > stored[m] for m in MODELS):
                break
        else:
            pytest.fail(f"no kill in {KILL_ATTEMPTS} landed with records applied past the checkpoint")
    finally:
        total = producer.stop()
    with ServiceProcess(tmp_path, config) as restarted:
        expected = expected_per_model(total)
        wait_for_counts([restarted], expected)
        assert_windows_consistent(restarted, expected)
        # record_counts too: what the killed process counted after its last checkpoint is
        # not in the table, and was counted again by the restarted one.
        wait_for(lambda: stored_counts(url) == expected, 60, "record_counts to be checkpointed")


@pytest.mark.parametrize("during", ["checkpoint-write", "rebalance"])
def test_a_kill_during_a_checkpoint_write_or_a_rebalance_ends_with_exact_counts(
    broker: KafkaBroker, tmp_path: Path, postgres_databases: Databases, during: str
) -> None:
    """PostgreSQL; the test holds model_checkpoints locked, so the next checkpoint stops half
    written (its kafka_offsets rows updated, not committed) with 300 records applied past
    the last one. "rebalance": a second instance joins and the first starts giving up its
    partitions (it waits for that checkpoint). Then kill -9: the half-written checkpoint is
    rolled back, and the records are read again from the last one and counted once."""
    database = postgres_databases.create()
    topic = f"killed-{during}"
    broker.create_topic(topic, 3)
    config = service_config(tmp_path, broker, topic, storage_url=database)
    group = config["kafka"]["group_id"]
    engine = sa.create_engine(database, poolclass=sa.pool.NullPool)
    first, second = ServiceProcess(tmp_path, config), ServiceProcess(tmp_path, config)
    joining = threading.Thread(target=second.start)
    try:
        broker.produce(topic, record_messages(0, 6_000))
        first.start()
        wait_for_counts([first], expected_per_model(6_000))
        wait_for(lambda: checkpointed(database, group) == expected_per_model(6_000), 60, "6,000 records checkpointed")
        with engine.connect() as lock:
            lock.execute(sa.text("LOCK TABLE model_checkpoints IN ACCESS EXCLUSIVE MODE"))  # until the rollback
            broker.produce(topic, record_messages(6_000, 6_300))
            writer = wait_for(lambda: half_written_checkpoint(engine), 60, "a checkpoint write stopped half-way")
            if during == "rebalance":
                joining.start()
                wait_for(lambda: "collectors.kafka: giving up" in first.log(), 120, "the first to give up partitions")
                assert "collectors.kafka: assigned" not in second.log()  # the rebalance is in progress
            applied = kill(first)
            lock.rollback()
        wait_for(lambda: not backend_alive(engine, writer), 60, "the killed instance's transaction to end")
        stored = checkpointed(database, group)
        print(f"killed during a {during}: applied {applied}, checkpointed {stored}")
        assert stored == expected_per_model(6_000)  # the half-written checkpoint was rolled back
        assert any(applied[m] > stored[m] for m in MODELS), (applied, stored)  # applied past it at the kill
        if during == "rebalance":
            joining.join(180)
        else:
            second.start()
        broker.produce(topic, record_messages(6_300, 9_000))
        expected = expected_per_model(9_000)
        wait_for_counts([second], expected)
        assert_windows_consistent(second, expected)
        wait_for(lambda: stored_counts(database) == expected, 60, "record_counts to be checkpointed")
    finally:
        first.__exit__()
        if joining.is_alive():
            joining.join(180)
        second.__exit__()
        engine.dispose()
        postgres_databases.drop(database)


def test_a_consumer_process_killed_mid_way_is_replaced_and_counts_stay_exact(
    broker: KafkaBroker, tmp_path: Path
) -> None:
    broker.create_topic("consumer-killed", 3)
    broker.produce("consumer-killed", record_messages(0, 50_000))
    config = service_config(tmp_path, broker, "consumer-killed")
    with ServiceProcess(tmp_path, config) as service:
        wait_for(lambda: sum(owned_counts([service]).values()) >= 6_000, 60, "6,000 records counted")
        consumer = consumer_process(service)
        os.kill(consumer, signal.SIGKILL)
        # The monitor checkpoints, forgets its state and starts a new consumer, which gets the
        # partitions once the dead one's membership lapses; then the state is restored.
        wait_for(lambda: service.log().count("collectors.kafka: assigned") == 2, 60, "the partitions assigned again")
        assert "the Kafka consumer process is gone" in service.log()
        assert consumer_process(service) != consumer
        expected = expected_per_model(50_000)
        wait_for_counts([service], expected)
        assert_windows_consistent(service, expected)


def test_labels_after_a_restart_find_the_predictions_made_before_it(broker: KafkaBroker, tmp_path: Path) -> None:
    broker.create_topic("labels", 3)
    broker.produce("labels", record_messages(0, 3_000))
    config = service_config(tmp_path, broker, "labels")
    with ServiceProcess(tmp_path, config) as service:
        wait_for_counts([service], expected_per_model(3_000))
        service.stop()  # SIGTERM: the models are handed over, with their predictions awaiting labels
    labels = [
        (i % 3, f"m{i % 3}".encode(), orjson.dumps({"model": f"m{i % 3}", "id": f"r{i}", "label": i % 2}), [])
        for i in range(0, 3_000, 2)
    ]
    broker.produce("labels", labels)
    with ServiceProcess(tmp_path, config) as restarted:
        wait_for(lambda: sum(m["labelled"] for m in models_of(restarted).values()) == 1_500, 60, "1,500 labels")
        time.sleep(1.0)  # and no more
        models = models_of(restarted)
        assert {name: m["labelled"] for name, m in models.items()} == {"m0": 500, "m1": 500, "m2": 500}
        assert {name: m["records"] for name, m in models.items()} == expected_per_model(3_000)


def test_a_rebalance_while_records_flow_loses_and_duplicates_nothing(broker: KafkaBroker, tmp_path: Path) -> None:
    broker.create_topic("rebalance", 3)
    config = service_config(tmp_path, broker, "rebalance")

    def rebalances(service: ServiceProcess) -> str:
        return httpx.get(f"{service.url}/metrics", timeout=30).text

    with ServiceProcess(tmp_path, config) as first:
        # Records flow from before the second instance joins until after it has left and the
        # first has its partitions back: both rebalances happen mid-stream, whatever the pace.
        producer = PacedProducer(broker, "rebalance", step=1_000, pause=0.5).start()
        try:
            wait_for(lambda: sum(owned_counts([first]).values()), 60, "the first instance to count records")
            with ServiceProcess(tmp_path, config) as second:  # joins: partitions move to it
                wait_for(lambda: any(m["records"] for m in models_of(second).values()), 120, "the second to count")
                assert second.stop() in (0, -signal.SIGTERM)  # leaves: they move back
            wait_for(lambda: "monitor_kafka_rebalances_total 3.0" in rebalances(first), 120, "the partitions back")
            after = producer.produced
            wait_for(lambda: sum(owned_counts([first]).values()) > after, 120, "records counted after the leave")
        finally:
            total = producer.stop()
        expected = expected_per_model(total)
        wait_for_counts([first], expected)
        assert_windows_consistent(first, expected)
        assert "monitor_kafka_rebalances_total 3.0" in rebalances(first)  # start, join, leave


def test_malformed_messages_go_to_the_dead_letter_topic_and_table_without_stalling(
    broker: KafkaBroker, tmp_path: Path
) -> None:
    broker.create_topic("mixed", 3)
    broker.create_topic("mixed-dead", 1)
    bad_kinds = [
        (b'{"model": "m0", "inputs": ', [], "invalid_json"),
        (b'"just text"', [], "not_an_object"),
        (orjson.dumps({"model": "nope", "inputs": {"x": 1}, "prediction": 1}), [], "unknown_model"),
        (
            b'{"instances": [[1]]}',
            [("ce_specversion", b"1.0"), ("ce_type", b"t"), ("ce_source", b"/s")],
            "invalid_event",
        ),
    ]

    def messages() -> Iterator[tuple[int, bytes | None, bytes, list]]:
        good = record_messages(0, 10_000)
        for i, message in enumerate(good):
            yield message
            if i % 100 == 50:  # 100 bad ones spread over every partition
                value, headers, _ = bad_kinds[(i // 100) % 4]
                yield (i // 100) % 3, None, value, headers

    assert broker.produce("mixed", messages()) == 10_100
    config = service_config(tmp_path, broker, "mixed", dead_letter_topic="mixed-dead")
    with ServiceProcess(tmp_path, config) as service:
        expected = expected_per_model(10_000)
        wait_for_counts([service], expected)
        dead = broker.read_all("mixed-dead", 1)
        assert len(dead) == 100
        reasons = [dict(m.headers)["monitor-reason"].decode() for m in dead]
        assert {r: reasons.count(r) for r in set(reasons)} == {k: 25 for _, _, k in bad_kinds}
        origin = dict(dead[0].headers)["monitor-origin"].decode()
        assert origin.startswith("mixed/")
        letters = httpx.get(f"{service.url}/v1/dead-letters", params={"limit": 1000}).json()["dead_letters"]
        assert len(letters) == 100
        assert {r: sum(1 for d in letters if d["reason"] == r) for r in set(reasons)} == {
            k: 25 for _, _, k in bad_kinds
        }
        assert all(d["source"] == "kafka" and d["raw_bytes_base64"] for d in letters)
        metrics = httpx.get(f"{service.url}/metrics").text
        assert 'monitor_kafka_dead_letters_published_total{outcome="published"} 100.0' in metrics


def test_records_refused_among_plain_ones_go_out_as_their_own_messages(broker: KafkaBroker, tmp_path: Path) -> None:
    # Every message one record with its timestamp: the partition is decoded in one pass, and
    # each refused record must still be traced back to its own message and offset.
    broker.create_topic("plain", 1)
    broker.create_topic("plain-dead", 1)
    good = [value for _, _, value, _ in record_messages(0, 3_000) if orjson.loads(value)["model"] == "m0"]
    messages, bad = [], {}
    for i, value in enumerate(good):
        messages.append((0, b"m0", value, []))
        if i % 100 == 99:
            value = orjson.dumps({"model": "nope", "id": f"bad{i}", "timestamp": 1_780_000_000, "prediction": 1})
            bad[f"plain/0/{len(messages)}"] = value
            messages.append((0, b"nope", value, []))
    assert broker.produce("plain", messages) == 1_010
    config = service_config(tmp_path, broker, "plain", dead_letter_topic="plain-dead")
    with ServiceProcess(tmp_path, config) as service:
        wait_for(lambda: models_of(service).get("m0", {}).get("records") == 1_000, 60, "1,000 records of m0")

        def ten_dead_letters() -> list[Any]:
            dead = broker.read_all("plain-dead", 1)
            return dead if len(dead) == 10 else []

        dead = wait_for(ten_dead_letters, 30, "10 dead letters")
        assert {dict(m.headers)["monitor-origin"].decode(): m.value for m in dead} == bad
        assert {dict(m.headers)["monitor-reason"] for m in dead} == {b"unknown_model"}
        assert all(m.key == b"nope" for m in dead)
        letters = httpx.get(f"{service.url}/v1/dead-letters", params={"limit": 100}).json()["dead_letters"]
        assert len(letters) == 10


def test_the_collector_recovers_by_itself_when_the_broker_restarts(tmp_path: Path) -> None:
    broker = KafkaBroker(tmp_path).start()  # its own broker: this test stops it
    try:
        broker.create_topic("restart", 3)
        broker.produce("restart", record_messages(0, 15_000))
        with ServiceProcess(tmp_path, service_config(tmp_path, broker, "restart")) as service:
            deadline = time.monotonic() + 60
            while sum(owned_counts([service]).values()) < 3_000:
                assert time.monotonic() < deadline, service.log()[-3000:]
                time.sleep(0.05)
            broker.stop_broker()  # mid-stream (what was fetched ahead is still applied)
            deadline = time.monotonic() + 120
            while httpx.get(f"{service.url}/readyz").status_code != 503:
                assert time.monotonic() < deadline, "readyz never noticed the broker going away"
                time.sleep(0.2)
            assert httpx.get(f"{service.url}/readyz").json()["kafka"] == "unreachable"
            assert "monitor_kafka_connected 0.0" in httpx.get(f"{service.url}/metrics").text
            broker.start_broker()  # same storage: topics, messages and offsets are back
            broker.produce("restart", record_messages(15_000, 30_000))
            expected = expected_per_model(30_000)
            wait_for_counts([service], expected, timeout=120)
            deadline = time.monotonic() + 120
            while httpx.get(f"{service.url}/readyz").status_code != 200:
                assert time.monotonic() < deadline, "readyz never recovered"
                time.sleep(0.2)
            assert_windows_consistent(service, expected)
    finally:
        broker.stop()


def test_monitor_consume_runs_the_collector_alone_with_metrics_on_their_own_port(
    broker: KafkaBroker, tmp_path: Path
) -> None:
    broker.create_topic("alone", 3)
    broker.produce("alone", record_messages(0, 3_000))
    config = tmp_path / "consume.yaml"
    config.write_text(yaml.safe_dump(service_config(tmp_path, broker, "alone"), sort_keys=False))
    port = free_port()
    log = (tmp_path / "consume.log").open("wb")
    process = subprocess.Popen(
        [PYTHON, "-m", "monitor.cli", "consume", "--config", str(config), "--metrics-port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip
    try:
        expected = [f'monitor_records_accepted_total{{model="{m}",source="kafka"}} {n}.0'
                    for m, n in expected_per_model(3_000).items()]  # fmt: skip

        def counted() -> bool:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                return False
            return all(line in text for line in expected)

        wait_for(counted, 60, "monitor consume to count 3,000 records")
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert "shut down cleanly" in (tmp_path / "consume.log").read_text()


def test_monitor_consume_without_topics_says_so(tmp_path: Path) -> None:
    config = tmp_path / "no-kafka.yaml"
    config.write_text(yaml.safe_dump({"storage": {"url": f"sqlite:///{tmp_path / 'm.db'}"}}))
    done = subprocess.run([PYTHON, "-m", "monitor.cli", "consume", "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().endswith(f"{config}: kafka.topics is empty: nothing to consume")
