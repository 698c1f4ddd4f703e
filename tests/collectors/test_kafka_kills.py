"""The Kafka collector killed mid-way (the monitor with kill -9 while polling, during a
checkpoint write or a rebalance; its consumer process alone) and rebalanced while records
flow, against a real Kafka-protocol broker and real `monitor serve` processes: every record
reaches the windows exactly once. See test_kafka.py for the rest of the Kafka tests.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from kafka_broker import KafkaBroker
from kafka_counts import (
    MODELS,
    assert_windows_consistent,
    expected_per_model,
    models_of,
    owned_counts,
    record_messages,
    service_config,
    stored_counts,
    wait_for_counts,
)
from postgres_server import Databases
from support import ServiceProcess, wait_for

from monitor.store import tables as t

pytestmark = pytest.mark.slow
KILL_ATTEMPTS = 5  # kills tried before a test whose kill must land mid-way fails


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


def scrape_rebalances(service: ServiceProcess) -> float:
    """monitor_kafka_rebalances_total of ``service``: the partition assignments it received."""
    text = httpx.get(f"{service.url}/metrics", timeout=30).text
    sample = re.search(r"^monitor_kafka_rebalances_total (\S+)$", text, re.MULTILINE)
    assert sample is not None, text
    return float(sample[1])


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


def assignments(service: ServiceProcess) -> list[str]:
    """What ``service`` logged as each assignment and each give-up, in order ("+t/0, t/1", "-t/0, t/1")."""
    events = re.findall(r"collectors\.kafka: (assigned|giving up) (.*?)(?::|$)", service.log(), re.MULTILINE)
    return [("+" if kind == "assigned" else "-") + partitions for kind, partitions in events]


def test_a_rebalance_while_records_flow_loses_and_duplicates_nothing(broker: KafkaBroker, tmp_path: Path) -> None:
    """Records flow while a second instance joins (partitions move to it) and leaves (they
    move back). The first may skip the join's assignment: if the second leaves before the
    first's own join has completed, the first's next assignment is already the one after the
    leave (kafka-python 3.0.12 also throws away a join that completed between two polls and
    joins again, which makes that likelier). So the test waits for the partitions to come
    back, not for a number of rebalances."""
    broker.create_topic("rebalance", 3)
    config = service_config(tmp_path, broker, "rebalance")
    everything = "+rebalance/0, rebalance/1, rebalance/2"
    with ServiceProcess(tmp_path, config) as first:
        # Records flow from before the second instance joins until after it has left and the
        # first has its partitions back: both rebalances happen mid-stream, whatever the pace.
        producer = PacedProducer(broker, "rebalance", step=1_000, pause=0.5).start()
        try:
            wait_for(lambda: sum(owned_counts([first]).values()), 60, "the first instance to count records")
            with ServiceProcess(tmp_path, config) as second:  # joins: partitions move to it
                wait_for(lambda: any(m["records"] for m in models_of(second).values()), 120, "the second to count")
                assert second.stop() in (0, -signal.SIGTERM)  # leaves: they move back
            wait_for(lambda: assignments(first)[-1:] == [everything], 120, "the partitions back")
            after = producer.produced
            wait_for(lambda: sum(owned_counts([first]).values()) > after, 120, "records counted after the leave")
        finally:
            total = producer.stop()
        expected = expected_per_model(total)
        wait_for_counts([first], expected)
        assert_windows_consistent(first, expected)
        moves, handed = assignments(first), assignments(second)
        # Each instance gave up exactly what it had been assigned, before its next assignment.
        for log_moves in (moves, handed):
            assert all(gave == "-" + got[1:] for got, gave in zip(log_moves[::2], log_moves[1::2], strict=False)), (
                log_moves
            )
        # The first: all three at the start, given up to the second, all three back at the end
        # (in between, its share of the join unless it skipped it). The second: its share,
        # given back at its stop.
        assert len(moves) >= 3 and moves[0] == moves[-1] == everything, moves
        assert len(handed) >= 2 and len(handed) % 2 == 0, handed
        assert scrape_rebalances(first) == len(moves[::2])  # one per assignment
    for service in (first, second):
        log = service.log()
        # The offsets checkpointed as partitions were given up reached Kafka too: kafka-python 3
        # refuses a commit from a listener that blocks its IO thread ("Cannot block on net.run()").
        assert "could not commit offsets to Kafka" not in log, log
        # Heartbeats went on while the monitor checkpointed in the listener, and a JoinGroup
        # held by the coordinator is no silent broker.
        assert "Kafka broker unreachable" not in log, log


def test_a_revocation_that_outlasts_the_session_timeout_keeps_the_member_heartbeating(
    broker: KafkaBroker, tmp_path: Path, postgres_databases: Databases
) -> None:
    """PostgreSQL; a second instance joins while the test holds model_checkpoints locked, so
    the first's checkpoint as it gives up its partitions waits for longer than the session
    timeout. kafka-python runs rebalance listeners on its IO thread: the child's listener is
    awaited there while the monitor checkpoints, so heartbeats go on (the broker never looks
    unreachable), the commit made in the listener goes through, and the handover is exact."""
    database = postgres_databases.create()
    topic = "slow-revocation"
    broker.create_topic(topic, 3)
    # A rebalance timeout far above the hold: only the session timeout is outlasted.
    config = service_config(tmp_path, broker, topic, storage_url=database, max_poll_interval_ms=300_000)
    session = config["kafka"]["session_timeout_ms"] / 1000
    engine = sa.create_engine(database, poolclass=sa.pool.NullPool)
    first, second = ServiceProcess(tmp_path, config), ServiceProcess(tmp_path, config)
    joining = threading.Thread(target=second.start)
    try:
        broker.produce(topic, record_messages(0, 3_000))
        first.start()
        wait_for_counts([first], expected_per_model(3_000))
        with engine.connect() as lock:
            lock.execute(sa.text("LOCK TABLE model_checkpoints IN ACCESS EXCLUSIVE MODE"))  # until the rollback
            broker.produce(topic, record_messages(3_000, 3_300))  # offsets for the listener to commit
            joining.start()
            wait_for(lambda: "collectors.kafka: giving up" in first.log(), 120, "the first to give up partitions")
            time.sleep(session * 1.5)  # not a speed limit: the hold only has to outlast the session
            lock.rollback()
        joining.join(180)
        broker.produce(topic, record_messages(3_300, 6_000))
        expected = expected_per_model(6_000)
        wait_for_counts([first, second], expected)
        for service in (first, second):
            assert_windows_consistent(service, expected)
        log = first.log()
        held = re.search(r"Rebalance listener _Relay\.on_partitions_revoked for group \S+ took ([\d.]+)s", log)
        assert held is not None and float(held[1]) > session, log  # the listener outlasted the session
        assert "Kafka broker unreachable" not in log, log
        assert "could not commit offsets to Kafka" not in log, log
        assert [scrape_rebalances(s) for s in (first, second)] == [2, 1]  # no member was evicted and rejoined
    finally:
        first.__exit__()
        if joining.is_alive():
            joining.join(180)
        second.__exit__()
        engine.dispose()
        postgres_databases.drop(database)
