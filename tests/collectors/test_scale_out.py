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
from support import Receiver, ServiceProcess

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


def test_three_instances_one_killed_count_exactly_and_alert_once(tmp_path: Path, postgres_databases: Databases) -> None:
    database = postgres_databases.create()
    broker = KafkaBroker(tmp_path, durable=False).start()
    receiver = Receiver().start()
    services: list[ServiceProcess] = []
    try:
        broker.create_topic("fleet", len(MODELS))
        config = kafka_service_config(
            tmp_path,
            broker,
            "fleet",
            MODELS,
            window=WINDOW,
            storage_url=database,
            reference_rows=5_000,
            max_poll_records=300,
        )
        config["alerts"] = {
            "rules": [{"name": "dataset-drift", "kind": "dataset_drift", "severity": "critical"}],
            "webhooks": [{"name": "retrain", "url": receiver.url, "rules": ["dataset-drift"]}],
        }
        first = ServiceProcess(tmp_path, config).start(timeout=60)  # stores the references once
        services = [first, ServiceProcess(tmp_path, config).start(60), ServiceProcess(tmp_path, config).start(60)]
        time.sleep(3)  # the group settles over the three members
        assert broker.produce("fleet", messages()) == PER_MODEL * len(MODELS)

        deadline = time.monotonic() + 90
        while sum(counts(services).values()) < 20_000:
            assert time.monotonic() < deadline, "\n".join(s.log()[-2000:] for s in services)
            time.sleep(0.1)
        victim = next(s for s in services if any(m["records"] for m in models_of(s).values()))
        assert victim.stop(signal.SIGKILL) == -signal.SIGKILL
        survivors = [s for s in services if s is not victim]

        expected = Counter(dict.fromkeys(MODELS, PER_MODEL))
        deadline = time.monotonic() + 180
        while (got := counts(survivors)) != expected:
            assert all(got[m] <= PER_MODEL for m in MODELS), f"counted twice: {got}"
            assert time.monotonic() < deadline, f"{got}\n" + "\n".join(s.log()[-3000:] for s in survivors)
            time.sleep(0.2)
        time.sleep(2)
        assert counts(survivors) == expected  # and nothing more arrives

        for service in survivors:  # the owner of each model holds its ten windows, evaluated once
            for name, m in models_of(service).items():
                if m["records"]:
                    assert (m["windows_evaluated"], m["open_window_records"]) == (PER_MODEL // WINDOW, 0), (name, m)

        deadline = time.monotonic() + 30
        while len(receiver.requests) < len(MODELS) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # a duplicate delivery would arrive now
        engine = sa.create_engine(database)
        try:
            with engine.connect() as conn:
                firing = conn.execute(sa.text(
                    "SELECT a.model, count(*) FROM alert_transitions t JOIN alerts a USING (alert_id) "
                    "WHERE t.to_state = 'firing' GROUP BY a.model"
                )).all()  # fmt: skip
                windows = conn.execute(sa.text(
                    "SELECT model, count(DISTINCT window_seq), count(*) FROM results "
                    "WHERE kind = 'dataset_drift' GROUP BY model"
                )).all()  # fmt: skip
        finally:
            engine.dispose()
        assert dict(firing) == dict.fromkeys(MODELS, 1)
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
            service = ServiceProcess(tmp_path, config).start(timeout=60)
            services.append(service)
            records = list(messages())
            half = len(records) // 2
            broker.produce("outage", records[:half])
            deadline = time.monotonic() + 60
            while sum(counts([service]).values()) < 5_000:
                assert time.monotonic() < deadline, service.log()[-3000:]
                time.sleep(0.05)
            postgres.stop()
            time.sleep(3)  # checkpoints fail meanwhile; the consumer gives up what it applied since
            postgres.start()
            broker.produce("outage", records[half:])
            expected = Counter(dict.fromkeys(MODELS, PER_MODEL))
            deadline = time.monotonic() + 120
            while (got := counts([service])) != expected:
                assert all(got[m] <= PER_MODEL for m in MODELS), f"counted twice: {got}"
                assert time.monotonic() < deadline, f"{got}\n{kafka_metrics(service)}\n{service.log()[-4000:]}"
                time.sleep(0.2)
            time.sleep(2)
            assert counts([service]) == expected
            for name, m in models_of(service).items():
                assert (m["windows_evaluated"], m["open_window_records"]) == (PER_MODEL // WINDOW, 0), (name, m)
        finally:
            for service in services:
                service.__exit__()
            broker.stop()
