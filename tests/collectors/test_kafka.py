"""The Kafka collector against a real Kafka-protocol broker (tansu, tests/kafka_broker.py)
and real `monitor serve` processes: every record reaches the windows exactly once across
instances in a group, restarts, bad messages and a broker restart; `monitor consume`.
Kills mid-way and rebalances while records flow are in test_kafka_kills.py (a file of its
own, so that the two test workers share the Kafka tests). The traffic and the count checks
are in tests/kafka_counts.py; the module's broker in conftest.py.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from kafka_broker import KafkaBroker
from kafka_counts import (
    MODELS,
    assert_windows_consistent,
    expected_per_model,
    models_of,
    owned_counts,
    record_messages,
    service_config,
    wait_for_counts,
)
from support import PYTHON, ROOT, ServiceProcess, free_port, wait_for

pytestmark = pytest.mark.slow


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
