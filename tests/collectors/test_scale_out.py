"""Scale-out: three `monitor serve` processes in one consumer group with one PostgreSQL,
one of them killed with SIGKILL mid-way. Every model's windows end exact, each drift alert
fires once and each retraining webhook is delivered once, whichever instance evaluated.

Six models, each on its own partition of a six-partition topic (producers key by model),
10,000 records each: the first half like the reference, the second half shifted, so each
model's dataset-drift alert fires at its sixth window and stays firing.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from kafka_broker import KafkaBroker, kafka_service_config
from postgres_server import Databases, PostgresServer
from support import Receiver, ServiceProcess, wait_for

pytestmark = pytest.mark.slow
MODELS = [f"f{i}" for i in range(6)]
PER_MODEL = 10_000
WINDOW = 1_000


def messages() -> Iterator[tuple[int, bytes, bytes, list]]:
    """Record i of every model in turn, so all models progress together; drifted from the
    middle on (x shifted by 2 reference SDs, category c mostly 'c')."""
    rng = random.Random(5)
    for i in range(PER_MODEL):
        drifted = i >= PER_MODEL // 2
        for p, model in enumerate(MODELS):
            x = rng.gauss(2.0 if drifted else 0.0, 1)
            c = ("c" if rng.random() < 0.8 else rng.choice("ab")) if drifted else rng.choice("abc")
            record = {"model": model, "id": f"{model}-{i}", "inputs": {"x": x, "c": c},
                      "prediction": int(rng.random() < 0.3)}  # fmt: skip
            yield p, model.encode(), orjson.dumps(record), []


def models_of(service: ServiceProcess) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in httpx.get(f"{service.url}/v1/models", timeout=5).json()["models"]}


def kafka_metrics(service: ServiceProcess) -> str:
    text = httpx.get(f"{service.url}/metrics", timeout=5).text
    return "\n".join(line for line in text.splitlines() if "kafka" in line and not line.startswith("#"))


def counts(services: list[ServiceProcess]) -> Counter[str]:
    total: Counter[str] = Counter()
    for service in services:
        for name, model in models_of(service).items():
            total[name] += model["records"]
    return total


def assignment(service: ServiceProcess) -> set[str]:
    """The partitions of the service's latest assignment, from its log."""
    lines = [line for line in service.log().splitlines() if "collectors.kafka: assigned " in line]
    if not lines:
        return set()
    last = lines[-1].split("collectors.kafka: assigned ", 1)[1].strip()
    return set() if last == "nothing" else set(last.split(", "))


def settled(services: list[ServiceProcess], partitions: int) -> bool:
    """Every instance has partitions, and together they hold each partition once."""
    held = [assignment(s) for s in services]
    return all(held) and sum(map(len, held)) == partitions == len(set().union(*held))


def checkpointed(database: str, group: str) -> dict[str, int]:
    """Records of each model covered by the group's stored checkpoint (model i is partition i)."""
    engine = sa.create_engine(database, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT partition, next_offset FROM kafka_offsets WHERE group_id = :g"), {"g": group}
            ).all()
    finally:
        engine.dispose()
    return dict.fromkeys(MODELS, 0) | {MODELS[p]: int(n) for p, n in rows}


def sessions_of(database: str, application_name: str) -> int:
    engine = sa.create_engine(database, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            query = sa.text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name")
            return int(conn.execute(query, {"name": application_name}).scalar_one())
    finally:
        engine.dispose()


def alert_activity(database: str) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """``firing`` transitions per model, and the outbox's (model of the alert, state) rows."""
    engine = sa.create_engine(database, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            firing = conn.execute(sa.text(
                "SELECT a.model, count(*) FROM alert_transitions t JOIN alerts a USING (alert_id) "
                "WHERE t.to_state = 'firing' GROUP BY a.model"
            )).all()  # fmt: skip
            outbox = conn.execute(sa.text("SELECT alert_id, state FROM webhook_deliveries ORDER BY alert_id")).all()
    finally:
        engine.dispose()
    return dict(firing), [(alert_id.split(":")[1], state) for alert_id, state in outbox]


def test_three_instances_one_killed_with_windows_in_flight_count_exactly_and_alert_once(
    tmp_path: Path, postgres_databases: Databases
) -> None:
    """Drift starts at record 5,000 of each model and fires at its sixth window (record
    6,000). Phase 1 takes every model to 5,000 records; phase 2 to 5,600, paced, and an
    instance owning models is SIGKILLed while its windows are open and hold records its
    checkpoint does not (no alert has fired, no webhook was sent: both checked). Phase 3
    sends the rest: the survivors take the victim's models over from its last checkpoint,
    and each model fires once and its webhook is delivered once."""
    database = postgres_databases.create()
    broker = KafkaBroker(tmp_path, durable=False).start()
    receiver = Receiver().start()
    services: list[ServiceProcess] = []
    records = list(messages())  # record i of model p at i * len(MODELS) + p

    def phase(start: int, stop: int) -> list[tuple[int, bytes, bytes, list]]:
        return records[start * len(MODELS) : stop * len(MODELS)]

    try:
        broker.create_topic("fleet", len(MODELS))
        config = kafka_service_config(
            tmp_path, broker, "fleet", MODELS, window=WINDOW, storage_url=database, reference_rows=5_000,
            max_poll_records=300,
        )  # fmt: skip
        group = config["kafka"]["group_id"]
        config["alerts"] = {
            "rules": [{"name": "dataset-drift", "kind": "dataset_drift", "severity": "critical"}],
            "webhooks": [{"name": "retrain", "url": receiver.url, "rules": ["dataset-drift"]}],
        }
        # Each instance names its database sessions, so the test can tell when a killed one's are gone.
        configs = [
            {**config, "storage": {**config["storage"], "url": f"{database}?application_name=instance{i}"}}
            for i in range(3)
        ]
        first = ServiceProcess(tmp_path, configs[0]).start()  # stores the references once
        services = [first, ServiceProcess(tmp_path, configs[1]).start(), ServiceProcess(tmp_path, configs[2]).start()]
        wait_for(lambda: settled(services, len(MODELS)), 120, "the group to settle over the three members")

        assert broker.produce("fleet", phase(0, 5_000)) == 5_000 * len(MODELS)
        wait_for(lambda: counts(services) == Counter(dict.fromkeys(MODELS, 5_000)), 120, "5,000 records per model")
        victim = next(s for s in services if any(m["records"] for m in models_of(s).values()))
        owned = [name for name, m in models_of(victim).items() if m["records"]]
        for start in range(5_000, 5_600, 20):  # paced: the kill lands while records are applied
            broker.produce("fleet", phase(start, start + 20))
            applied, stored = models_of(victim), checkpointed(database, group)
            # Past the checkpoint AND into the next window: a lagging checkpoint alone would
            # break out at exactly 5,000 applied, on a window boundary.
            mid_window = all(applied[name]["records"] % WINDOW for name in owned)
            if mid_window and any(applied[name]["records"] > stored[name] for name in owned):
                break
            time.sleep(0.05)
        assert victim.stop(signal.SIGKILL) == -signal.SIGKILL
        name = f"instance{services.index(victim)}"  # a commit sent before the kill may still land: wait
        wait_for(lambda: not sessions_of(database, name), 60, "the killed instance's database sessions to end")
        stored = checkpointed(database, group)
        print(f"victim owned {owned}; applied {[applied[n]['records'] for n in owned]}, checkpointed {stored}")
        # The preconditions: the victim held open windows with records past its checkpoint,
        # and nothing had fired or been sent.
        assert any(applied[name]["records"] > stored[name] for name in owned), (applied, stored)
        assert all(applied[name]["records"] % WINDOW for name in owned), applied  # mid-window (the sixth)
        assert alert_activity(database) == ({}, []) and receiver.requests == []
        survivors = [s for s in services if s is not victim]

        broker.produce("fleet", phase(start + 20, PER_MODEL))
        expected = Counter(dict.fromkeys(MODELS, PER_MODEL))

        def all_counted() -> bool:
            got = counts(survivors)
            assert all(got[m] <= PER_MODEL for m in MODELS), f"counted twice: {got}"
            return got == expected

        wait_for(all_counted, 240, "every record counted by the survivors")

        def windows() -> dict[str, tuple[int, int]]:  # (evaluated, open) at each model's owner
            owned = [(n, m) for s in survivors for n, m in models_of(s).items() if m["records"]]
            return {n: (m["windows_evaluated"], m["open_window_records"]) for n, m in owned}

        # The owner of each model holds its ten windows, evaluated (and published) once.
        ten = dict.fromkeys(MODELS, (PER_MODEL // WINDOW, 0))
        wait_for(lambda: windows() == ten, 120, f"ten windows evaluated per model (not {windows()})")

        wait_for(lambda: len(receiver.requests) >= len(MODELS), 120, "a webhook per model")
        wait_for(lambda: [s for _, s in alert_activity(database)[1]] == ["delivered"] * len(MODELS), 120, "delivered")
        time.sleep(2)  # a duplicate delivery would arrive now
        assert counts(survivors) == expected and windows() == ten  # and no record, no window more
        firing, outbox = alert_activity(database)
        assert firing == dict.fromkeys(MODELS, 1)
        assert sorted(outbox) == [(m, "delivered") for m in MODELS]
        engine = sa.create_engine(database, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                windows = conn.execute(sa.text(
                    "SELECT model, count(DISTINCT window_seq), count(*) FROM results "
                    "WHERE kind = 'dataset_drift' GROUP BY model"
                )).all()  # fmt: skip
        finally:
            engine.dispose()
        assert {m: (d, n) for m, d, n in windows} == dict.fromkeys(MODELS, (PER_MODEL // WINDOW, PER_MODEL // WINDOW))
        bodies = [orjson.loads(r["body"]) for r in receiver.requests]
        assert sorted(b["model"] for b in bodies) == MODELS and {b["state"] for b in bodies} == {"firing"}, bodies
        assert len({r["headers"]["Idempotency-Key"] for r in receiver.requests}) == len(MODELS)
    finally:
        for service in services:
            service.__exit__()
        receiver.stop()
        broker.stop()
        postgres_databases.drop(database)


def test_a_database_restart_loses_and_doubles_no_kafka_record(tmp_path: Path) -> None:
    """PostgreSQL stopped while records flow: checkpoints fail, the consumer re-reads from the
    last stored one once the database is back, and the windows end exact."""
    broker = KafkaBroker(tmp_path, durable=False).start()
    services: list[ServiceProcess] = []
    with PostgresServer() as postgres:  # its own server: this test stops it
        try:
            broker.create_topic("outage", len(MODELS))
            config = kafka_service_config(
                tmp_path,
                broker,
                "outage",
                MODELS,
                window=WINDOW,
                storage_url=postgres.url(),
                reference_rows=5_000,
                max_poll_records=300,
                reconnect_backoff_max_seconds=2,
            )
            service = ServiceProcess(tmp_path, config).start()
            services.append(service)
            records = list(messages())
            half = len(records) // 2
            broker.produce("outage", records[:half])
            deadline = time.monotonic() + 60
            while sum(counts([service]).values()) < 5_000:
                assert time.monotonic() < deadline, service.log()[-3000:]
                time.sleep(0.05)
            mark = len(service.log())
            postgres.stop()
            # Records that arrive during the outage (were they all read and checkpointed before
            # the stop, the consumer would have nothing to write and would not notice). The
            # outage is felt as a failed checkpoint, or as a failed read of a model's stored
            # state or offsets (a model first seen, a rebalance): either way the consumer gives
            # up what it applied since the last stored checkpoint.
            during = half + 600
            broker.produce("outage", records[half:during])
            failed = 'monitor_kafka_checkpoints_total{outcome="failed"} '

            def outage_felt() -> bool:
                metrics = kafka_metrics(service)
                on_database = (
                    "Kafka consumer failed" in line and "OperationalError" in line
                    for line in service.log()[mark:].splitlines()
                )
                return (failed in metrics and f"{failed}0.0" not in metrics) or any(on_database)

            try:
                wait_for(outage_felt, 120, "a checkpoint or a read of the database to fail")
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{kafka_metrics(service)}\n{service.log()[mark : mark + 8000]}") from None
            postgres.start()
            broker.produce("outage", records[during:])
            expected = Counter(dict.fromkeys(MODELS, PER_MODEL))
            deadline = time.monotonic() + 120
            while (got := counts([service])) != expected:
                assert all(got[m] <= PER_MODEL for m in MODELS), f"counted twice: {got}"
                assert time.monotonic() < deadline, f"{got}\n{kafka_metrics(service)}\n{service.log()[-4000:]}"
                time.sleep(0.2)

            def windows() -> dict[str, tuple[int, int]]:  # evaluated (and published) asynchronously
                return {n: (m["windows_evaluated"], m["open_window_records"]) for n, m in models_of(service).items()}

            ten = dict.fromkeys(MODELS, (PER_MODEL // WINDOW, 0))
            wait_for(lambda: windows() == ten, 120, "ten windows evaluated per model")
            time.sleep(2)  # and no more
            assert counts([service]) == expected and windows() == ten
        finally:
            for service in services:
                service.__exit__()
            broker.stop()
