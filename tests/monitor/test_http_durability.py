"""What a 200 from the ingestion routes means across a restart and a crash: real `monitor
serve` processes on a SQLite file, stopped with SIGTERM or killed with SIGKILL mid-stream.

* SIGTERM: nothing accepted is lost; the open window resumes where it was.
* kill -9: what the last checkpoint holds is restored and counted exactly once (state and
  store agree); only records accepted after its state was taken are lost.
* A retry of the same ids after a restart is recognised as duplicates.
* A model the Kafka collector takes over is restored from the Kafka checkpoint only.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from kafka_broker import KafkaBroker, kafka_service_config
from support import ServiceProcess, config, wait_for

from monitor.store.database import Store

REFERENCE = 200  # the first records become the reference
WINDOW = 2000
WAIT = 120.0  # generous: the machine may be busy; never a threshold on speed


def durability_config(tmp_path: Path, **storage: Any) -> dict[str, Any]:
    return config(
        tmp_path,
        storage={"checkpoint_seconds": 3600, **storage},
        models={
            "m": {
                "features": {"x": {"type": "numeric"}, "colour": {"type": "categorical"}},
                "prediction": {"kind": "binary"},
                "reference": {"from_first_records": REFERENCE},
                "window": {"kind": "count", "size": WINDOW},
            }
        },
    )


def records(start: int, n: int) -> bytes:
    """NDJSON records of model m with ids ``r{start}`` .. ``r{start + n - 1}``."""
    rng = np.random.default_rng(start)
    x = rng.normal(0.0, 1.0, n)
    colours = rng.choice(["red", "green", "blue"], n)
    return b"\n".join(
        orjson.dumps(
            {
                "model": "m",
                "id": f"r{start + i}",
                "inputs": {"x": float(x[i]), "colour": str(colours[i])},
                "prediction": (start + i) % 2,
            }
        )  # fmt: skip
        for i in range(n)
    )


def post(url: str, start: int, n: int) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/v1/records", content=records(start, n), headers={"content-type": "application/x-ndjson"}, timeout=60
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def model_m(url: str) -> dict[str, Any]:
    models = {m["name"]: m for m in httpx.get(f"{url}/v1/models", timeout=30).json()["models"]}
    return models["m"]


def fed(url: str, open_records: int) -> dict[str, Any]:
    """Model m once its open window holds ``open_records`` (pending records are fed at the
    next housekeeping tick)."""
    return wait_for(
        lambda: (m := model_m(url))["open_window_records"] == open_records and m,
        WAIT,
        f"{open_records} records in the open window",
    )


def metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


def stored(data: dict[str, Any]) -> tuple[dict[tuple[str, str], dict[str, int]], dict[str, tuple[bytes, float]]]:
    with Store(data["storage"]["url"], migrate=False) as store:
        return store.counts(), store.instance_checkpoint("default")


def test_sigterm_keeps_the_open_window_and_it_resumes(tmp_path: Path) -> None:
    data = durability_config(tmp_path)  # one checkpoint an hour: only the one at SIGTERM counts here
    with ServiceProcess(tmp_path, data) as service:
        assert post(service.url, 0, REFERENCE + 900)["accepted"] == REFERENCE + 900
        fed(service.url, 900)
        assert service.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
        assert "shut down cleanly" in service.log()
    counts, checkpoints = stored(data)
    assert counts[("m", "http")]["accepted"] == REFERENCE + 900
    assert counts[("m", "pipeline")]["joined"] == REFERENCE + 900
    assert set(checkpoints) == {"m"}

    with ServiceProcess(tmp_path, data) as service:
        m = model_m(service.url)
        assert (m["records"], m["open_window_records"], m["windows_evaluated"]) == (REFERENCE + 900, 900, 0)
        assert post(service.url, REFERENCE + 900, WINDOW - 900)["accepted"] == WINDOW - 900
        wait_for(lambda: model_m(service.url)["windows_evaluated"] == 1, WAIT, "the window to close")
        m = model_m(service.url)
        assert (m["records"], m["open_window_records"]) == (REFERENCE + WINDOW, 0)
        results = wait_for(
            lambda: httpx.get(f"{service.url}/v1/models/m/results", params={"kind": "feature_drift"}).json()["results"],
            WAIT,
            "the window's results",
        )
        # One window, of exactly the 900 records of the first run and the 1,100 of this one.
        assert {(r["window_seq"], r["n_current"]) for r in results} == {(0, WINDOW)}
        assert service.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    counts, _ = stored(data)
    assert counts[("m", "http")]["accepted"] == REFERENCE + WINDOW


def test_a_retry_after_a_restart_is_a_duplicate(tmp_path: Path) -> None:
    data = durability_config(tmp_path)
    with ServiceProcess(tmp_path, data) as service:
        post(service.url, 0, REFERENCE + 900)
        fed(service.url, 900)
        service.stop(signal.SIGTERM)
    with ServiceProcess(tmp_path, data) as service:
        # The client did not see its answers and sends everything again, plus 100 new records.
        answer = post(service.url, 0, REFERENCE + 1000)
        assert (answer["accepted"], answer["duplicates"]) == (REFERENCE + 1000, REFERENCE + 900)
        m = fed(service.url, 1000)
        assert m["records"] == REFERENCE + 1000
        service.stop(signal.SIGTERM)
    counts, _ = stored(data)
    assert counts[("m", "pipeline")]["duplicates"] == REFERENCE + 900
    assert counts[("m", "pipeline")]["joined"] == REFERENCE + 1000


class Streamer:
    """Posts batches of records one after the other until stopped, noting when each 200
    arrived (epoch s, this machine's clock: the service's checkpoints note theirs)."""

    BATCH = 50

    def __init__(self, url: str, start: int):
        self.url, self.next = url, start
        self.acked: list[tuple[float, int, int]] = []  # (time of the 200, first id, records)
        self.sent: list[tuple[int, int]] = []  # every batch sent, answered or not
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Streamer:
        self._thread.start()
        return self

    def _run(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self._stop.is_set():
                start, n = self.next, self.BATCH
                self.sent.append((start, n))
                try:
                    response = client.post(
                        f"{self.url}/v1/records", content=records(start, n),
                        headers={"content-type": "application/x-ndjson"},
                    )  # fmt: skip
                except httpx.HTTPError:
                    return  # the service was killed
                assert response.status_code == 200, response.text
                self.acked.append((time.time(), start, n))
                self.next += n

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    @property
    def acknowledged(self) -> int:
        return sum(n for _, _, n in self.acked)


def test_kill_9_mid_stream_loses_at_most_what_came_after_the_last_checkpoint(tmp_path: Path) -> None:
    data = durability_config(tmp_path, checkpoint_seconds=2.0)
    with ServiceProcess(tmp_path, data) as service:
        post(service.url, 0, REFERENCE)
        streamer = Streamer(service.url, REFERENCE).start()
        # Kill once a checkpoint has been written mid-stream and records were acknowledged after
        # the state it holds was taken (the next checkpoint is ~2 s away); asserted below.
        wait_for(
            lambda: metric(service.url, 'monitor_state_checkpoints_total{outcome="written"}') >= 2,
            WAIT,
            "2 checkpoints",
        )
        last = metric(service.url, "monitor_state_checkpoint_timestamp_seconds")
        wait_for(lambda: sum(1 for t, _, _ in streamer.acked if t > last) >= 5, WAIT, "acks after the checkpoint")
        assert service.process is not None
        service.process.send_signal(signal.SIGKILL)
        service.process.wait(30)
        streamer.stop()
    counts, checkpoints = stored(data)
    checkpointed = counts[("m", "http")]["accepted"]
    taken_at = checkpoints["m"][1]
    acknowledged = REFERENCE + streamer.acknowledged
    after = sum(n for t, _, n in streamer.acked if t > taken_at)  # acknowledged after the state was taken
    # The precondition: the kill landed mid-way, with records applied and acknowledged after
    # the last checkpoint, and after checkpoints had been written mid-stream.
    assert checkpointed > REFERENCE
    lost = acknowledged - checkpointed
    assert 0 < lost <= after
    # Everything acknowledged before the state was taken is in it.
    assert checkpointed >= acknowledged - after

    with ServiceProcess(tmp_path, data) as service:
        m = model_m(service.url)
        # The state restored and the store's counts agree exactly.
        assert m["records"] == checkpointed
        assert m["open_window_records"] == checkpointed - REFERENCE - WINDOW * m["windows_evaluated"]
        # The client sends again every batch from some it had an answer for to the last it
        # sent: the checkpointed ones are duplicates, the lost ones are counted now, each once.
        end = max(start + n for start, n in streamer.sent)
        retry_from = checkpointed - 10 * Streamer.BATCH
        answer = post(service.url, retry_from, end - retry_from)
        assert (answer["accepted"], answer["duplicates"]) == (end - retry_from, checkpointed - retry_from)
        wait_for(lambda: model_m(service.url)["records"] == end, WAIT, "every record counted")
        service.stop(signal.SIGTERM)
    counts, _ = stored(data)
    assert counts[("m", "http")]["accepted"] == checkpointed + end - retry_from
    assert counts[("m", "pipeline")]["joined"] == end
    assert counts[("m", "pipeline")]["duplicates"] == checkpointed - retry_from


def test_with_strict_acks_a_kill_9_loses_nothing_acknowledged(tmp_path: Path) -> None:
    # One checkpoint an hour: each answer waits for the checkpoint its request asks for.
    data = durability_config(tmp_path, ack_after_checkpoint=True)
    with ServiceProcess(tmp_path, data) as service:
        post(service.url, 0, REFERENCE)
        streamer = Streamer(service.url, REFERENCE).start()
        wait_for(lambda: streamer.acknowledged >= 2_000, WAIT, "2,000 records acknowledged")
        assert service.process is not None
        service.process.send_signal(signal.SIGKILL)
        service.process.wait(30)
        streamer.stop()
    counts, _ = stored(data)
    checkpointed = counts[("m", "http")]["accepted"]
    acknowledged = REFERENCE + streamer.acknowledged
    # The precondition: the kill landed while a request was in flight, unanswered.
    assert len(streamer.sent) == len(streamer.acked) + 1
    # Every acknowledged record is in the store; the one in flight may be too (never answered).
    assert checkpointed - acknowledged in (0, Streamer.BATCH)
    with ServiceProcess(tmp_path, data) as service:
        assert model_m(service.url)["records"] == checkpointed
        service.stop(signal.SIGTERM)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    kafka = KafkaBroker(tmp_path_factory.mktemp("kafka"), durable=False).start()
    try:
        yield kafka
    finally:
        kafka.stop()


def kafka_records(start: int, n: int) -> Iterator[tuple[int, bytes, bytes, list[Any]]]:
    for i in range(start, start + n):
        value = {"model": "m0", "id": f"k{i}", "inputs": {"x": (i % 7) / 7, "c": "abc"[i % 3]}, "prediction": i % 2}
        yield 0, b"m0", orjson.dumps(value), []


def test_a_model_the_kafka_collector_takes_over_is_not_restored_twice(broker: KafkaBroker, tmp_path: Path) -> None:
    topic = "durability-takeover"
    broker.create_topic(topic, 1)
    data = kafka_service_config(tmp_path, broker, topic, ["m0"], window=WINDOW)
    data["storage"]["checkpoint_seconds"] = 3600  # only the checkpoints at SIGTERM
    http_records = b"\n".join(
        orjson.dumps({"model": "m0", "id": f"h{i}", "inputs": {"x": 0.5, "c": "a"}, "prediction": 1})
        for i in range(300)
    )
    with ServiceProcess(tmp_path, data) as service:  # m0 fed over HTTP: a local checkpoint
        headers = {"content-type": "application/x-ndjson"}
        assert httpx.post(f"{service.url}/v1/records", content=http_records, headers=headers).json()["accepted"] == 300
        service.stop(signal.SIGTERM)
    assert set(stored(data)[1]) == {"m0"}

    with ServiceProcess(tmp_path, data) as service:  # restored locally, then fed by Kafka: Kafka's now
        assert model_m0(service.url)["records"] == 300
        broker.produce(topic, kafka_records(0, 600))
        wait_for(lambda: model_m0(service.url)["records"] == 900, WAIT, "the Kafka records")
        service.stop(signal.SIGTERM)
    counts, checkpoints = stored(data)
    assert checkpoints == {}  # the local row went when Kafka's checkpoint took the model over
    assert (counts[("m0", "http")]["accepted"], counts[("m0", "kafka")]["accepted"]) == (300, 600)

    with ServiceProcess(tmp_path, data) as service:  # only Kafka's checkpoint restores it: 900, not 300 or 1,200
        m0 = wait_for(lambda: (m := model_m0(service.url))["records"] and m, WAIT, "m0 restored")
        assert (m0["records"], m0["open_window_records"]) == (900, 900)
        broker.produce(topic, kafka_records(600, 100))
        wait_for(lambda: model_m0(service.url)["records"] == 1000, WAIT, "the new Kafka records")
        service.stop(signal.SIGTERM)
    counts, checkpoints = stored(data)
    assert checkpoints == {}
    assert (counts[("m0", "http")]["accepted"], counts[("m0", "kafka")]["accepted"]) == (300, 700)
    assert counts[("m0", "pipeline")]["joined"] == 1000


def model_m0(url: str) -> dict[str, Any]:
    models = {m["name"]: m for m in httpx.get(f"{url}/v1/models", timeout=30).json()["models"]}
    return models["m0"]


def test_the_store_keeps_each_instances_states_with_their_counts(store: Store) -> None:
    store.save_instance_checkpoint("a", {"m": b"m-1", "k": b"k-1"}, 10.0, {("m", "http"): {"accepted": 5}})
    store.save_instance_checkpoint("b", {"m": b"m-of-b"}, 11.0, {("m", "http"): {"accepted": 2}})
    # k went to Kafka: its row goes in the same transaction as m's new state and counts.
    store.save_instance_checkpoint("a", {"m": b"m-2"}, 12.0, {("m", "http"): {"accepted": 3}}, drop=["k"])
    assert store.instance_checkpoint("a") == {"m": (b"m-2", 12.0)}
    assert store.instance_checkpoint("b") == {"m": (b"m-of-b", 11.0)}
    assert store.instance_checkpoint("c") == {}
    assert store.counts()[("m", "http")]["accepted"] == 10
    with pytest.raises(ValueError, match="unknown counter 'nope'"):
        store.save_instance_checkpoint("a", {"m": b"m-3"}, 13.0, {("m", "http"): {"nope": 1}})
    assert store.instance_checkpoint("a") == {"m": (b"m-2", 12.0)}
    # Taken once: of two processes starting with one id, the second finds nothing to restore.
    assert store.take_instance_checkpoint("a") == {"m": (b"m-2", 12.0)}
    assert store.take_instance_checkpoint("a") == {}
    assert store.instance_checkpoint("b") == {"m": (b"m-of-b", 11.0)}
