"""MonitorClient against a real ``monitor serve`` on loopback: exact counts from many
threads, nothing lost while the service is away (within the queue bound), drops counted
beyond it, and the reading helpers."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import httpx
import pandas as pd
from support import ServiceProcess, car_loan_record, config, wait_for

from monitor.client import MonitorClient


def _records(service_url: str) -> int:
    models = httpx.get(f"{service_url}/v1/models", timeout=30).json()["models"]
    return next(m["records"] for m in models if m["name"] == "car_loan")


def _log(client: MonitorClient, i: int) -> bool:
    record = car_loan_record(i)
    return client.log("car_loan", record["inputs"], 1, id=f"r{i}", latency_ms=4.2)


def test_eight_threads_deliver_exact_counts(tmp_path: Path) -> None:
    with ServiceProcess(tmp_path, config(tmp_path)) as service:
        client = MonitorClient(service.url, batch_size=1000, flush_seconds=0.2)
        per_thread = 12_500

        def work(t: int) -> None:
            for i in range(t * per_thread, (t + 1) * per_thread):
                assert _log(client, i)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert client.flush(timeout=300)
        stats = client.stats
        client.close()
        assert stats["queued"] == stats["sent"] == stats["accepted"] == 100_000
        assert stats["dropped"] == stats["rejected"] == stats["pending"] == 0
        assert _records(service.url) == 100_000


def test_service_away_nothing_lost_within_bound_drops_counted_beyond(tmp_path: Path) -> None:
    service = ServiceProcess(tmp_path, config(tmp_path)).start()
    client = MonitorClient(service.url, queue_size=3_000, batch_size=500, flush_seconds=0.1, max_backoff_seconds=0.5)
    try:
        for i in range(1_000):
            assert _log(client, i)
        assert client.flush(timeout=120)
        service.stop()  # the service away mid-stream
        assert service.process is not None and service.process.poll() is not None
        # Away: at most 3,500 records fit (the queue, and the batch being retried); 1,500+ do not.
        accepted = [_log(client, i) for i in range(1_000, 6_000)]
        wait_for(lambda: client.stats["retries"] >= 3, 60, "the client retrying a batch while the service is down")
        assert client.stats["dropped"] == accepted.count(False) > 0
        kept = accepted.count(True)
        assert kept <= 3_000 + 500  # the queue bound, plus the batch taken off it to send
        service.start()
        assert client.flush(timeout=300)
        stats = client.stats
        assert stats["sent"] == stats["accepted"] == 1_000 + kept
        assert stats["queued"] == 1_000 + kept and stats["dropped"] == 5_000 - kept
        # the same database: the restarted service's count includes the records before the stop
        assert _records(service.url) == 1_000 + kept
    finally:
        client.close(timeout=5)
        service.__exit__()


def test_a_real_503_from_the_body_budget_is_retried_until_delivered(tmp_path: Path) -> None:
    # A slow upload holds most of the service's in-flight body budget: every batch of the
    # client is refused with 503 + Retry-After until the upload finishes.
    data = config(tmp_path, limits={"max_body_bytes": 4096, "max_inflight_body_bytes": 4096})
    with ServiceProcess(tmp_path, data) as service:
        slow = socket.create_connection(("127.0.0.1", service.port))
        head = (
            "POST /v1/records HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-ndjson\r\ncontent-length: 4000\r\n\r\n"
        )
        slow.sendall(head.encode() + b" " * 3900)
        client = MonitorClient(service.url, batch_size=5, flush_seconds=0.05, max_backoff_seconds=0.5)
        try:
            for i in range(10):
                assert _log(client, i)
            wait_for(lambda: client.stats["retries"] >= 2, 60, "the client's batches refused while the budget is held")
            refused = httpx.post(
                f"{service.url}/v1/records", content=b"{}" * 200, headers={"content-type": "application/json"}
            )
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
            assert client.stats["accepted"] == 0
            slow.sendall(b" " * 100)  # the upload completes (a 400: it is blank) and gives its bytes back
            slow.recv(4096)
            assert client.flush(timeout=120)
            assert client.stats["accepted"] == 10 and client.stats["dropped"] == 0
            assert _records(service.url) == 10
        finally:
            slow.close()
            client.close(timeout=5)


def test_reference_results_and_alerts(tmp_path: Path) -> None:
    car_loan = {**config(tmp_path)["models"]["car_loan"], "window": {"kind": "count", "size": 500}}
    with ServiceProcess(tmp_path, config(tmp_path, models={"car_loan": car_loan})) as service:
        client = MonitorClient(service.url, flush_seconds=0.1)
        reference = pd.DataFrame([{**car_loan_record(i)["inputs"], "prediction": 0.5} for i in range(600)])
        assert client.set_reference("car_loan", reference)["rows"] == 600
        for i in range(500):
            _log(client, i)
        assert client.flush(timeout=120)
        wait_for(lambda: len(client.results("car_loan", kind="feature_drift")), 60, "drift results")
        results = client.results("car_loan", kind="feature_drift")
        assert set(results["window_seq"]) == {0}
        assert set(results["feature"]) == set(car_loan["features"])
        assert isinstance(client.alerts(model="car_loan"), pd.DataFrame)
        client.close()
